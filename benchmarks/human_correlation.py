"""Does QUALS agree with people? Summary-level agreement with human consistency judgments.

For each QAGen configuration asked for (``--preset``, repeatable, with optional ``--model``/``--gguf-file`` and
``--set key=value`` overrides), one scorer pass per data set gives every named QUALS variant (the pass records the
per-token log-likelihoods of each kept pair given the source, the summary and no passage):

- ``pair / summary``: the paper's QUALS (whole pair, LL_source - LL_summary);
- ``answer / summary``, ``pair / no passage``, ``answer / no passage``: ``QualsConfig.score_tokens`` x
  ``ll_reference`` (docs/human_correlation.md);
- ``LL_source``: the source term alone.

Baselines are computed on the same summaries in the same run: unigram, bigram, content-word and number precision
of the summary against its source, and rare-word precision (a named-entity proxy; needs ``--rare-word-reference``,
documents whose word frequencies define "rare"). Every metric gets Pearson and Spearman against the human score and
ROC AUC against the binary label, with bootstrap 95 % intervals, and balanced accuracy at a threshold tuned on a
``split == "val"`` part when the data has one (else 5-fold cross-validated). Summaries with no kept QA pair get
the data set's lowest value of that metric; their count is reported.

Per-row results are cached as JSON lines under ``--cache`` (one file per data set and configuration), written
as rows finish: a killed run resumes where it stopped, and a second run that asks for the same configuration
scores nothing again.

Data: the QAGS sets with ``--qags DIR`` (``../shared/data/qags``: QAGS-C and QAGS-X; human score = mean over
sentences of the 2-of-3 majority vote, label = every sentence has a majority yes), and/or any JSONL with
``document``, ``summary``, a ``score`` and/or ``label``, and optionally ``split`` (``--data file.jsonl``). Nothing
under ``../shared`` is read unless a flag names it.

    python benchmarks/human_correlation.py --qags ../shared/data/qags --preset mini --preset smollm2-135m \\
        --rare-word-reference ../shared/data/xsum_pairs/train_pairs.jsonl
    python benchmarks/human_correlation.py --data labelled.jsonl --preset smollm2-135m
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import ConstantInputWarning, pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from quals import QualsConfig, QualsScorer, resolve_format


PUBLISHED = {"QAGS (Wang et al. 2020)": {"qags-c": {"pearson": 0.545}, "qags-x": {"pearson": 0.175}}}
STOPWORDS = frozenset(["a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "but",
                       "is", "was", "were", "are", "be", "been", "being", "has", "have", "had", "it", "its", "he",
                       "she", "they", "them", "his", "her", "their", "this", "that", "these", "those", "as", "than",
                       "into", "after", "before", "about", "also", "not", "no", "will", "would", "could", "should",
                       "can", "may", "said", "says", "who", "which", "what", "when", "where", "while", "there", "here",
                       "i", "we", "you", "our", "your", "my", "me", "us"])
VARIANTS = {"pair / summary": ("pair", "summary"), "answer / summary": ("answer", "summary"),
            "pair / no passage": ("pair", "no_passage"), "answer / no passage": ("answer", "no_passage")}


# ---------------------------------------------------------------------------------------------- data
def load_qags(path: str | Path) -> list[dict]:
    """QAGS rows -> ``{"document", "summary", "score", "label"}`` (data README's aggregation rules)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        item = json.loads(line)
        votes = [sum(r["response"] == "yes" for r in s["responses"]) >= 2 for s in item["summary_sentences"]]
        summary = " ".join(s["sentence"] for s in item["summary_sentences"])
        rows.append({"document": item["article"], "summary": summary, "score": sum(votes) / len(votes),
                     "label": int(all(votes))})
    return rows


def load_jsonl(path: str | Path) -> list[dict]:
    """Any JSONL with ``document``, ``summary`` and ``score`` and/or ``label`` (a missing one copies the other)."""
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines()):
        if not line.strip():
            continue
        item = json.loads(line)
        missing = [k for k in ("document", "summary") if not isinstance(item.get(k), str)]
        if missing or ("score" not in item and "label" not in item):
            raise ValueError(f"{path}: line {i + 1} needs string 'document' and 'summary' and a 'score' or 'label'")
        label = item.get("label")
        rows.append({"document": item["document"], "summary": item["summary"],
                     "score": float(item.get("score", label)),
                     "label": None if label is None else int(label), "split": item.get("split")})
    return rows


# ---------------------------------------------------------------------------------------------- baselines
def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[.,][0-9]+)*", text.lower())


def precision(summary_items: list, source_items: set) -> float:
    """Share of the summary's items found in the source (1.0 when the summary has none)."""
    return sum(item in source_items for item in summary_items) / len(summary_items) if summary_items else 1.0


def common_words(reference_texts: list[str], max_document_frequency: float = 0.01) -> set[str]:
    """The *common* words: found in at least ``max_document_frequency`` of ``reference_texts`` (rare = the rest)."""
    frequency: dict[str, int] = {}
    for text in reference_texts:
        for word in set(words(text)):
            frequency[word] = frequency.get(word, 0) + 1
    return {w for w, n in frequency.items() if n >= max_document_frequency * len(reference_texts)}


def baselines(rows: list[dict], common: set[str] | None) -> dict[str, list[float]]:
    """Overlap baselines; rare-word precision only with a reference vocabulary of common words."""
    names = ["unigram precision", "bigram precision", "content-word precision", "number precision"]
    scores: dict[str, list[float]] = {name: [] for name in names + (["rare-word precision"] if common else [])}
    for row in rows:
        summary, source = words(row["summary"]), words(row["document"])
        source_set = set(source)
        scores["unigram precision"].append(precision(summary, source_set))
        scores["bigram precision"].append(precision(list(itertools.pairwise(summary)),
                                                    set(itertools.pairwise(source))))
        scores["content-word precision"].append(precision([w for w in summary if w not in STOPWORDS], source_set))
        scores["number precision"].append(precision([w for w in summary if w[0].isdigit()], source_set))
        if common:
            scores["rare-word precision"].append(
                precision([w for w in summary if w not in common and w not in STOPWORDS], source_set))
    return scores


# ---------------------------------------------------------------------------------------------- QUALS, cached
def scorer_config(preset: str, model: str | None, gguf_file: str | None, overrides: dict) -> QualsConfig:
    """The pass's configuration: the preset's, recording LL given no passage too (for the variants)."""
    return QualsConfig(preset=preset, model=model, gguf_file=gguf_file, device="cpu", ll_reference="no_passage",
                       **overrides)


def cache_file(cache: Path, dataset: str, config: QualsConfig) -> Path:
    fmt = resolve_format(config.preset, config.model, config.qa_separator, config.gguf_file)
    key = json.dumps([repr(fmt), config.fingerprint()], sort_keys=True, default=str)
    return cache / dataset / f"{config.preset}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.jsonl"


def row_key(row: dict) -> str:
    return hashlib.sha256(json.dumps([row["summary"], row["document"]]).encode()).hexdigest()[:16]


def score_cached(rows: list[dict], config: QualsConfig, path: Path, batch: int) -> tuple[list[dict], dict]:
    """Per-row results (``quals``, ``pairs`` with per-token log-probs), scoring only rows not in ``path`` yet."""
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            done[record["key"]] = record
    todo = [r for r in rows if row_key(r) not in done]
    seconds, scorer = 0.0, None
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        for start in range(0, len(todo), batch):
            scorer = scorer or QualsScorer(config)
            chunk = todo[start: start + batch]
            began = time.time()
            results = scorer.score([r["summary"] for r in chunk], [r["document"] for r in chunk], return_qa_pairs=True)
            seconds += time.time() - began
            for row, result in zip(chunk, results, strict=True):
                record = {"key": row_key(row), **result.to_dict(), "seconds": (time.time() - began) / len(chunk)}
                record.pop("rejected", None)
                done[record["key"]] = record
                out.write(json.dumps(record) + "\n")
            out.flush()
            print(f"  {path.name}: {len(done)}/{len(rows)} rows", flush=True)
    records = [done[row_key(r)] for r in rows]
    stats = {"rows": len(rows), "scored_now": len(todo), "no_pairs": sum(r["quals"] is None for r in records),
             "mean_pairs": round(float(np.mean([r["num_pairs"] for r in records])), 2),
             "seconds_per_summary": round(float(np.mean([r["seconds"] for r in records])), 2)}
    return records, stats


def variant_scores(records: list[dict]) -> dict[str, list[float | None]]:
    """Every named variant of QUALS (and LL_source alone) from the recorded per-token log-probabilities."""
    def mean(values, start):
        return sum(values[start:]) / len(values[start:])

    out: dict[str, list[float | None]] = {f"QUALS {name}": [] for name in VARIANTS}
    out["LL_source (pair)"] = []
    for record in records:
        pairs = record.get("pairs") or []
        for name, (tokens, reference) in VARIANTS.items():
            values = []
            for p in pairs:
                start = p["answer_start"] if tokens == "answer" else 0
                other = p["summary_logprobs"] if reference == "summary" else p["prior_logprobs"]
                values.append(mean(p["source_logprobs"], start) - mean(other, start))
            out[f"QUALS {name}"].append(float(np.mean(values)) if values else None)
        out["LL_source (pair)"].append(float(np.mean([mean(p["source_logprobs"], 0) for p in pairs])) if pairs
                                       else None)
    return out


# ---------------------------------------------------------------------------------------------- statistics
def correlations(metric: list[float | None], rows: list[dict], bootstrap: int, seed: int) -> dict:
    """Pearson / Spearman vs human score, ROC AUC vs label (bootstrap 95% intervals), balanced accuracy."""
    values = np.array([np.nan if v is None else v for v in metric], dtype=float)
    unscored = int(np.isnan(values).sum())
    if unscored:
        values[np.isnan(values)] = np.nanmin(values) if unscored < len(values) else 0.0
    human = np.array([r["score"] for r in rows], dtype=float)
    labels = [r["label"] for r in rows]
    has_labels = all(label is not None for label in labels) and len(set(labels)) == 2
    label = np.array(labels, dtype=float) if has_labels else None

    def stats(index: np.ndarray) -> dict:
        x, y = values[index], human[index]
        result = {"pearson": _safe(lambda: pearsonr(x, y)[0]), "spearman": _safe(lambda: spearmanr(x, y)[0])}
        if has_labels and len(set(label[index])) == 2:
            result["roc_auc"] = float(roc_auc_score(label[index], x))
        return result

    point = stats(np.arange(len(rows)))
    rng = np.random.default_rng(seed)
    samples = [stats(rng.integers(0, len(rows), len(rows))) for _ in range(bootstrap)]
    for key in list(point):
        draws = [s[key] for s in samples if key in s and not math.isnan(s[key])]
        point[f"{key}_ci95"] = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else None
    if has_labels:
        point["balanced_accuracy"] = heldout_balanced_accuracy(values, label, [r.get("split") for r in rows], seed)
    point["unscored"] = unscored
    return point


def best_threshold(values: np.ndarray, label: np.ndarray) -> float:
    """The threshold (predict consistent when value >= it) with the highest balanced accuracy on these rows."""
    candidates = np.unique(values)
    return float(max(candidates, key=lambda t: balanced_accuracy(values >= t, label)))


def balanced_accuracy(predicted: np.ndarray, label: np.ndarray) -> float:
    positive, negative = label == 1, label == 0
    return float((predicted[positive].mean() + (~predicted[negative]).mean()) / 2)


def heldout_balanced_accuracy(values: np.ndarray, label: np.ndarray, splits: list, seed: int) -> float:
    """Balanced accuracy with a threshold tuned apart from the rows it is measured on: on the ``val`` split if
    the data has one (measured on the rest), else 5-fold cross-validation (stratified by label)."""
    val = np.array([s == "val" for s in splits])
    if val.any() and (~val).any():
        return balanced_accuracy(values[~val] >= best_threshold(values[val], label[val]), label[~val])
    folds = np.zeros(len(values), dtype=int)
    rng = np.random.default_rng(seed)
    for cls in (0, 1):
        index = rng.permutation(np.flatnonzero(label == cls))
        folds[index] = np.arange(len(index)) % 5
    predicted = np.zeros(len(values), dtype=bool)
    for k in range(5):
        test = folds == k
        predicted[test] = values[test] >= best_threshold(values[~test], label[~test])
    return balanced_accuracy(predicted, label)


def _safe(fn) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)  # a bootstrap sample can be constant: nan, skipped
        try:
            return float(fn())
        except ValueError:
            return float("nan")


# ---------------------------------------------------------------------------------------------- main
def parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value) if value[:1] in "-0123456789[{tfn\"" else value
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qags", default=None, help="folder holding mturk_cnndm.jsonl and mturk_xsum.jsonl")
    parser.add_argument("--data", action="append", default=[], help="JSONL: document, summary, score/label[, split]")
    parser.add_argument("--preset", action="append", default=[], help="QAGen preset or trained folder (repeatable)")
    parser.add_argument("--model", default=None, help="weights replacing the preset's (one --preset only)")
    parser.add_argument("--gguf-file", default=None, help="GGUF file inside --model")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="QualsConfig override")
    parser.add_argument("--label", default=None, help="name of the configuration in the report")
    parser.add_argument("--limit", type=int, default=None, help="first N summaries per data set")
    parser.add_argument("--batch", type=int, default=8, help="summaries per scorer call (and per cache flush)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rare-word-reference", default=None, help="JSONL of documents defining rare words")
    parser.add_argument("--cache", default="benchmarks/results/cache", help="per-row results, for resuming")
    parser.add_argument("--out", default="benchmarks/results/human_correlation.json")
    args = parser.parse_args(argv)
    if args.model and len(args.preset) != 1:
        parser.error("--model replaces the weights of exactly one --preset")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    datasets = {}
    if args.qags:
        datasets = {"qags-c": load_qags(Path(args.qags) / "mturk_cnndm.jsonl"),
                    "qags-x": load_qags(Path(args.qags) / "mturk_xsum.jsonl")}
    datasets.update({Path(path).stem: load_jsonl(path) for path in args.data})
    if not datasets:
        parser.error("no data: pass --qags DIR and/or --data FILE")
    common = None
    if args.rare_word_reference:
        common = common_words([json.loads(line)["document"] for line in
                               Path(args.rare_word_reference).read_text().splitlines()])
    report = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    report.update({"bootstrap": args.bootstrap, "seed": args.seed, "published": PUBLISHED})
    overrides = parse_overrides(args.set)
    for name, rows in datasets.items():
        rows = rows[: args.limit] if args.limit else rows
        entry = report.setdefault("datasets", {}).setdefault(name, {})
        entry.update({"summaries": len(rows), "positives": sum(r["label"] or 0 for r in rows)})
        metrics = {f"baseline: {k}": v for k, v in baselines(rows, common).items()}
        for preset in args.preset:
            config = scorer_config(preset, args.model, args.gguf_file, overrides)
            label = args.label or preset
            print(f"{name}: {label}", flush=True)
            records, stats = score_cached(rows, config, cache_file(Path(args.cache), name, config), args.batch)
            entry.setdefault("runs", {})[label] = {**stats, "overrides": overrides, "model": args.model}
            metrics.update({f"{label}: {k}": v for k, v in variant_scores(records).items()})
        table = {metric: correlations(values, rows, args.bootstrap, args.seed) for metric, values in metrics.items()}
        entry.setdefault("metrics", {}).update(table)
        print_table(name, entry)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


def print_table(name: str, entry: dict) -> None:
    print(f"\n{name}: {entry['summaries']} summaries, {entry['positives']} fully consistent")
    print(f"{'metric':48s} {'Pearson':>20s} {'Spearman':>20s} {'ROC AUC':>20s} {'bal.acc':>7s} unscored")
    for metric, r in entry["metrics"].items():
        cells = [f"{100 * r[k]:5.1f} [{100 * r[k + '_ci95'][0]:5.1f},{100 * r[k + '_ci95'][1]:5.1f}]"
                 if r.get(k + "_ci95") else f"{'-':>20s}" for k in ("pearson", "spearman", "roc_auc")]
        accuracy = f"{100 * r['balanced_accuracy']:7.1f}" if "balanced_accuracy" in r else f"{'-':>7s}"
        print(f"{metric:48s} {cells[0]:>20s} {cells[1]:>20s} {cells[2]:>20s} {accuracy} {r['unscored']}")


if __name__ == "__main__":
    sys.exit(main())
