"""Sharded, resumable ``quals score --out DIR/``: real multi-process and kill/restart runs, and the run directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quals.cli import main
from quals.corpus.sharding import IncompleteRunError, Plan, RunDirectory
from quals.testing import SyntheticWorld, tiny_qagen


SETTINGS = ["--num-beam-groups", "2", "--max-new-tokens", "8", "--device", "cpu"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


@pytest.fixture(scope="module")
def model() -> str:
    return str(tiny_qagen())


def write_corpus(path: Path, documents: int, candidates: int = 3, seed: int = 0) -> Path:
    """K candidates per document, the candidates of a document spread through the file; one unreadable line."""
    world = SyntheticWorld(seed)
    facts = [world.fact() for _ in range(documents)]
    rows = [{"id": f"{d}-{k}", "summary": world.sentence(fact if k == 0 else world.corrupt(fact)),
             "source": world.document(fact)} for k in range(candidates) for d, fact in enumerate(facts)]
    lines = [json.dumps(row) for row in rows]
    lines[3] = '{"summary": "no source field"}'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def score(corpus: Path, out: str, model: str, *extra: str) -> int:
    return main(["score", "--input", str(corpus), "--out", out, "--model", model, *SETTINGS, *extra])


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def assert_same_records(got: list[str], expected: list[str]) -> None:
    """Record for record: every field equal, QUALS to 1e-6 (LL_summary comes from the search, whose floating-point
    rounding depends on the thread count and on the other summaries decoded alongside)."""
    assert len(got) == len(expected)
    for line, reference in zip(got, expected, strict=True):
        a, b = json.loads(line), json.loads(reference)
        assert {**a, "quals": None} == {**b, "quals": None}
        assert (a["quals"] is None) == (b["quals"] is None)
        if a["quals"] is not None:
            assert a["quals"] == pytest.approx(b["quals"], abs=1e-6)


@pytest.mark.slow
def test_two_process_torchrun_run_matches_one_process_row_for_row(tmp_path, model):
    corpus = write_corpus(tmp_path / "corpus.jsonl", documents=20)  # 60 rows, 8 blocks of 8
    assert score(corpus, f"{tmp_path}/one/", model, "--block-size", "8") == 1  # one unreadable row
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "quals", "score", "--input", str(corpus), "--out", f"{tmp_path}/two/", "--model", model,
               "--block-size", "8", *SETTINGS]
    result = subprocess.run(command, check=False, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    one, two = read_lines(tmp_path / "one" / "scores.jsonl"), read_lines(tmp_path / "two" / "scores.jsonl")
    assert len(two) == 60 and [json.loads(line)["index"] for line in two] == list(range(60))
    assert_same_records(two, one)  # same scores, same QA pair counts, same errors
    parts = sorted((tmp_path / "two" / "parts").iterdir())
    assert [p.name for p in parts] == ["attempt-000.rank-00000.jsonl", "attempt-000.rank-00001.jsonl"]
    assert [len(read_lines(p)) for p in parts] == [32, 28]  # blocks 0,2,4,6 and 1,3,5,7 (the last has 4 rows)
    assert (tmp_path / "two" / "errors.jsonl").read_text() == (tmp_path / "one" / "errors.jsonl").read_text()
    assert json.loads((tmp_path / "two" / "errors.jsonl").read_text())["index"] == 3


@pytest.mark.slow
def test_killed_run_restarts_where_it_stopped_and_ends_as_an_uninterrupted_run(tmp_path, model):
    corpus = write_corpus(tmp_path / "corpus.jsonl", documents=40)  # 120 rows, 15 blocks of 8
    assert score(corpus, f"{tmp_path}/reference/", model, "--block-size", "8") == 1

    command = [sys.executable, "-m", "quals", "score", "--input", str(corpus), "--out", f"{tmp_path}/run/",
               "--model", model, "--block-size", "8", *SETTINGS]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    first_part = tmp_path / "run" / "parts" / "attempt-000.rank-00000.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if first_part.exists() and first_part.read_bytes().count(b"\n") >= 24:  # three blocks written
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "run" / "scores.jsonl").exists()
    written = [json.loads(line)["index"] for line in read_lines(first_part)]
    assert 24 <= len(written) < 120

    assert score(corpus, f"{tmp_path}/run/", model, "--block-size", "8") == 1  # the same command again
    assert_same_records(read_lines(tmp_path / "run" / "scores.jsonl"),
                        read_lines(tmp_path / "reference" / "scores.jsonl"))
    attempts = json.loads((tmp_path / "run" / "run.json").read_text())["attempts"]
    done_before = len(written) - len(written) % 8  # whole blocks only
    assert attempts[1]["done_rows"] == done_before and attempts[1]["pending_rows"] == 120 - done_before
    rescored = [json.loads(line)["index"] for line in read_lines(tmp_path / "run" / "parts" /
                                                                   "attempt-001.rank-00000.jsonl")]
    assert set(rescored).isdisjoint(written[:done_before])  # finished work is not recomputed
    assert sorted(set(written) | set(rescored)) == list(range(120))
    assert len(rescored) == 120 - done_before < 120  # the restart scored less than the whole (one) shard


@pytest.mark.slow
def test_restart_with_other_settings_or_input_is_refused(tmp_path, model, capsys):
    corpus = write_corpus(tmp_path / "corpus.jsonl", documents=2)
    out = f"{tmp_path}/run/"
    assert score(corpus, out, model) == 1
    merged = (tmp_path / "run" / "scores.jsonl").read_text()
    capsys.readouterr()

    assert score(corpus, out, model, "--filter-mode", "reference") == 2
    assert "config.filter_mode: 'strict' -> 'reference'" in capsys.readouterr().err
    assert score(corpus, out, model, "--dtype", "bfloat16") == 2
    assert "config.dtype: 'float32' -> 'bfloat16'" in capsys.readouterr().err
    assert score(corpus, out, model, "--block-size", "7") == 2
    assert "block_size" in capsys.readouterr().err
    write_corpus(corpus, documents=2, seed=1)  # same size, other text
    assert score(corpus, out, model) == 2
    assert "inputs.input.head_sha256" in capsys.readouterr().err

    write_corpus(corpus, documents=2)
    assert score(corpus, out, model) == 1  # the original settings: nothing left to score, merged again
    assert (tmp_path / "run" / "scores.jsonl").read_text() == merged
    attempts = json.loads((tmp_path / "run" / "run.json").read_text())["attempts"]
    assert len(attempts) == 2 and attempts[1]["pending_rows"] == 0


def test_several_processes_need_a_directory(tmp_path, model, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    corpus = write_corpus(tmp_path / "corpus.jsonl", documents=2)
    assert score(corpus, str(tmp_path / "scores.jsonl"), model) == 2
    assert "several processes need a directory --out" in capsys.readouterr().err


# ---------------------------------------------------------------------- the run directory, without a model
def write_part(directory: RunDirectory, attempt: int, rank: int, indices: list[int], torn: str = "") -> None:
    directory.parts_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps({"index": i, "quals": i / 10, "error": None}) + "\n" for i in indices)
    directory.part_path(attempt, rank).write_text(lines + torn, encoding="utf-8")


def test_plan_spreads_pending_blocks_over_ranks_and_tolerates_more_ranks_than_blocks():
    plan = Plan(attempt=1, num_rows=10, block_size=4, pending=[0, 2], done_rows=4)
    assert [plan.blocks_for(r, 3) for r in range(3)] == [[0], [2], []]
    assert plan.rows_in([0, 2]) == 6  # the last block holds rows 8 and 9 only
    resumed = Plan(attempt=2, num_rows=10, block_size=4, pending=[0, 2], done_rows=6, done=frozenset({0, 1}))
    assert resumed.rows_in([0, 2]) == 4  # rows 0 and 1 of block 0 were written before a kill


def test_pending_blocks_ignore_torn_lines_and_partial_blocks(tmp_path):
    directory = RunDirectory(tmp_path)
    write_part(directory, 0, 0, [0, 1, 2, 3, 8, 9], torn='{"index": 10, "qu')  # killed while writing row 10
    write_part(directory, 0, 1, [4, 5])  # block 1 (rows 4..7) only half written
    assert list(directory.completed_indices()) == [0, 1, 2, 3, 4, 5, 8, 9]
    assert directory.pending_blocks(num_rows=11, block_size=4) == ([1, 2], 8, {4, 5, 8, 9})


def test_merge_writes_input_order_once_and_refuses_gaps(tmp_path):
    directory = RunDirectory(tmp_path)
    directory.begin_attempt({"config": {}}, num_rows=6, block_size=2, world_size=2)
    write_part(directory, 0, 0, [0, 1, 4, 5])
    write_part(directory, 0, 1, [2])
    with pytest.raises(IncompleteRunError, match="rows 3..3 have no result yet"):
        directory.merge()
    write_part(directory, 1, 0, [2, 3])  # block 1 scored again after a crash: row 2 twice
    assert directory.is_complete()
    assert directory.merge() == 0
    assert [json.loads(line)["index"] for line in read_lines(directory.merged_path)] == list(range(6))


def test_merge_subcommand(tmp_path, capsys):
    directory = RunDirectory(tmp_path)
    directory.begin_attempt({"config": {}}, num_rows=3, block_size=2, world_size=1)
    write_part(directory, 0, 0, [0, 1])
    assert main(["merge", str(tmp_path)]) == 2
    assert "rows 2..2 have no result yet" in capsys.readouterr().err
    directory.part_path(0, 0).write_text(directory.part_path(0, 0).read_text() + json.dumps(
        {"index": 2, "quals": None, "error": "unreadable row: line 3 of x.jsonl: bad"}) + "\n")
    assert main(["merge", str(tmp_path)]) == 1
    assert json.loads(directory.errors_path.read_text()) == {"index": 2, "error": "line 3 of x.jsonl: bad"}
    assert len(read_lines(directory.merged_path)) == 3


@pytest.mark.slow
def test_a_block_encodes_each_shared_source_once_even_when_its_rows_are_spread(model):
    from quals import QualsScorer
    from quals.corpus.blocks import score_block
    from quals.corpus.io import Row

    world = SyntheticWorld(5)
    facts = [world.fact() for _ in range(3)]
    documents = [world.document(fact) for fact in facts]
    rows = [Row(i, world.sentence(facts[i % 3]), documents[i % 3]) for i in range(12)]  # sources A B C A B C ...
    scorer = QualsScorer(model=model, device="cpu", show_progress=False, num_beam_groups=2, max_new_tokens=8,
                         source_cache_size=0)  # no cache: only the grouping can share an encoding
    handed_out = list(score_block(scorer, rows, explain=False, chunk_size=4))  # chunks A A A A | B B B B | C C C C
    records = [record for records in handed_out for record in records]
    assert scorer.source_cache.encodings == 3
    assert [[r["index"] for r in part] for part in handed_out] == [[0], [1], list(range(2, 12))]  # as soon as final
    assert [r["index"] for r in records] == list(range(12))  # input order restored
    same_row = [records[k]["quals"] for k in (0, 3, 9)]  # the same row, the same score (up to float32 batching)
    assert same_row == pytest.approx([same_row[0]] * 3, abs=1e-5)
