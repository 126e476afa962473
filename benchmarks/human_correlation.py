"""Does QUALS agree with people? Summary-level correlation with the QAGS-C / QAGS-X human judgments.

For every data set it reports Pearson, Spearman (human score) and ROC AUC (binary label), each with a
bootstrap 95% confidence interval over summaries, for

- QUALS under both filter modes (``strict``, ``reference``) and both LL_summary variants (``teacher_forced``;
  ``search``: the penalized search score, algorithm doc §7.2 W1). Two scorer passes give all four: the search
  variant of a kept pair is ll_source - (penalized cumulative score / tokens), which is what the scorer's
  ``ll_summary="search"`` computes for a format without leading label tokens.
- baselines on the same summaries in the same run: unigram, bigram and content-word precision of the summary
  against its source, number precision, and rare-word precision (words in < 1% of the XSum training documents,
  a stand-in for named-entity precision: the QAGS texts are lower-cased, so a cased NER cannot run on them).

Summaries where QUALS finds no QA pair get the lowest QUALS of their data set (the reference code's sentinel
-1e5 would dominate a Pearson correlation); their number is reported.

Data: QAGS-C and QAGS-X from ``../shared/data/qags`` (human score = mean over sentences of the 2-of-3 majority
vote; label = every sentence has a majority yes), or any JSONL with ``document``, ``summary`` and ``score`` and/or
``label`` fields (``--data my.jsonl``).

    python benchmarks/human_correlation.py                                   # QAGS-C and QAGS-X, bundled mini
    python benchmarks/human_correlation.py --data other.jsonl --no-default-data --model ./my-qagen
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from quals import QualsScorer


QAGS = {"qags-c": "../shared/data/qags/mturk_cnndm.jsonl", "qags-x": "../shared/data/qags/mturk_xsum.jsonl"}
PUBLISHED = {"QAGS (Wang et al. 2020)": {"qags-c": {"pearson": 0.545}, "qags-x": {"pearson": 0.175}}}
STOPWORDS = frozenset(["a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "but",
                       "is", "was", "were", "are", "be", "been", "being", "has", "have", "had", "it", "its", "he",
                       "she", "they", "them", "his", "her", "their", "this", "that", "these", "those", "as", "than",
                       "into", "after", "before", "about", "also", "not", "no", "will", "would", "could", "should",
                       "can", "may", "said", "says", "who", "which", "what", "when", "where", "while", "there", "here",
                       "i", "we", "you", "our", "your", "my", "me", "us"])


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
        score = float(item["score"] if "score" in item else item["label"])
        label = item.get("label")
        rows.append({"document": item["document"], "summary": item["summary"], "score": score,
                     "label": None if label is None else int(label)})
    return rows


# ---------------------------------------------------------------------------------------------- baselines
def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[.,][0-9]+)*", text.lower())


def precision(summary_items: list, source_items: set) -> float:
    """Share of the summary's items found in the source (1.0 when the summary has none)."""
    return sum(item in source_items for item in summary_items) / len(summary_items) if summary_items else 1.0


def common_words(reference_texts: list[str], max_document_frequency: float = 0.01) -> set[str]:
    """The *common* words: found in at least ``max_document_frequency`` of ``reference_texts`` (rare = the rest)."""
    frequency = Counter(w for text in reference_texts for w in set(words(text)))
    return {w for w, n in frequency.items() if n >= max_document_frequency * len(reference_texts)}


def baselines(rows: list[dict], common: set[str]) -> dict[str, list[float]]:
    scores = {"unigram precision": [], "bigram precision": [], "content-word precision": [],
              "number precision": [], "rare-word precision (NE proxy)": []}
    for row in rows:
        summary, source = words(row["summary"]), words(row["document"])
        source_set = set(source)
        scores["unigram precision"].append(precision(summary, source_set))
        bigrams = list(itertools.pairwise(summary))
        scores["bigram precision"].append(precision(bigrams, set(itertools.pairwise(source))))
        scores["content-word precision"].append(precision([w for w in summary if w not in STOPWORDS], source_set))
        scores["number precision"].append(precision([w for w in summary if w[0].isdigit()], source_set))
        scores["rare-word precision (NE proxy)"].append(
            precision([w for w in summary if w not in common and w not in STOPWORDS], source_set))
    return scores


# ---------------------------------------------------------------------------------------------- QUALS
def quals_variants(rows: list[dict], model: str | None, groups: int | None, batch: int) -> tuple[dict, dict]:
    """QUALS for filter mode x LL_summary variant (None where no pair survived), and run statistics."""
    out, stats = {}, {}
    for mode in ("strict", "reference"):
        scorer = QualsScorer(model=model, device="cpu", filter_mode=mode, ll_summary="teacher_forced",
                             num_beam_groups=groups, show_progress=True)
        started, results = time.time(), []
        for start in range(0, len(rows), batch):
            chunk = rows[start: start + batch]
            results += scorer.score([r["summary"] for r in chunk], [r["document"] for r in chunk],
                                    return_qa_pairs=True)
        stats[mode] = {"seconds": round(time.time() - started, 1),
                       "no_pairs": sum(r.quals is None for r in results),
                       "mean_pairs": round(float(np.mean([r.num_pairs for r in results])), 2)}
        out[f"QUALS {mode} / teacher_forced"] = [r.quals for r in results]
        out[f"QUALS {mode} / search"] = [
            float(np.mean([p.ll_source - p.search_score / len(p.tokens) for p in r.pairs])) if r.pairs else None
            for r in results]
        out[f"LL_source only ({mode})"] = [
            float(np.mean([p.ll_source for p in r.pairs])) if r.pairs else None for r in results]
    return out, stats


# ---------------------------------------------------------------------------------------------- statistics
def correlations(metric: list[float | None], rows: list[dict], bootstrap: int, seed: int) -> dict:
    """Pearson / Spearman vs human score and ROC AUC vs label, each with a bootstrap 95% interval."""
    values = np.array(metric, dtype=float)
    unscored = int(np.isnan(values).sum())
    if unscored:
        values[np.isnan(values)] = np.nanmin(values) if unscored < len(values) else 0.0
    human = np.array([r["score"] for r in rows], dtype=float)
    labels = [r["label"] for r in rows]
    has_auc = all(label is not None for label in labels) and len(set(labels)) == 2
    label = np.array(labels, dtype=float) if has_auc else None

    def stats(index: np.ndarray) -> dict:
        x, y = values[index], human[index]
        result = {"pearson": _safe(lambda: pearsonr(x, y)[0]), "spearman": _safe(lambda: spearmanr(x, y)[0])}
        if has_auc and len(set(label[index])) == 2:
            result["roc_auc"] = float(roc_auc_score(label[index], x))
        return result

    point = stats(np.arange(len(rows)))
    rng = np.random.default_rng(seed)
    samples = [stats(rng.integers(0, len(rows), len(rows))) for _ in range(bootstrap)]
    for key in list(point):
        draws = [s[key] for s in samples if key in s and not math.isnan(s[key])]
        point[f"{key}_ci95"] = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else None
    point["unscored"] = unscored
    return point


def _safe(fn) -> float:
    try:
        return float(fn())
    except ValueError:
        return float("nan")


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", default=[], help="extra JSONL (document, summary, score/label)")
    parser.add_argument("--no-default-data", action="store_true", help="skip QAGS-C and QAGS-X")
    parser.add_argument("--model", default=None, help="QAGen folder or preset model (default: bundled mini)")
    parser.add_argument("--groups", type=int, default=None, help="diverse-beam groups (default: the model's format)")
    parser.add_argument("--limit", type=int, default=None, help="first N summaries per data set (smoke runs)")
    parser.add_argument("--no-quals", action="store_true", help="baselines only")
    parser.add_argument("--batch", type=int, default=16, help="summaries per scorer call")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--xsum-reference", default="../shared/data/xsum_pairs/train_pairs.jsonl",
                        help="documents whose word frequencies define 'rare' words")
    parser.add_argument("--out", default="benchmarks/results/human_correlation.json")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = args.model or str(Path(__file__).resolve().parents[1] / "quals" / "models" / "mini")
    if not args.no_quals and not Path(model).is_dir() and args.model is None:
        parser.error(f"no bundled QAGen model at {model} (docs/qagen.md); pass --model FOLDER, or --no-quals")
    datasets = {} if args.no_default_data else {name: load_qags(path) for name, path in QAGS.items()}
    datasets.update({Path(path).stem: load_jsonl(path) for path in args.data})
    reference = [json.loads(line)["document"] for line in Path(args.xsum_reference).read_text().splitlines()]
    common = common_words(reference)
    report = {"model": model, "groups": args.groups, "bootstrap": args.bootstrap, "seed": args.seed,
              "published": PUBLISHED, "datasets": {}}
    for name, rows in datasets.items():
        rows = rows[: args.limit] if args.limit else rows
        metrics = baselines(rows, common)
        run_stats = {}
        if not args.no_quals:
            quals, run_stats = quals_variants(rows, model, args.groups, args.batch)
            metrics = {**quals, **metrics}
        table = {metric: correlations(values, rows, args.bootstrap, args.seed) for metric, values in metrics.items()}
        positives = sum(r["label"] or 0 for r in rows)
        report["datasets"][name] = {"summaries": len(rows), "positives": positives, "quals_runs": run_stats,
                                    "metrics": table}
        print(f"\n{name}: {len(rows)} summaries, {positives} fully consistent")
        print(f"{'metric':38s} {'Pearson':>22s} {'Spearman':>22s} {'ROC AUC':>22s} unscored")
        for metric, r in table.items():
            cells = [f"{100 * r[k]:6.1f} [{100 * r[k + '_ci95'][0]:5.1f},{100 * r[k + '_ci95'][1]:5.1f}]"
                     if r.get(k + "_ci95") else f"{'-':>22s}" for k in ("pearson", "spearman", "roc_auc")]
            print(f"{metric:38s} {cells[0]:>22s} {cells[1]:>22s} {cells[2]:>22s} {r['unscored']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
