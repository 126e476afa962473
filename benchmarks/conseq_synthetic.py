"""CONSEQ on a synthetic summarization task with known facts (a benchmark, not a test).

The world: templated news "PERSON visited CITY on DAY ." plus filler sentences (``quals.testing.SyntheticWorld``).
The reference summary is the fact sentence. Two kinds of hallucinated training references, as in XSum:

- extrinsic (``--no-day``, default 40 % of documents): the document does not say when ("PERSON visited CITY ."),
  yet ``--invent-day`` (default 60 %) of their references still name a day, which the model learns to invent;
- intrinsic (``--corrupt``, default 10 %): one entity of the reference is swapped for another of its kind.

Held-out references are faithful (no invented day, no swap).

1. MLE: a tiny BART summarizer trained with the stock ``Seq2SeqTrainer``;
2. CONSEQ-QUALS: the same script with ``ContrastiveTrainer`` + ``QualsScorer`` (a tiny QAGen trained on the same
   world), starting from the MLE weights, candidates regenerated every epoch;
3. CONSEQ-ROUGE: the paper's ROUGE-contrastive baseline, same recipe with ``RougeScorer`` (ROUGE-L against the
   reference; references all score 1 against themselves, so every reference is an eligible positive).

Reported on held-out documents, for greedy decoding and for top-k 50 sampling: the share of summaries containing an
entity (person, city or day) absent from the source, ROUGE-L F1 against the reference, and the wall time of one
regeneration round relative to one MLE epoch. Writes ``benchmarks/results/conseq_synthetic.json``.

    python benchmarks/conseq_synthetic.py                      # about 6 minutes on one CPU core
    python benchmarks/conseq_synthetic.py --qagen /tmp/qagen   # reuse a tiny QAGen folder
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import statistics
import time
from pathlib import Path

import torch
from datasets import Dataset
from rouge_score import rouge_scorer
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

from quals import QualsScorer
from quals.testing import CITIES, DAYS, PEOPLE, SyntheticWorld, tiny_bart, train_tiny_qagen, word_tokenizer
from trainer_ext import ContrastiveTrainer, ContrastiveTrainingArguments, RougeScorer


ENTITIES = set(PEOPLE) | set(CITIES) | set(DAYS)
FIELDS = ("person", "city", "day")


def build_split(world: SyntheticWorld, count: int, no_day: float, invent_day: float, corrupt: float, prefix: str
                ) -> list[dict]:
    rows = []
    for i in range(count):
        fact = world.fact()
        document = world.document(fact, filler=2)
        dayless = world.rng.random() < no_day
        swapped = world.rng.random() < corrupt
        said = world.corrupt(fact, world.rng.choice(FIELDS)) if swapped else fact
        summary = world.sentence(said)
        invented = dayless and world.rng.random() < invent_day
        if dayless:
            document = document.replace(f" on {fact.day} .", " .", 1)
            if not invented:
                summary = summary.replace(f" on {said.day} .", " .")
        rows.append({"id": f"{prefix}-{i}", "document": document, "summary": summary,
                     "hallucinated_reference": swapped or invented})
    return rows


def tokenize(rows: list[dict], tokenizer) -> Dataset:
    return Dataset.from_list(rows).map(lambda b: tokenizer(b["document"], text_target=b["summary"]), batched=True)


def hallucinates(summary: str, source: str) -> bool:
    """True when the summary names a person, city or day that the source does not mention."""
    source_words = set(source.split())
    return any(word in ENTITIES and word not in source_words for word in summary.split())


@torch.no_grad()
def summarize(model, tokenizer, documents: list[str], sample: bool, seed: int) -> list[str]:
    model.eval()
    torch.manual_seed(seed)
    out = []
    for start in range(0, len(documents), 64):
        batch = tokenizer(documents[start: start + 64], return_tensors="pt", padding=True)
        kwargs = {"do_sample": True, "top_k": 50} if sample else {"num_beams": 1, "do_sample": False}
        ids = model.generate(**batch, max_new_tokens=12, **kwargs)
        out += tokenizer.batch_decode(ids, skip_special_tokens=True)
    return out


def evaluate_model(model, tokenizer, rows: list[dict], seed: int) -> dict:
    rouge = rouge_scorer.RougeScorer(["rougeL"])
    documents, references = [r["document"] for r in rows], [r["summary"] for r in rows]
    result = {}
    for mode in ("greedy", "sampled"):
        summaries = summarize(model, tokenizer, documents, sample=mode == "sampled", seed=seed)
        result[mode] = {
            "hallucination_share": statistics.fmean(hallucinates(s, d) for s, d in zip(summaries, documents,
                                                                                       strict=True)),
            "rougeL": statistics.fmean(rouge.score(r, s)["rougeL"].fmeasure for s, r in zip(summaries, references,
                                                                                           strict=True)),
            "examples": summaries[:3]}
    return result


def common_args(out: Path, name: str, epochs: float, lr: float, batch: int, seed: int) -> dict:
    return {"output_dir": str(out / name), "num_train_epochs": epochs, "learning_rate": lr,
            "per_device_train_batch_size": batch, "per_device_eval_batch_size": 64, "report_to": "none",
            "save_strategy": "no", "logging_strategy": "epoch", "use_cpu": True, "disable_tqdm": True, "seed": seed,
            "lr_scheduler_type": "constant"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-docs", type=int, default=400)
    parser.add_argument("--eval-docs", type=int, default=200)
    parser.add_argument("--no-day", type=float, default=0.4, help="share of documents that do not name the day")
    parser.add_argument("--invent-day", type=float, default=0.6,
                        help="share of those whose training reference names a day anyway")
    parser.add_argument("--corrupt", type=float, default=0.1, help="share of training references with a swapped "
                                                                   "entity")
    parser.add_argument("--mle-epochs", type=int, default=25)
    parser.add_argument("--mle-lr", type=float, default=1e-3)
    parser.add_argument("--conseq-epochs", type=int, default=3)
    parser.add_argument("--conseq-lr", type=float, default=3e-5)
    parser.add_argument("--num-candidates", type=int, default=6)
    parser.add_argument("--qagen", type=Path, default=None, help="tiny QAGen folder (trained here if absent)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("runs/conseq_synthetic"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/conseq_synthetic.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("transformers").setLevel(logging.ERROR)

    world = SyntheticWorld(args.seed + 1)
    tokenizer = word_tokenizer()
    train_rows = build_split(world, args.train_docs, args.no_day, args.invent_day, args.corrupt, "train")
    eval_rows = build_split(world, args.eval_docs, args.no_day, 0.0, 0.0, "eval")
    train = tokenize(train_rows, tokenizer)
    collator = DataCollatorForSeq2Seq(tokenizer)

    # 1. MLE with the stock Seq2SeqTrainer
    model = tiny_bart(len(tokenizer), d_model=64, layers=2, seed=args.seed)
    mle = Seq2SeqTrainer(model=model, args=Seq2SeqTrainingArguments(
        **common_args(args.work_dir, "mle", args.mle_epochs, args.mle_lr, 16, args.seed)),
        train_dataset=train, data_collator=collator, processing_class=tokenizer)
    started = time.perf_counter()
    mle.train()
    mle_epoch_seconds = (time.perf_counter() - started) / args.mle_epochs
    mle_model = mle.model
    results = {"MLE": evaluate_model(mle_model, tokenizer, eval_rows, args.seed)}
    print(f"MLE: {mle_epoch_seconds:.1f} s/epoch", results["MLE"]["greedy"], flush=True)

    # 2-3. CONSEQ from the MLE weights: the same script with the trainer class and arguments swapped
    qagen = args.qagen or args.work_dir / "qagen"
    if not (Path(qagen) / "config.json").exists():
        train_tiny_qagen(qagen, seed=args.seed)
    quals = QualsScorer(model=str(qagen), device="cpu", show_progress=False)
    variants = {"CONSEQ-QUALS": (quals, 0.3, "all"), "CONSEQ-QUALS-novel": (quals, 0.3, "novel"),
                "CONSEQ-ROUGE": (RougeScorer(), 1.0, "all")}
    rounds = {}
    for name, (scorer, positive_fraction, unlikelihood_tokens) in variants.items():
        conseq_args = ContrastiveTrainingArguments(
            **common_args(args.work_dir, name, args.conseq_epochs, args.conseq_lr, 16, args.seed),
            conseq_num_candidates=args.num_candidates, generation_max_length=12, conseq_negative_fraction=0.3,
            conseq_positive_fraction=positive_fraction, conseq_source_column="document",
            conseq_summary_column="summary", conseq_unlikelihood_tokens=unlikelihood_tokens)
        trainer = ContrastiveTrainer(model=copy.deepcopy(mle_model), args=conseq_args, train_dataset=train,
                                     processing_class=tokenizer, scorer=scorer)
        trainer.train()
        history = trainer.candidate_store.history
        selected = trainer.candidate_store.selection.positives
        corrupted_ids = {r["id"] for r in train_rows if r["hallucinated_reference"]}
        rounds[name] = {
            "regeneration_seconds": [h["conseq/regeneration_seconds"] for h in history],
            "num_pairs": [h["conseq/num_positives"] for h in history],
            "last_round_hallucinated_positives": sum(i in corrupted_ids for i in selected)}
        results[name] = evaluate_model(trainer.model, tokenizer, eval_rows, args.seed)
        print(name, rounds[name], results[name]["greedy"], flush=True)

    quals_rounds = rounds["CONSEQ-QUALS"]["regeneration_seconds"]
    report = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "mle_epoch_seconds": mle_epoch_seconds,
              "quals_regeneration_seconds_mean": statistics.fmean(quals_rounds),
              "quals_regeneration_over_mle_epoch": statistics.fmean(quals_rounds) / mle_epoch_seconds,
              "rounds": rounds, "results": results,
              "note": "timings on a shared 2-core CPU machine; other jobs ran at the same time"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))

    print(f"\n{'model':<20} {'halluc. greedy':>15} {'ROUGE-L greedy':>15} {'halluc. sampled':>16} "
          f"{'ROUGE-L sampled':>16}")
    for name, result in results.items():
        print(f"{name:<20} {result['greedy']['hallucination_share']:>15.3f} {result['greedy']['rougeL']:>15.3f} "
              f"{result['sampled']['hallucination_share']:>16.3f} {result['sampled']['rougeL']:>16.3f}")
    print(f"one QUALS regeneration round = {report['quals_regeneration_over_mle_epoch']:.2f} x one MLE epoch "
          f"({report['quals_regeneration_seconds_mean']:.1f} s vs {mle_epoch_seconds:.1f} s)")


if __name__ == "__main__":
    main()
