"""``quals train-qagen``: fine-tune a QAGen model with the ``Seq2SeqTrainer`` on SQuAD-format data.

Targets are written in a preset's format (the paper's ``"question <sep> answer"`` + eos, one pair per sequence,
by default) and tokenized exactly as the scorer tokenizes them (``QAGenModel.target``): leading special tokens
dropped, decoder started from ``decoder_start_token_id``, one final eos. The saved folder holds
``quals_format.json``, so ``QualsScorer(model=folder)`` loads it with the right format.

    # the paper's model, on a GPU
    quals train-qagen --train squad/train-v1.1.json --train newsqa.json --base facebook/bart-large --out qagen
    # a small model warm-started from an encoder checkpoint (how the bundled ``mini`` preset was built)
    quals train-qagen --train dev-v1.1.json --heldout-articles 6 --base path/to/MiniLM --architecture bart \\
        --decoder-layers 3 --out mini

Speed: each batch holds ``--batch-size`` passages with up to ``--targets-per-passage`` QA targets each; a passage is
encoded once and its states reused by all its targets (SQuAD has ~9 distinct answers per paragraph).
``--cross-attention-lr-scale`` trains freshly initialised cross-attention faster, and ``--cloze-texts`` adds
self-supervised cloze pairs that make the decoder copy from its input (docs/qagen.md).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, Seq2SeqTrainer, Seq2SeqTrainingArguments

from quals.bundled import format_from_folder, save_qagen
from quals.formats import get_preset
from quals.loading import load_pretrained, weights_location
from quals.qagen import QAGenModel, build_qagen
from quals.qagen_data import QAExample, cloze_examples, crop_to_answer, load_examples, split_by_article
from quals.train_causal import CausalQAGenTrainer, PromptTargetsCollator, add_lora, save_adapter


@dataclass
class TrainQAGenConfig:
    """Settings of ``quals train-qagen`` (each field is a ``--flag``)."""

    train: list[str] = field(metadata={"help": "SQuAD-format JSON, NewsQA-style story JSON or QA JSONL (repeatable)."})
    out: str = field(metadata={"help": "Output folder (checkpoints under out/checkpoints)."})
    base: str | None = field(default=None, metadata={
        "help": "Hub id or folder: a seq2seq model, an encoder to warm-start from, or a causal LM (None: the "
                "preset's own weights, e.g. the GGUF file of --preset smollm2-135m)."})
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside the --base folder or repo."})
    preset: str = field(default="paper", metadata={"help": "Target format preset (or a trained folder)."})
    lora: bool | None = field(default=None, metadata={
        "help": "Train a LoRA adapter (peft) instead of every weight; None: yes for causal LMs, no for seq2seq."})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scale = alpha / rank)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    keep_examples: bool = field(default=False, metadata={
        "help": "Causal LMs: keep the preset's few-shot examples in the training prompts (default: train and then "
                "score zero-shot, with shorter prompts)."})
    architecture: str = field(default="encoder-decoder", metadata={
        "help": "Warm start from an encoder: 'encoder-decoder' (EncoderDecoderModel) or 'bart' (shared embeddings)."})
    decoder_layers: int | None = field(default=None, metadata={"help": "Decoder depth for --architecture bart."})
    cross_attention_init: str = field(default="random", metadata={
        "help": "--architecture bart: fresh cross-attention ('random') or a copy of each decoder layer's pretrained "
                "self-attention ('self-attention')."})
    newsqa_split: str | None = field(default=None, metadata={"help": "Keep NewsQA stories of this type only."})
    heldout_articles: int = field(default=0, metadata={"help": "Whole articles of --train held out for evaluation."})
    cloze_texts: list[str] = field(default_factory=list, metadata={
        "help": "JSONL of articles for cloze pairs (fields --cloze-fields; rows with a true overlaps_eval skipped)."})
    cloze_fields: list[str] = field(default_factory=lambda: ["document"], metadata={"help": "Text fields to use."})
    cloze_per_text: int = field(default=4, metadata={"help": "Cloze pairs per text."})
    cloze_per_passage: int = field(default=0, metadata={"help": "Cloze pairs per training passage of --train."})
    cloze_only: bool = field(default=False, metadata={"help": "Train on cloze pairs only (a warm-up stage)."})
    crop_sentences: int | None = field(default=None, metadata={
        "help": "Cut each --train passage to the sentence holding its answer and N sentences on each side: short "
                "inputs, faster steps, an easier cross-attention to learn (held-out passages stay whole)."})
    max_source_tokens: int = field(default=384, metadata={"help": "Passages are truncated to this many tokens."})
    targets_per_passage: int = field(default=8, metadata={"help": "QA targets sharing one encoded passage."})
    batch_size: int = field(default=4, metadata={"help": "Passages per batch."})
    epochs: float = field(default=3.0, metadata={"help": "Training epochs."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many steps (overrides --epochs)."})
    lr: float = field(default=1e-4, metadata={"help": "Peak learning rate (linear warm-up and decay)."})
    cross_attention_lr_scale: float = field(default=1.0, metadata={
        "help": "Learning-rate multiplier of cross-attention weights (fresh in a warm start)."})
    warmup_steps: int = field(default=100, metadata={"help": "Learning-rate warm-up steps."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    label_smoothing: float = field(default=0.0, metadata={"help": "Label smoothing factor."})
    seed: int = field(default=0, metadata={"help": "Seed of the split, the cloze pairs and training."})
    save_steps: int = field(default=200, metadata={"help": "Checkpoint every this many steps."})
    eval_steps: int = field(default=200, metadata={"help": "Held-out token loss every this many steps."})
    eval_groups: int = field(default=64, metadata={"help": "Held-out passage groups used for that loss."})
    logging_steps: int = field(default=20, metadata={"help": "Log the training loss every this many steps."})
    resume: bool = field(default=False, metadata={"help": "Resume from the last checkpoint in out/checkpoints."})
    save_dtype: str = field(default="float32", metadata={"help": "Weights of the final folder: float32 or float16."})
    name: str | None = field(default=None, metadata={"help": "Name of the saved format (default: folder name)."})
    num_beam_groups: int | None = field(default=None, metadata={"help": "Saved format: QA pairs per summary."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Saved format: generation limit."})
    min_new_tokens: int | None = field(default=None, metadata={"help": "Saved format: minimum length."})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even if a GPU is available."})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in fields(TrainQAGenConfig):
        flag = "--" + f.name.replace("_", "-")
        required = f.default is MISSING and f.default_factory is MISSING
        default = None if required else (f.default_factory() if f.default_factory is not MISSING else f.default)
        kwargs = {"help": f.metadata["help"], "required": required, "default": default}
        if f.type in ("bool", "bool | None"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=f.metadata["help"])
        elif f.type.startswith("list"):
            parser.add_argument(flag, action="extend", nargs="+", **{**kwargs, "default": None})
        else:
            number = {"int": int, "float": float, "int | None": int}.get(f.type, str)
            parser.add_argument(flag, type=number, **kwargs)


def run(args: argparse.Namespace) -> int:
    config = TrainQAGenConfig(**{f.name: getattr(args, f.name) for f in fields(TrainQAGenConfig)
                                 if getattr(args, f.name) is not None})
    train_qagen(config)
    return 0


# ---------------------------------------------------------------------------------------------- model and data
def load_model_and_tokenizer(config: TrainQAGenConfig, fmt):
    """The base model (seq2seq, causal LM, or a seq2seq warm-started from an encoder) and its tokenizer.

    A seq2seq model gets the separator as a new token when its tokenizer splits it; a causal LM's text format
    needs no new token.
    """
    if config.base is None or config.gguf_file is not None or _is_causal(config.base):
        return load_pretrained(config.base or weights_location(fmt), config.gguf_file if config.base else
                               fmt.gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(config.base)
    if getattr(AutoConfig.from_pretrained(config.base), "is_encoder_decoder", False):
        if config.decoder_layers is not None or config.cross_attention_init != "random":
            raise ValueError("--decoder-layers and --cross-attention-init shape a warm start from an encoder; "
                             f"{config.base} is already a seq2seq model")
        model = AutoModelForSeq2SeqLM.from_pretrained(config.base, dtype=torch.float32)
    else:
        from quals.warm_start import warm_start

        model = warm_start(config.base, config.architecture, tokenizer, config.decoder_layers,
                           config.cross_attention_init)
    separator = fmt.qa_separator.strip()
    if not _round_trips(tokenizer, separator):
        tokenizer.add_tokens([separator], special_tokens=True)
        _resize_embeddings(model, len(tokenizer))
    return model, tokenizer


def _is_causal(base: str) -> bool:
    config = AutoConfig.from_pretrained(base)
    return not getattr(config, "is_encoder_decoder", False) and any(
        name.endswith(("ForCausalLM", "LMHeadModel")) for name in getattr(config, "architectures", None) or [])


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


def build_examples(config: TrainQAGenConfig) -> tuple[list[QAExample], list[QAExample], list[str]]:
    """(train, heldout, heldout article names): --train files split by article, plus cloze pairs."""
    qa = [e for path in config.train for e in load_examples(path, config.newsqa_split)]
    train, heldout = (qa, [])
    if config.heldout_articles:
        train, heldout = split_by_article(qa, config.heldout_articles, config.seed)
    if config.crop_sentences is not None:
        train = [crop_to_answer(e, config.crop_sentences) for e in train]
    cloze = []
    if config.cloze_per_passage:
        passages = list(dict.fromkeys((e.article, e.passage) for e in train))
        cloze += cloze_examples(passages, config.cloze_per_passage, config.seed)
    for path in config.cloze_texts:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        texts = [(f"{row.get('id', i)}:{name}", row[name]) for i, row in enumerate(rows)
                 if not row.get("overlaps_eval") for name in config.cloze_fields]
        cloze += cloze_examples(texts, config.cloze_per_text, config.seed)
    train = cloze if config.cloze_only else train + cloze
    return train, heldout, sorted({e.article for e in heldout})


def passage_groups(examples: list[QAExample], qagen: QAGenModel, max_source_tokens: int, targets_per_passage: int,
                   seed: int = 0) -> Dataset:
    """One row per (passage, up to ``targets_per_passage`` targets): ``input_ids``, ``labels`` (a list), ``length``."""
    by_passage: dict[str, list[list[int]]] = {}
    for e in examples:
        by_passage.setdefault(e.passage, []).append(qagen.target(e.question, e.answer).ids)
    rng, rows = random.Random(seed), {"input_ids": [], "labels": [], "length": []}
    for passage, targets in by_passage.items():
        input_ids = qagen.training_input(passage, max_source_tokens)
        rng.shuffle(targets)
        for start in range(0, len(targets), targets_per_passage):
            rows["input_ids"].append(input_ids)
            rows["labels"].append(targets[start: start + targets_per_passage])
            rows["length"].append(len(input_ids))
    return Dataset.from_dict(rows)


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


# ---------------------------------------------------------------------------------------------- training
def train_qagen(config: TrainQAGenConfig) -> Path:
    """Train, save the final folder (model or adapter, tokenizer, ``quals_format.json``, ``training_log.json``)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    fmt = format_from_folder(config.preset) or get_preset(config.preset)
    saved = {k: v for k, v in {"num_beam_groups": config.num_beam_groups, "max_new_tokens": config.max_new_tokens,
                               "min_new_tokens": config.min_new_tokens}.items() if v is not None}
    fmt = fmt.replace(name=config.name or out.name, max_source_tokens=config.max_source_tokens, **saved)
    torch.manual_seed(config.seed)
    model, tokenizer = load_model_and_tokenizer(config, fmt)
    causal = not getattr(model.config, "is_encoder_decoder", False)
    if causal:
        fmt = fmt.replace(examples=fmt.examples if config.keep_examples else (), adapter=None,
                          **({"model": config.base, "gguf_file": config.gguf_file, "weights_package": None}
                             if config.base else {}))
    qagen = build_qagen(model, tokenizer, fmt)  # tokenizes inputs and targets exactly as the scorer will
    lora = causal if config.lora is None else config.lora
    if lora:
        model = add_lora(model, config.lora_rank, config.lora_alpha, config.lora_dropout)
    train, heldout, heldout_articles = build_examples(config)
    if not train:
        raise ValueError("No training examples: check --train / --cloze-texts")
    train_set = passage_groups(train, qagen, config.max_source_tokens, config.targets_per_passage, config.seed)
    eval_set = None
    if heldout:
        eval_set = passage_groups(heldout, qagen, config.max_source_tokens, config.targets_per_passage)
        eval_set = eval_set.shuffle(seed=config.seed).select(range(min(config.eval_groups, len(eval_set))))
    print(f"train: {len(train)} examples in {len(train_set)} passage groups; held out: {len(heldout)} examples "
          f"from {len(heldout_articles)} articles")
    out.mkdir(parents=True, exist_ok=True)
    (out / "split.json").write_text(json.dumps({"seed": config.seed, "heldout_articles": heldout_articles,
                                                "train_examples": len(train), "heldout_examples": len(heldout),
                                                "config": asdict(config)}, indent=2) + "\n")
    args = Seq2SeqTrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, learning_rate=config.lr, num_train_epochs=config.epochs,
        max_steps=config.max_steps, warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
        label_smoothing_factor=0.0, seed=config.seed, save_steps=config.save_steps, save_total_limit=2,
        logging_steps=config.logging_steps, eval_strategy="steps" if eval_set is not None else "no",
        eval_steps=config.eval_steps, prediction_loss_only=True, remove_unused_columns=False,
        train_sampling_strategy="group_by_length", report_to="none", use_cpu=config.use_cpu,
        dataloader_num_workers=0, disable_tqdm=False, label_names=["targets"] if causal else None)
    shared = {"model": model, "args": args, "train_dataset": train_set, "eval_dataset": eval_set,
              "processing_class": tokenizer, "label_smoothing": config.label_smoothing}
    if causal:
        trainer = CausalQAGenTrainer(**shared, data_collator=PromptTargetsCollator(), pad_id=qagen.pad_id)
    else:
        trainer = QAGenTrainer(**shared, data_collator=PassageGroupCollator(qagen.pad_id),
                               cross_attention_lr_scale=config.cross_attention_lr_scale)
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if config.resume and checkpoints else None)
    if eval_set is not None and trainer.state.global_step % config.eval_steps:
        trainer.evaluate()  # a final held-out loss, unless the last step already logged one
    model = trainer.model.eval()
    if config.save_dtype in ("float16", "fp16"):
        model = model.half()
    if lora:
        save_adapter(model, out, fmt)
    else:
        save_qagen(model, tokenizer, out, fmt)
    (out / "training_log.json").write_text(json.dumps(trainer.state.log_history, indent=1) + "\n")
    return out
