"""Load a QAGen model once per process: ``load_qagen(fmt, device, dtype)``.

Models are cached at module level keyed by (format, device, dtype, allow_pickle), so repeated ``evaluate.load``
calls, scorers and trainer callbacks share one copy. Where the weights come from, and the safetensors-only and
fail-fast-offline rules every load keeps: ``quals.engine.weights``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from quals.engine.formats import QAFormat
from quals.engine.model_folders import format_from_folder
from quals.engine.presets import DEFAULT_PRESET, get_preset
from quals.engine.qagen import QAGenModel, build_qagen
from quals.engine.weights import ModelLoadError, load_pretrained, pickle_refusal, safe_weights, weights_location


_MODELS: dict[tuple, QAGenModel] = {}
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> cuda if available, else mps, else cpu."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def resolve_format(preset: str | QAFormat | None, model: str | None, qa_separator: str | None = None,
                   gguf_file: str | None = None) -> QAFormat:
    """The format to use: the preset if named, else the model folder's saved format, else the default preset.

    An explicit ``model`` replaces the preset's weights (and its ``weights_package``); ``gguf_file`` names a GGUF
    file inside that folder or repo.
    """
    fmt = get_preset(preset) if preset is not None else (model and format_from_folder(model)) or get_preset(
        DEFAULT_PRESET)
    if model is not None and str(model) not in (fmt.model, fmt.adapter):
        fmt = fmt.replace(model=str(model), weights_package=None, gguf_file=gguf_file)
    elif gguf_file is not None:
        fmt = fmt.replace(gguf_file=gguf_file, weights_package=None)
    if qa_separator is not None:
        fmt = fmt.replace(qa_separator=qa_separator)
    return fmt


def load_qagen(fmt: QAFormat, device: str | torch.device | None = None, dtype: str | torch.dtype = "float32",
               allow_pickle: bool = False) -> QAGenModel:
    """Load (or fetch from the cache) the model and tokenizer named by ``fmt``; raises ``ModelLoadError``."""
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    key = (fmt, str(device), str(dtype), allow_pickle)
    if key not in _MODELS:
        source = weights_location(fmt)
        try:
            model, tokenizer = load_pretrained(source, fmt.gguf_file, dtype, allow_pickle)
            if fmt.adapter:
                model = _with_adapter(model, fmt.adapter, allow_pickle)
        except ModelLoadError:
            raise
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"Could not load the QAGen model {source!r} (preset {fmt.name!r}): "
                                 f"{str(err).splitlines()[0]} Pass a local model folder (model=... / --model), "
                                 "or allow network access to the Hugging Face Hub.") from err
        _MODELS[key] = build_qagen(model.to(device), tokenizer, fmt)
    return _MODELS[key]


def _with_adapter(model, adapter: str, allow_pickle: bool):
    """``model`` with a peft (LoRA) adapter folder merged into its weights."""
    from peft import PeftModel

    if not allow_pickle and not (Path(adapter) / "adapter_model.safetensors").is_file():
        raise ModelLoadError(pickle_refusal(adapter) if (Path(adapter) / "adapter_model.bin").is_file() else
                             f"{adapter} has no adapter_model.safetensors")
    safe_weights(allow_pickle)  # warns when pickles are allowed
    with warnings.catch_warnings():  # peft 0.21 reads the attribute transformers 5 deprecated; not the user's concern
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()
