"""Small helpers that absorb API drift (transformers 4.x/5.x, peft) and wrapper plumbing (DDP/FSDP/ZeRO).

- activation checkpointing: transformers 5 names (``activation_checkpointing_enable``,
  ``is_activation_checkpointing``) with a fallback to the 4.x ``gradient_checkpointing_*`` names;
- :func:`generation_mode`: eval mode, no gradients, checkpointing off, LoRA adapters left active;
- :func:`call_through_wrapper`: run an arbitrary function as the forward of a DDP/FSDP/DeepSpeed wrapper, so its
  hooks (gradient sync, parameter gathering) fire (the technique of TRL's ``_ForwardRedirection``);
- :func:`check_peft_config` / :func:`apply_peft`: TRL's conventions for a ``peft_config`` argument.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch


def training_args_checkpointing(args) -> tuple[bool, dict | None]:
    """(enabled, kwargs) of activation checkpointing from training arguments, old or new names."""
    enabled = getattr(args, "activation_checkpointing", None)
    if enabled is None:
        enabled = getattr(args, "gradient_checkpointing", False)
    kwargs = getattr(args, "activation_checkpointing_kwargs", None)
    if kwargs is None:
        kwargs = getattr(args, "gradient_checkpointing_kwargs", None)
    return bool(enabled), kwargs


def is_activation_checkpointing(model) -> bool:
    """Whether activation (a.k.a. gradient) checkpointing is on, without deprecation warnings."""
    if hasattr(model, "is_activation_checkpointing"):
        return bool(model.is_activation_checkpointing)
    return bool(getattr(model, "is_gradient_checkpointing", False))


def set_activation_checkpointing(model, enabled: bool, kwargs: dict | None = None) -> None:
    """Turn activation checkpointing on (with ``kwargs``) or off, whichever API the model has."""
    if enabled:
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    elif hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


@contextlib.contextmanager
def generation_mode(model, checkpointing_kwargs: dict | None = None) -> Iterator[None]:
    """Eval mode, ``torch.no_grad()``, activation checkpointing off; restores everything on exit.

    LoRA adapters stay active (generation samples from the model being trained).
    """
    was_training = model.training
    was_checkpointing = is_activation_checkpointing(model)
    if was_checkpointing:
        set_activation_checkpointing(model, False)
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_checkpointing:
            set_activation_checkpointing(model, True, checkpointing_kwargs)
        model.train(was_training)


def call_through_wrapper(wrapper: torch.nn.Module, module: torch.nn.Module, function: Callable, *args: Any,
                         **kwargs: Any) -> Any:
    """Call ``function(*args, **kwargs)`` as if it were ``module``'s forward, through ``wrapper``.

    DDP, FSDP and DeepSpeed attach their work (gradient-sync bookkeeping, parameter all-gathers) to the wrapper's
    ``__call__``. A loss that calls the encoder and decoder separately must run inside that call, so ``module.forward``
    is swapped for ``function`` for exactly one call and restored before ``function`` even runs.
    """
    if wrapper is module:
        return function(*args, **kwargs)
    original_forward = module.forward

    def redirected_forward(*_args, **_kwargs):
        module.forward = original_forward
        return function(*_args, **_kwargs)

    module.forward = redirected_forward
    try:
        return wrapper(*args, **kwargs)
    finally:
        module.forward = original_forward


def check_peft_config(peft_config, model) -> None:
    """TRL-style checks: peft installed, a ``PeftConfig``, and not a model that already has adapters."""
    try:
        from peft import PeftConfig, PeftModel
    except ImportError as err:
        raise ImportError("peft_config needs the peft package: pip install peft") from err
    if not isinstance(peft_config, PeftConfig):
        raise TypeError(f"peft_config must be a peft.PeftConfig (e.g. LoraConfig), got {type(peft_config).__name__}")
    if isinstance(model, PeftModel):
        raise TypeError("The model already has peft adapters; pass either a PeftModel or a peft_config, not both")


def apply_peft(model, peft_config, checkpointing: bool):
    """Wrap ``model`` with adapters; with activation checkpointing, make the inputs require grad first (peft#137)."""
    from peft import get_peft_model

    check_peft_config(peft_config, model)
    if checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    return get_peft_model(model, peft_config)


def needs_synced_generation(model) -> bool:
    """True under DeepSpeed ZeRO-3 or FSDP, where every generate step is a collective (``synced_gpus``)."""
    try:
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
        from transformers.integrations.fsdp import is_fsdp_managed_module
    except ImportError:  # pragma: no cover - very old transformers
        return False
    return bool(is_deepspeed_zero3_enabled() or is_fsdp_managed_module(model))
