"""The seq2seq half of ``quals train-qagen``: an encoder-decoder QAGen (the paper's kind), trained in full.

The base is a seq2seq checkpoint, or an encoder checkpoint warm-started into one (``quals.recipe.warm_start``).
Each batch holds passages with several QA targets each; a passage is encoded once and its states reused by all
its targets (``QAGenTrainer.compute_loss``). ``--cross-attention-lr-scale`` trains freshly initialised
cross-attention faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, Seq2SeqTrainer

from quals.engine.weights import safe_weights
from quals.recipe.warm_start import warm_start


def load_seq2seq_base(base: str, fmt, architecture: str = "encoder-decoder", decoder_layers: int | None = None,
                      cross_attention_init: str = "random", allow_pickle: bool = False):
    """A seq2seq model (or one warm-started from an encoder) and its tokenizer, with the separator as a new token
    when the tokenizer splits it."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    if getattr(AutoConfig.from_pretrained(base), "is_encoder_decoder", False):
        if decoder_layers is not None or cross_attention_init != "random":
            raise ValueError("--decoder-layers and --cross-attention-init shape a warm start from an encoder; "
                             f"{base} is already a seq2seq model")
        model = AutoModelForSeq2SeqLM.from_pretrained(base, dtype=torch.float32, **safe_weights(allow_pickle))
    else:
        model = warm_start(base, architecture, tokenizer, decoder_layers, cross_attention_init, allow_pickle)
    separator = fmt.qa_separator.strip()
    if not _round_trips(tokenizer, separator):
        tokenizer.add_tokens([separator], special_tokens=True)
        _resize_embeddings(model, len(tokenizer))
    return model, tokenizer


def _round_trips(tokenizer, separator: str) -> bool:
    """True when ``"q <sep> a"`` decodes back with the separator intact and spaced (so ``parse`` finds it)."""
    text = f"q {separator} a"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return separator in tokenizer.get_vocab() or tokenizer.decode(ids).split() == text.split()


def _resize_embeddings(model, size: int) -> None:
    """Grow the vocabulary; new rows start at the mean embedding (not random) so they do not dominate logits."""
    modules = [model.encoder, model.decoder] if hasattr(model, "encoder") and not hasattr(model, "model") else [model]
    for module in modules:
        old = module.get_input_embeddings().weight.shape[0]
        module.resize_token_embeddings(size, mean_resizing=False)
        with torch.no_grad():
            embeddings = module.get_input_embeddings().weight
            embeddings[old:] = embeddings[:old].mean(0)
    model.config.vocab_size = size
    if hasattr(model.config, "decoder"):
        model.config.decoder.vocab_size = size


@dataclass
class PassageGroupCollator:
    """Pads passages ``[P, L]`` and their targets ``[N, T]`` (-100 padding); ``encoder_index[n]``: passage of row n."""

    pad_id: int

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)  # [P, L]
        attention_mask = torch.zeros_like(input_ids)
        for i, row in enumerate(rows):
            input_ids[i, : len(row["input_ids"])] = torch.tensor(row["input_ids"])
            attention_mask[i, : len(row["input_ids"])] = 1
        targets = [(i, t) for i, row in enumerate(rows) for t in row["labels"]]
        labels = torch.full((len(targets), max(len(t) for _, t in targets)), -100, dtype=torch.long)  # [N, T]
        for n, (_, target) in enumerate(targets):
            labels[n, : len(target)] = torch.tensor(target)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                "encoder_index": torch.tensor([i for i, _ in targets])}


def is_cross_attention(name: str) -> bool:
    """Cross-attention weights: BART/T5-style ``encoder_attn``/``EncDecAttention``, BERT-style ``crossattention``."""
    return any(key in name for key in ("encoder_attn", "crossattention", "EncDecAttention"))


class QAGenTrainer(Seq2SeqTrainer):
    """``Seq2SeqTrainer`` that encodes each passage once for all its targets and can scale cross-attention's lr."""

    def __init__(self, *args, cross_attention_lr_scale: float = 1.0, label_smoothing: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.cross_attention_lr_scale = cross_attention_lr_scale
        self.label_smoothing = label_smoothing

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        encoder = getattr(model, "module", model).get_encoder()
        hidden = encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        index = inputs["encoder_index"]  # [N]
        outputs = model(encoder_outputs=(hidden[index],), attention_mask=inputs["attention_mask"][index],
                        labels=inputs["labels"])  # hidden[index]: [N, L, H]
        loss = outputs.loss
        if self.label_smoothing:  # token mean of (1 - eps) NLL + eps * mean_v(-log p_v), as fairseq/HF smooth
            loss = torch.nn.functional.cross_entropy(outputs.logits.flatten(0, 1).float(), inputs["labels"].flatten(),
                                                     ignore_index=-100, label_smoothing=self.label_smoothing)
        return (loss, outputs) if return_outputs else loss

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.cross_attention_lr_scale != 1.0 and not getattr(self, "_lr_split", False):
            names = {id(p): n for n, p in (model or self.model).named_parameters()}
            for group in list(optimizer.param_groups):
                cross = [p for p in group["params"] if is_cross_attention(names.get(id(p), ""))]
                if cross:
                    group["params"] = [p for p in group["params"] if not is_cross_attention(names.get(id(p), ""))]
                    scaled_lr = group["lr"] * self.cross_attention_lr_scale
                    optimizer.add_param_group({**group, "params": cross, "lr": scaled_lr})
            self._lr_split = True
        return optimizer
