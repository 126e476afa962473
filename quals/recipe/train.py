"""``quals train-qagen``: fine-tune a QAGen model on SQuAD-format data (seq2seq in full, causal LMs with LoRA).

Inputs and targets are written in a preset's format and tokenized exactly as the scorer tokenizes them
(``QAGenModel.training_input`` and ``QAGenModel.target``): for a seq2seq model the paper's ``"question <sep>
answer"`` + eos, leading special tokens dropped, decoder started from ``decoder_start_token_id``; for a causal LM
the preset's chat prompt and the reply after its question prefix. The saved folder holds ``quals_format.json``,
so ``QualsScorer(model=folder)`` loads it with the right format (a LoRA folder names its base weights).
The kind-specific parts live in ``quals.recipe.seq2seq`` and ``quals.recipe.causal``.

    # the paper's model, on a GPU
    quals train-qagen --train squad/train-v1.1.json --train newsqa.json --base facebook/bart-large --out qagen
    # a small model warm-started from an encoder checkpoint (how the bundled ``mini`` preset was built)
    quals train-qagen --train dev-v1.1.json --heldout-articles 6 --base path/to/MiniLM --architecture bart \\
        --decoder-layers 3 --out mini
    # a LoRA adapter on an instruction-tuned causal LM (the weights of --preset smollm2-135m by default)
    quals train-qagen --train dev-v1.1.json --heldout-articles 6 --preset smollm2-135m --crop-sentences 1 --out lora

Speed: each batch holds ``--batch-size`` passages with up to ``--targets-per-passage`` QA targets each; a passage is
encoded once and its states reused by all its targets (SQuAD has ~9 distinct answers per paragraph).
``--cross-attention-lr-scale`` trains freshly initialised cross-attention faster, and ``--cloze-texts`` adds
self-supervised cloze pairs that make the decoder copy from its input (docs/qagen.md).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoConfig, Seq2SeqTrainingArguments

from quals.engine.model_folders import format_from_folder, save_qagen
from quals.engine.presets import get_preset
from quals.engine.qagen import QAGenModel, build_qagen
from quals.engine.weights import load_pretrained, weights_location
from quals.flags import add_dataclass_arguments, dataclass_from_args
from quals.outputs import OutputError, check_folder
from quals.recipe.causal import CausalQAGenTrainer, PromptTargetsCollator, add_lora, save_adapter
from quals.recipe.data import QAExample, cloze_examples, crop_to_answer, load_examples, split_by_article
from quals.recipe.seq2seq import PassageGroupCollator, QAGenTrainer, load_seq2seq_base


@dataclass
class TrainQAGenConfig:
    """Settings of ``quals train-qagen`` (each field is a ``--flag``)."""

    train: list[str] = field(metadata={"help": "SQuAD-format JSON, NewsQA-style story JSON or QA JSONL (repeatable)."})
    out: str = field(metadata={"help": "Output folder (checkpoints under out/checkpoints)."})
    base: str | None = field(default=None, metadata={
        "help": "Hub id or folder: a seq2seq model, an encoder to warm-start from, or a causal LM (None: the "
                "preset's own weights, e.g. the GGUF file of --preset smollm2-135m)."})
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside the --base folder or repo."})
    allow_pickle: bool = field(default=False, metadata={
        "help": "Also load PyTorch pickle weights (*.bin) for --base, which can run code when loaded (warns)."})
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
    overwrite: bool = field(default=False, metadata={"help": "Train again into an --out folder that holds an earlier "
                                                             "training run (its files are replaced)."})
    force: bool = field(default=False, metadata={"help": "Use a non-empty --out folder that is not a training run "
                                                         "(none of its files is replaced or deleted)."})
    save_dtype: str = field(default="float32", metadata={"help": "Weights of the final folder: float32 or float16."})
    name: str | None = field(default=None, metadata={"help": "Name of the saved format (default: folder name)."})
    num_beam_groups: int | None = field(default=None, metadata={"help": "Saved format: QA pairs per summary."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Saved format: generation limit."})
    min_new_tokens: int | None = field(default=None, metadata={"help": "Saved format: minimum length."})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even if a GPU is available."})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, TrainQAGenConfig)


def run(args: argparse.Namespace) -> int:
    try:
        train_qagen(dataclass_from_args(TrainQAGenConfig, args))
    except OutputError as err:
        print(f"quals train-qagen: error: {err}", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------------------------------------- model and data
def load_model_and_tokenizer(config: TrainQAGenConfig, fmt):
    """The base model (seq2seq, causal LM, or a seq2seq warm-started from an encoder) and its tokenizer.

    A seq2seq model gets the separator as a new token when its tokenizer splits it; a causal LM's text format
    needs no new token.
    """
    if config.base is None or config.gguf_file is not None or _is_causal(config.base):
        return load_pretrained(config.base or weights_location(fmt), config.gguf_file if config.base else
                               fmt.gguf_file, allow_pickle=config.allow_pickle)
    return load_seq2seq_base(config.base, fmt, config.architecture, config.decoder_layers, config.cross_attention_init,
                             config.allow_pickle)


def _is_causal(base: str) -> bool:
    config = AutoConfig.from_pretrained(base)
    return not getattr(config, "is_encoder_decoder", False) and any(
        name.endswith(("ForCausalLM", "LMHeadModel")) for name in getattr(config, "architectures", None) or [])


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


TRAINING_FILES = ["split.json", "checkpoints", "training_log.json", "quals_format.json", "config.json",
                  "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                  "adapter_config.json", "adapter_model.safetensors", "chat_template.jinja", "README.md"]


def check_output_folder(out: Path, config: TrainQAGenConfig) -> None:
    """Refuse to write into a folder of other files (without --force) or over an earlier run (without --resume or
    --overwrite); see ``quals.outputs``."""
    check_folder(out, TRAINING_FILES, config.force, "split.json", "train-qagen output folder")
    if (out / "split.json").exists() and not (config.resume or config.overwrite):
        raise OutputError(f"{out} holds an earlier training run; pass --resume to continue it, or --overwrite to "
                          "train again (its files are replaced)")


# ---------------------------------------------------------------------------------------------- training
def train_qagen(config: TrainQAGenConfig) -> Path:
    """Train, save the final folder (model or adapter, tokenizer, ``quals_format.json``, ``training_log.json``)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    check_output_folder(out, config)
    fmt = format_from_folder(config.preset) or get_preset(config.preset)
    saved = {k: v for k, v in {"num_beam_groups": config.num_beam_groups, "max_new_tokens": config.max_new_tokens,
                               "min_new_tokens": config.min_new_tokens}.items() if v is not None}
    preset_limit = fmt.max_source_tokens  # a causal LM scores with the preset's input limit, not the training cut
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
    if causal:
        fmt = fmt.replace(max_source_tokens=preset_limit)
    if lora:
        save_adapter(model, out, fmt)
    else:
        save_qagen(model, tokenizer, out, fmt)
    (out / "training_log.json").write_text(json.dumps(trainer.state.log_history, indent=1) + "\n")
    return out
