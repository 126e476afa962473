"""Load a QAGen model once per process: ``load_qagen(fmt, device, dtype)``.

Models are cached at module level keyed by (checkpoint, format, device, dtype), so repeated
``evaluate.load`` calls, scorers and trainer callbacks share one copy.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from quals.bundled import format_from_folder
from quals.formats import DEFAULT_PRESET, QAFormat, get_preset
from quals.qagen import QAGenModel


_MODELS: dict[tuple, QAGenModel] = {}


class ModelLoadError(OSError):
    """The QAGen model or tokenizer could not be loaded (the message says what to do)."""

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


def resolve_format(preset: str | QAFormat | None, model: str | None, qa_separator: str | None = None) -> QAFormat:
    """The format to use: the preset if named, else the model folder's saved format, else the default preset."""
    fmt = get_preset(preset) if preset is not None else (model and format_from_folder(model)) or get_preset(
        DEFAULT_PRESET)
    if model is not None:
        fmt = fmt.replace(model=str(model))
    if qa_separator is not None:
        fmt = fmt.replace(qa_separator=qa_separator)
    return fmt


def load_qagen(fmt: QAFormat, device: str | torch.device | None = None, dtype: str | torch.dtype = "float32"
               ) -> QAGenModel:
    """Load (or fetch from the cache) the model and tokenizer named by ``fmt.model``."""
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    key = (fmt, str(device), str(dtype))
    if key not in _MODELS:
        try:
            config = AutoConfig.from_pretrained(fmt.model)
            auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
            model = auto.from_pretrained(fmt.model, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(fmt.model)
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"Could not load the QAGen model {fmt.model!r} (preset {fmt.name!r}): "
                                 f"{str(err).splitlines()[0]} Pass a local model folder (model=... / --model), "
                                 "use the bundled offline preset if installed, or allow network access to the "
                                 "Hugging Face Hub.") from err
        _MODELS[key] = QAGenModel(model.to(device), tokenizer, fmt)
    return _MODELS[key]


def clear_cache() -> None:
    """Forget every loaded model (frees memory)."""
    _MODELS.clear()
