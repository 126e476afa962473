"""The causal-LM half of ``quals train-qagen``: a decoder-only QAGen fine-tuned with LoRA (peft) by default.

Examples are the scorer's own prompts (``CausalQAGen.training_input``: chat template, instruction, no few-shot
examples unless ``--keep-examples``) and targets (``CausalQAGen.target``: the reply after the question prefix,
then the end-of-turn token). Each passage's prompt runs once per step; its k targets then run as k rows on a
stride-0 view of its KV cache, as the scorer does, so a batch costs ``passages x prompt + targets x reply``
tokens, with no padding inside any prompt. Gradients flow through the shared cache into the prompt's LoRA weights.

The saved folder holds the adapter only (a few MB) and ``quals_format.json``, which names the base weights (the
preset's Hub id, GGUF file and weights package), so ``QualsScorer(model=folder)`` loads base + adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import DynamicCache, Trainer

from quals.engine.formats import QAFormat
from quals.engine.model_folders import save_format
from quals.engine.qagen.base import cache_kwarg, output_cache
from quals.engine.qagen.causal import _cache, _layers


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "c_attn", "c_proj",
                "c_fc"]


def add_lora(model, rank: int, alpha: int, dropout: float):
    """Wrap ``model`` in a peft LoRA model over its attention and feed-forward projections."""
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in LORA_TARGETS if t in names]
    if not targets:
        raise ValueError(f"No LoRA target modules found in {type(model).__name__} (looked for {LORA_TARGETS})")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


@dataclass
class PromptTargetsCollator:
    """Rows of (prompt ids, targets) -> lists of prompts ``[P_i]`` and target blocks ``[n_i, T_i]`` (-100 padding)."""

    def __call__(self, rows: list[dict]) -> dict[str, list[torch.Tensor]]:
        prompts = [torch.tensor(row["input_ids"]) for row in rows]
        targets = []
        for row in rows:
            block = torch.full((len(row["labels"]), max(len(t) for t in row["labels"])), -100, dtype=torch.long)
            for n, target in enumerate(row["labels"]):
                block[n, : len(target)] = torch.tensor(target)
            targets.append(block)
        return {"prompts": prompts, "targets": targets}


class CausalQAGenTrainer(Trainer):
    """Token-mean cross-entropy of reply tokens; each prompt runs once for all its targets."""

    def __init__(self, *args, pad_id: int, label_smoothing: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.pad_id, self.label_smoothing = pad_id, label_smoothing

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        total, count = 0.0, 0
        for prompt, labels in zip(inputs["prompts"], inputs["targets"], strict=True):
            logits = prompt_target_logits(model, prompt, labels.masked_fill(labels < 0, self.pad_id))  # [n, T, V]
            total = total + F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                                            reduction="sum", label_smoothing=self.label_smoothing)
            count += int((labels >= 0).sum())
        loss = total / max(count, 1)
        return (loss, {}) if return_outputs else loss


def prompt_target_logits(model, prompt: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Logits ``[n, T, V]`` predicting ``targets`` ``[n, T]`` after ``prompt`` ``[P]``, the prompt run once."""
    base = getattr(model, "module", model)
    name = cache_kwarg(base.get_base_model() if hasattr(base, "get_base_model") else base)
    out = model(input_ids=prompt[None], use_cache=True, **{name: DynamicCache(config=base.config)})  # [1, P, V]
    rows, width = targets.shape
    first = out.logits[:, -1:].expand(rows, -1, -1)  # [n, 1, V]
    if width == 1:
        return first
    layers = _layers(output_cache(out))
    cache = _cache(base, [layer.keys.expand(rows, -1, -1, -1) for layer in layers],
                   [layer.values.expand(rows, -1, -1, -1) for layer in layers])  # [n, H, P, D] views
    positions = torch.arange(prompt.shape[0], prompt.shape[0] + width - 1, device=prompt.device)[None]
    rest = model(input_ids=targets[:, :-1], position_ids=positions.expand(rows, -1), use_cache=True,
                 **{name: cache}).logits  # [n, T-1, V]
    return torch.cat([first, rest], dim=1)


def save_adapter(model, path: str | Path, fmt: QAFormat) -> Path:
    """Save the LoRA adapter and the format (which names the base weights) so the folder loads as a preset."""
    path = Path(path)
    model.save_pretrained(path)
    save_format(fmt, path)
    return path
