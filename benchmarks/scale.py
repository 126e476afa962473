"""Scoring at corpus scale on CPU: peak memory and throughput as the corpus grows, and what source reuse saves.

    python benchmarks/scale.py                      # 1k, 10k, 50k summaries (~15 min on one core)
    python benchmarks/scale.py --sizes 1000 5000    # quicker
    python benchmarks/scale.py --sizes              # part 2 only (keeps part 1 of an earlier results file)

Part 1 runs ``quals score --input corpus.jsonl --out DIR/`` (the resumable corpus mode) in a fresh process per
corpus size and reads that process's peak resident memory: it must stay flat as the corpus grows, because rows
are streamed block by block. Part 2 scores one file with K candidate summaries per document, laid out two
ways (candidates of a document next to each other, or spread through the file candidate-major), and counts
source encodings and throughput with and without the LRU source cache and the per-block grouping by source,
reading the counts ``quals score`` prints (each setting runs ``--repeats`` times in a fresh process and the fastest
run is kept, as the machine may be shared).

Model: the tiny offline QAGen of ``quals.testing`` (2 BART layers, d=64, word tokenizer) with 2 beam groups
and at most 8 new tokens, one CPU thread. Absolute speeds say nothing about a real QAGen on a GPU; the
memory trend and the encoding counts do. Results go to ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["--num-beam-groups", "2", "--max-new-tokens", "8", "--device", "cpu"]


def write_corpus(path: Path, documents: int, candidates: int, spread: bool, filler: int = 2, seed: int = 0) -> Path:
    """``documents`` x ``candidates`` rows; candidate-major order when ``spread`` (a document's rows far apart)."""
    from quals.testing import SyntheticWorld

    world = SyntheticWorld(seed)
    facts = [world.fact() for _ in range(documents)]
    sources = [" ".join(world.document(fact, filler) for _ in range(1 + filler // 3)) for fact in facts]
    rows = [[{"id": f"{d}-{k}", "summary": world.sentence(fact if k == 0 else world.corrupt(fact)),
              "source": sources[d]} for k in range(candidates)] for d, fact in enumerate(facts)]
    order = [rows[d][k] for k in range(candidates) for d in range(documents)] if spread else \
        [row for doc_rows in rows for row in doc_rows]
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in order)
    return path


def measure_cli(corpus: Path, out: Path, model: Path, block_size: int) -> dict:
    """Run ``quals score`` on ``corpus`` in a fresh process; its wall time and peak RSS."""
    code = ("import resource, sys, time; from quals.cli import main; t = time.perf_counter(); "
            "rc = main(sys.argv[1:]); "
            "print('BENCH', rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    command = [sys.executable, "-c", code, "score", "--input", str(corpus), "--out", f"{out}/", "--model", str(model),
               "--block-size", str(block_size), *SETTINGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    _, rc, seconds, peak_kib = next(line for line in result.stdout.splitlines() if line.startswith("BENCH")).split()
    with open(out / "scores.jsonl", encoding="utf-8") as merged:
        rows = sum(1 for _ in merged)
    return {"rows": rows, "exit_status": int(rc), "seconds": round(float(seconds), 1),
            "summaries_per_s": round(rows / float(seconds), 1), "peak_rss_mib": round(int(peak_kib) / 1024, 1),
            "input_mib": round(corpus.stat().st_size / 2**20, 2)}


def measure_reuse(corpus: Path, out: Path, model: Path, block_size: int, cache_size: int) -> dict:
    """Score ``corpus`` with ``quals score`` (one file out); count source encodings and source-cache hits."""
    command = [sys.executable, "-m", "quals", "score", "--input", str(corpus), "--out", str(out), "--model",
               str(model), "--block-size", str(block_size), "--source-cache-size", str(cache_size), *SETTINGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    seconds = time.perf_counter() - started
    encoded, hits = re.search(r"(\d+) source\(s\) encoded, (\d+) found in the source cache", result.stderr).groups()
    rows = len(out.read_text(encoding="utf-8").splitlines())
    return {"block_size": block_size, "source_cache_size": cache_size, "rows": rows,
            "source_encodings": int(encoded), "source_cache_hits": int(hits), "seconds": round(seconds, 1),
            "summaries_per_s": round(rows / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 50000])
    parser.add_argument("--documents", type=int, default=400, help="Documents of the K-candidates file.")
    parser.add_argument("--candidates", type=int, default=7, help="K: candidate summaries per document.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per setting of part 2; the fastest is kept.")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    args = parser.parse_args()

    from quals.testing import tiny_qagen

    model = tiny_qagen()
    results = {"machine": {"python": platform.python_version(), "cpu_threads": 1, "processor": platform.processor()},
               "model": "quals.testing.tiny_qagen (BART 2+2 layers, d_model=64), 2 beam groups, 8 new tokens",
               "corpus_growth": [], "source_reuse": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"{'summaries':>10} {'input MiB':>10} {'seconds':>8} {'summ/s':>8} {'peak RSS MiB':>13}")
        for size in args.sizes:
            corpus = write_corpus(tmp / f"corpus-{size}.jsonl", size, 1, spread=False, seed=size)
            row = {"summaries": size, **measure_cli(corpus, tmp / f"out-{size}", model, block_size=1024)}
            results["corpus_growth"].append(row)
            print(f"{size:>10} {row['input_mib']:>10} {row['seconds']:>8} {row['summaries_per_s']:>8} "
                  f"{row['peak_rss_mib']:>13}", flush=True)

        k, docs = args.candidates, args.documents
        print(f"\n{docs} documents x {k} candidates ({docs * k} rows), documents of 2 x 6 sentences")
        print(f"{'layout':<10} {'block':>6} {'cache':>6} {'encodings':>10} {'hits':>6} {'seconds':>8} {'summ/s':>8}")
        for spread in (False, True):
            corpus = write_corpus(tmp / f"k-{spread}.jsonl", docs, k, spread=spread, filler=5)
            layout = "spread" if spread else "adjacent"
            for block_size, cache_size in ((64, 0), (64, 256), (docs * k, 256)):
                runs = [measure_reuse(corpus, tmp / "reuse.jsonl", model, block_size, cache_size)
                        for _ in range(args.repeats)]
                row = {"layout": layout, **min(runs, key=lambda run: run["seconds"]), "repeats": args.repeats}
                results["source_reuse"].append(row)
                print(f"{layout:<10} {block_size:>6} {cache_size:>6} {row['source_encodings']:>10} "
                      f"{row['source_cache_hits']:>6} {row['seconds']:>8} {row['summaries_per_s']:>8}", flush=True)
    if not args.sizes and Path(args.out).exists():  # only part 2 was run: keep part 1 of the earlier results
        results["corpus_growth"] = json.loads(Path(args.out).read_text(encoding="utf-8"))["corpus_growth"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
