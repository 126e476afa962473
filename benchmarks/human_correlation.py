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
import dataclasses
import hashlib
import itertools
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from agreement import calibration_cv, correlations, paired_table  # benchmarks/agreement.py, beside this script
from sklearn.metrics import roc_auc_score

from quals import (
    Calibration,
    QAPair,
    QualsConfig,
    QualsScorer,
    prior_share,
    reference_ll,
    resolve_format,
    sentence_scores,
    summary_quals,
)


PUBLISHED = {"QAGS (Wang et al. 2020)": {"qags-c": {"pearson": 0.545}, "qags-x": {"pearson": 0.175}}}
STOPWORDS = frozenset(["a", "an", "the", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "but",
                       "is", "was", "were", "are", "be", "been", "being", "has", "have", "had", "it", "its", "he",
                       "she", "they", "them", "his", "her", "their", "this", "that", "these", "those", "as", "than",
                       "into", "after", "before", "about", "also", "not", "no", "will", "would", "could", "should",
                       "can", "may", "said", "says", "who", "which", "what", "when", "where", "while", "there", "here",
                       "i", "we", "you", "our", "your", "my", "me", "us"])
READINGS = ("calibration", "sentence_prior_weight")  # format fields that change scores, not the recorded pass
QAPAIR_FIELDS = [f.name for f in dataclasses.fields(QAPair)]
PAIRED_BASELINES = ("bigram precision", "unigram precision")  # each QUALS reading minus these, paired
VARIANTS = {"pair / summary": ("pair", "summary"), "answer / summary": ("answer", "summary"),
            "pair / no passage": ("pair", "no_passage"), "answer / no passage": ("answer", "no_passage")}


# ---------------------------------------------------------------------------------------------- data
def load_qags(path: str | Path) -> list[dict]:
    """QAGS rows -> ``{"document", "summary", "score", "label", "sentences"}`` (data README's aggregation rules;
    ``sentences``: each sentence's character span in the summary and its 2-of-3 majority vote)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        item = json.loads(line)
        votes = [sum(r["response"] == "yes" for r in s["responses"]) >= 2 for s in item["summary_sentences"]]
        texts = [s["sentence"] for s in item["summary_sentences"]]
        starts = [sum(len(t) + 1 for t in texts[:k]) for k in range(len(texts))]
        rows.append({"document": item["article"], "summary": " ".join(texts), "score": sum(votes) / len(votes),
                     "label": int(all(votes)),
                     "sentences": [((a, a + len(t)), int(v)) for a, t, v in zip(starts, texts, votes, strict=True)]})
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
    fmt = dataclasses.asdict(resolve_format(config.preset, config.model, config.qa_separator, config.gguf_file))
    # The calibration maps scores and the sentence pairs' prior weight mixes recorded log-likelihoods (the pass
    # records every pair's LL given no passage): neither changes the records, so neither is part of the key.
    for reading in READINGS:
        fmt.pop(reading)
    config = dataclasses.replace(config, sentence_prior_weight=None)
    key = json.dumps([fmt, config.fingerprint()], sort_keys=True, default=str)
    return cache / dataset / f"{config.preset}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.jsonl"


def row_key(row: dict) -> str:
    return hashlib.sha256(json.dumps([row["summary"], row["document"]]).encode()).hexdigest()[:16]


def rows_fingerprint(rows: list[dict]) -> str:
    """Which rows, with which human scores: stored readings from an earlier run pair up only on the same ones."""
    key = json.dumps([[row_key(r), r["score"], r["label"]] for r in rows])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


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


def variant_pairs(record: dict, tokens: str, reference: str, sentence_weight: float) -> list[QAPair]:
    """The kept pairs of a recorded result, each with its QUALS under one variant (``score_tokens``, reference; a
    sentence pair always compares its answer tokens, as the scorer does, and against the summary its reference
    gives the no-passage LL the share ``sentence_weight``: ``QualsConfig.sentence_prior_weight``)."""
    pairs = []
    for p in record.get("pairs") or []:
        start = p["answer_start"] if tokens == "answer" or p.get("sentence_pair") else 0
        ll_reference = reference_ll(float(np.mean(p["summary_logprobs"][start:])),
                                    float(np.mean(p["prior_logprobs"][start:])),
                                    prior_share(reference, p.get("sentence_pair", False), sentence_weight))
        quals = float(np.mean(p["source_logprobs"][start:])) - ll_reference
        pairs.append(QAPair(**{**{k: p[k] for k in QAPAIR_FIELDS if k in p}, "quals": quals}))
    return pairs


def variant_scores(records: list[dict], rows: list[dict], sentence_weight: float) -> dict[str, list[float | None]]:
    """Every named variant of QUALS (and LL_source alone) from the recorded per-token log-probabilities; a run with
    ``sentence_pairs`` also gives each variant from its QA pairs only (the same pass without the sentence pairs)
    and, when the sentence pairs' prior weight is not 0, the summary variants with weight 0."""
    out: dict[str, list[float | None]] = {}
    with_sentences = any(p.get("sentence_pair") for r in records for p in r.get("pairs") or [])
    for name, (tokens, reference) in VARIANTS.items():
        per_record = [variant_pairs(record, tokens, reference, sentence_weight) for record in records]
        out[f"QUALS {name}"] = [summary_quals(row["summary"], pairs) for pairs, row in zip(per_record, rows,
                                                                                             strict=True)]
        if with_sentences:
            qa_only = [[p for p in pairs if not p.sentence_pair] for pairs in per_record]
            out[f"QUALS {name}, QA pairs only"] = [summary_quals(row["summary"], pairs) for pairs, row in
                                                   zip(qa_only, rows, strict=True)]
        if with_sentences and sentence_weight and reference == "summary":
            out[f"QUALS {name}, sentence_prior_weight=0"] = [
                summary_quals(row["summary"], variant_pairs(record, tokens, reference, 0.0))
                for record, row in zip(records, rows, strict=True)]
    out["LL_source (pair)"] = [float(np.mean(lls)) if (lls := [np.mean(p["source_logprobs"]) for p in r["pairs"] or []
                                                             if not p.get("sentence_pair")]) else None
                               for r in records]
    return out


def sentence_auc(records: list[dict], rows: list[dict], variant: str, sentence_weight: float) -> dict:
    """ROC AUC of per-sentence QUALS (``sentence_scores`` on the given sentences; a sentence no pair asked about
    takes its summary's QUALS) against each sentence's majority vote."""
    tokens, reference = VARIANTS[variant]
    scores, votes, own = [], [], 0
    for record, row in zip(records, rows, strict=True):
        pairs = variant_pairs(record, tokens, reference, sentence_weight)
        spans = [span for span, _ in row["sentences"]]
        for sentence, (_, vote) in zip(sentence_scores(row["summary"], pairs, summary_quals(row["summary"], pairs),
                                                       spans),
                                       row["sentences"], strict=True):
            scores.append(sentence.quals)
            votes.append(vote)
            own += not sentence.from_summary
    values = np.array([np.nan if v is None else v for v in scores])
    values[np.isnan(values)] = np.nanmin(values)
    return {"variant": variant, "sentences": len(votes), "consistent_sentences": int(sum(votes)),
            "scored_by_their_own_pairs": own, "roc_auc": float(roc_auc_score(votes, values))}


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
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="score only these data sets (qags-c, qags-x, a --data file's stem; repeatable)")
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
    unknown = sorted(set(args.only) - set(datasets))
    if unknown:
        parser.error(f"--only {', '.join(unknown)}: not among the data sets {sorted(datasets)}")
    datasets = {name: rows for name, rows in datasets.items() if name in args.only or not args.only}
    if not datasets:
        parser.error("no data: pass --qags DIR and/or --data FILE")
    common = None
    if args.rare_word_reference:
        common = common_words([json.loads(line)["document"] for line in
                               Path(args.rare_word_reference).read_text().splitlines()])
    report = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    report.update({"bootstrap": args.bootstrap, "seed": args.seed, "published": PUBLISHED})
    overrides = parse_overrides(args.set)
    calibration_data: dict[str, list] = {}  # configuration -> (value, label, data set) of its default variant
    for name, rows in datasets.items():
        rows = rows[: args.limit] if args.limit else rows
        entry = report.setdefault("datasets", {}).setdefault(name, {})
        entry.update({"summaries": len(rows), "positives": sum(r["label"] or 0 for r in rows)})
        metrics = {f"baseline: {k}": v for k, v in baselines(rows, common).items()}
        stored = entry.get("values", {})  # per-row default readings of every configuration run on these rows
        if stored.get("rows") != rows_fingerprint(rows):
            stored = {"rows": rows_fingerprint(rows), "readings": {}}
        for preset in args.preset:
            config = scorer_config(preset, args.model, args.gguf_file, overrides)
            label = args.label or preset
            print(f"{name}: {label}", flush=True)
            records, stats = score_cached(rows, config, cache_file(Path(args.cache), name, config), args.batch)
            entry.setdefault("runs", {})[label] = {**stats, "overrides": overrides, "model": args.model}
            weight = QualsScorer(config).settings.sentence_prior_weight  # the preset's unless --set overrides it
            variants = variant_scores(records, rows, weight)
            metrics.update({f"{label}: {k}": v for k, v in variants.items()})
            default = default_variant(preset, overrides)
            stored["readings"][f"{label}: QUALS {default}"] = variants[f"QUALS {default}"]
            if all(r["label"] is not None for r in rows):
                calibration_data.setdefault(label, []).extend(
                    (v, r["label"], name) for v, r in zip(variants[f"QUALS {default}"], rows, strict=True)
                    if v is not None)
            if all("sentences" in r for r in rows):
                entry.setdefault("sentence_level", {})[label] = sentence_auc(records, rows, default, weight)
        table = {metric: correlations(values, rows, args.bootstrap, args.seed) for metric, values in metrics.items()}
        entry.setdefault("metrics", {}).update(table)
        entry["values"] = stored
        entry["paired"] = paired_table(stored["readings"], {b: metrics[f"baseline: {b}"] for b in PAIRED_BASELINES},
                                       rows, args.bootstrap, args.seed)
        print_table(name, entry)
    for label, data in calibration_data.items():
        if len({consistent for _, consistent, _ in data}) < 2:
            reason = "its scored summaries all have the same label"  # a logistic fit needs both
            report.setdefault("calibration", {})[label] = {"fitted": False, "reason": reason}
            print(f"\ncalibration of {label}: not fitted ({reason})")
            continue
        report.setdefault("calibration", {})[label] = calibration_summary(data, args.seed)
        print(f"\ncalibration of {label}: {report['calibration'][label]}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


def default_variant(preset: str, overrides: dict) -> str:
    """The variant a scorer with these settings returns (its ``score_tokens`` and ``ll_reference``)."""
    config = QualsConfig(preset=preset, **overrides)
    return f"{config.score_tokens} / {config.ll_reference.replace('_', ' ')}"


def calibration_summary(data: list[tuple[float, int, str]], seed: int) -> dict:
    """The calibration fitted on every labelled summary (to store with the preset), and its 5-fold
    cross-validated balanced accuracy and expected calibration error per data set (None with fewer than 5
    summaries of either label: a fold would lack one)."""
    values, labels, groups = (np.array(column) for column in zip(*data, strict=True))
    fitted = Calibration.fit(list(values), list(labels.astype(int)))
    return {**fitted.to_dict(), "summaries": len(values), "cross_validated": calibration_cv(
        values.astype(float), labels.astype(int), groups, seed)}


def print_table(name: str, entry: dict) -> None:
    print(f"\n{name}: {entry['summaries']} summaries, {entry['positives']} fully consistent")
    print(f"{'metric':48s} {'Pearson':>20s} {'Spearman':>20s} {'ROC AUC':>20s} {'bal.acc':>7s} unscored")
    for metric, r in entry["metrics"].items():
        cells = [f"{100 * r[k]:5.1f} [{100 * r[k + '_ci95'][0]:5.1f},{100 * r[k + '_ci95'][1]:5.1f}]"
                 if r.get(k + "_ci95") else f"{'-':>20s}" for k in ("pearson", "spearman", "roc_auc")]
        accuracy = f"{100 * r['balanced_accuracy']:7.1f}" if "balanced_accuracy" in r else f"{'-':>7s}"
        print(f"{metric:48s} {cells[0]:>20s} {cells[1]:>20s} {cells[2]:>20s} {accuracy} {r['unscored']}")
    if entry.get("paired"):
        print(f"\n{'paired difference (same resamples; share of them ahead)':72s} {'Pearson':>28s} {'ROC AUC':>28s}")
    for comparison, d in entry.get("paired", {}).items():
        cells = [f"{100 * d[k]:+5.1f} [{100 * d[k + '_ci95'][0]:+5.1f},{100 * d[k + '_ci95'][1]:+5.1f}] "
                 f"{100 * d[k + '_ahead']:3.0f}%" if d.get(k + "_ci95") else f"{'-':>28s}"
                 for k in ("pearson", "roc_auc")]
        print(f"{comparison:72s} {cells[0]:>28s} {cells[1]:>28s}")
    for label, sentences in entry.get("sentence_level", {}).items():
        print(f"sentence level, {label} ({sentences['variant']}): ROC AUC {100 * sentences['roc_auc']:.1f} over "
              f"{sentences['sentences']} sentences ({sentences['scored_by_their_own_pairs']} with their own pairs)")


if __name__ == "__main__":
    sys.exit(main())
