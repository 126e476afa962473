"""Never lose a user's file, never run a model file's code, fail fast offline (quals/outputs.py,
quals/engine/weights.py), and resume that keeps every row already scored."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from quals import ModelLoadError, get_preset, load_qagen, resolve_format, save_qagen
from quals.cli import main
from quals.hub import export_metric
from quals.outputs import OutputError
from quals.recipe import TrainQAGenConfig, train_qagen
from quals.testing import RANDOM_FORMAT, SyntheticWorld, tiny_bart, word_tokenizer


ROOT = Path(__file__).resolve().parent.parent


def write_rows(path: Path, count: int, seed: int = 0) -> Path:
    world = SyntheticWorld(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            fact = world.fact()
            handle.write(json.dumps({"id": i, "summary": world.sentence(fact), "source": world.document(fact)}) + "\n")
    return path


def score(*args: str) -> int:
    return main(["score", *args, "--device", "cpu", "--num-beam-groups", "2", "--max-new-tokens", "8"])


# ---------------------------------------------------------------------- refusals (exit 2, nothing touched)
def test_an_output_that_is_the_input_is_refused_naming_both(tmp_path, trained_qagen_path, capsys):
    data = write_rows(tmp_path / "same.jsonl", 3)
    before = data.read_bytes()
    assert score("--input", str(data), "--out", str(data), "--model", trained_qagen_path, "--overwrite") == 2
    message = capsys.readouterr().err
    assert f"--out {data} is the input file {data}" in message
    assert data.read_bytes() == before


def test_an_output_inside_another_run_directory_is_refused(tmp_path, trained_qagen_path, capsys):
    data = write_rows(tmp_path / "in.jsonl", 2)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    assert score("--input", str(data), "--out", str(tmp_path / "run" / "scores.jsonl"), "--model",
                 trained_qagen_path) == 2
    assert "inside" in capsys.readouterr().err and not (tmp_path / "run" / "scores.jsonl").exists()


def test_an_existing_file_is_replaced_only_with_overwrite(tmp_path, trained_qagen_path, capsys):
    data, out = write_rows(tmp_path / "in.jsonl", 2), tmp_path / "scores.jsonl"
    out.write_text("my own results\n")
    assert score("--input", str(data), "--out", str(out), "--model", trained_qagen_path) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == "my own results\n"
    assert score("--input", str(data), "--out", str(out), "--model", trained_qagen_path, "--overwrite") == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [0, 1]
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary file left behind


def test_a_foreign_folder_is_used_only_with_force_and_its_files_are_left_alone(tmp_path, trained_qagen_path, capsys):
    data, folder = write_rows(tmp_path / "in.jsonl", 2), tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert score("--input", str(data), "--out", f"{folder}/", "--model", trained_qagen_path) == 2
    assert "is not empty and is not a QUALS run directory" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    (folder / "errors.jsonl").write_text("my own errors")  # a name a run writes: refused even with --force
    assert score("--input", str(data), "--out", f"{folder}/", "--model", trained_qagen_path, "--force") == 2
    assert "already holds errors.jsonl" in capsys.readouterr().err
    (folder / "errors.jsonl").unlink()
    assert score("--input", str(data), "--out", f"{folder}/", "--model", trained_qagen_path, "--force") == 0
    assert (folder / "notes.txt").read_text() == "keep me" and (folder / "scores.jsonl").is_file()


def test_train_qagen_and_export_metric_keep_foreign_folders(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not a train-qagen output folder"):
        train_qagen(TrainQAGenConfig(train=["unused.json"], out=str(folder)))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "split.json").write_text("{}")
    with pytest.raises(OutputError, match="pass --resume to continue it, or --overwrite"):
        train_qagen(TrainQAGenConfig(train=["unused.json"], out=str(tmp_path / "old")))
    (tmp_path / "quals").mkdir()
    (tmp_path / "quals" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="--force"):
        export_metric(tmp_path)
    export_metric(tmp_path, force=True)
    assert (tmp_path / "quals" / "notes.txt").read_text() == "keep me" and (tmp_path / "quals" / "quals.py").is_file()
    with pytest.raises(OutputError, match="--overwrite"):
        export_metric(tmp_path)
    assert export_metric(tmp_path, overwrite=True) == tmp_path / "quals"


# ---------------------------------------------------------------------- atomic single-file output
@pytest.mark.slow
def test_a_killed_run_leaves_the_existing_output_intact(tmp_path, trained_qagen_path):
    data, out = write_rows(tmp_path / "in.jsonl", 400), tmp_path / "scores.jsonl"
    out.write_text("results of an earlier run\n")
    process = subprocess.Popen([sys.executable, "-m", "quals", "score", "--input", str(data), "--out", str(out),
                                "--model", trained_qagen_path, "--device", "cpu", "--overwrite", "--chunk-size", "8"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ,
                                                                                           "OMP_NUM_THREADS": "1"})
    temporary = tmp_path / f".scores.jsonl.tmp-{process.pid}"
    deadline = time.time() + 120
    while time.time() < deadline and not (temporary.exists() and temporary.stat().st_size > 0):
        time.sleep(0.05)
    assert temporary.stat().st_size > 0, "the run never started writing"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert out.read_text() == "results of an earlier run\n"


# ---------------------------------------------------------------------- resume keeps every scored row
@pytest.mark.slow
def test_a_killed_run_resumes_with_only_the_rows_not_yet_written(tmp_path, trained_qagen_path):
    data = write_rows(tmp_path / "in.jsonl", 200)
    command = [sys.executable, "-m", "quals", "score", "--input", str(data), "--model", trained_qagen_path,
               "--device", "cpu"]  # default --block-size 1024: the whole file is one block
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, "--out", f"{killed}/"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    part = killed / "parts" / "attempt-000.rank-00000.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (part.exists() and part.read_text().count("\n") >= 1):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = part.read_text().count("\n")
    assert 1 <= written < 200, "the kill came too late (or nothing was written in time)"
    restart = subprocess.run([*command, "--out", f"{killed}/"], capture_output=True, text=True, env=env, check=True)
    assert f"{200 - written} row(s) to score; {written} of 200 rows already done" in restart.stderr
    subprocess.run([*command, "--out", f"{tmp_path / 'whole'}/"], capture_output=True, env=env, check=True)
    resumed = [json.loads(line) for line in (killed / "scores.jsonl").read_text().splitlines()]
    whole = [json.loads(line) for line in (tmp_path / "whole" / "scores.jsonl").read_text().splitlines()]
    assert [r["index"] for r in resumed] == list(range(200)) == [r["index"] for r in whole]
    for a, b in zip(resumed, whole, strict=True):  # other batch neighbours: equal to float rounding
        assert (a["quals"] is None) == (b["quals"] is None) and a["num_pairs"] == b["num_pairs"]
        assert a["quals"] is None or a["quals"] == pytest.approx(b["quals"], abs=1e-6)


# ---------------------------------------------------------------------- weights never run code
def test_a_pickle_only_model_folder_is_refused_with_the_way_out(tmp_path):
    tokenizer = word_tokenizer()
    folder = tmp_path / "pickled"
    model = tiny_bart(len(tokenizer))
    save_qagen(model, tokenizer, folder, RANDOM_FORMAT)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # what an old checkpoint holds: a pickle
    with pytest.raises(ModelLoadError, match="only PyTorch pickle weights .* --allow-pickle"):
        load_qagen(resolve_format(None, str(folder)), "cpu")
    with pytest.warns(UserWarning, match="can run code"):
        assert load_qagen(resolve_format(None, str(folder)), "cpu", allow_pickle=True).kind == "seq2seq"


def test_no_loader_passes_trust_remote_code():
    for folder in ("quals", "trainer_ext", "metrics", "benchmarks", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    names = {keyword.arg for keyword in node.keywords}
                    assert "trust_remote_code" not in names, f"{path}:{node.lineno} passes trust_remote_code"


# ---------------------------------------------------------------------- offline fails fast
@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "unreachable host"])
def test_an_uncached_hub_model_fails_in_seconds_offline_naming_the_offline_presets(monkeypatch, how):
    from huggingface_hub import constants

    if how == "HF_HUB_OFFLINE":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    else:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"not cached here.*--preset mini"):
        load_qagen(get_preset("lmqg-t5-small"), "cpu")
    assert time.perf_counter() - started < 5


# ---------------------------------------------------------------------- the command line itself
def test_plain_quals_is_a_usage_error_and_help_lists_presets_and_exit_statuses(capsys):
    assert main([]) == 2
    assert "score" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "One of: " in text and "smollm2-135m" in text and "mini" in text
    assert "exit status: 0 every row" in text and "2 nothing was scored" in text


def test_no_show_progress_turns_the_bar_off(tmp_path, trained_qagen_path, capsys):
    data = write_rows(tmp_path / "in.jsonl", 2)
    assert score("--input", str(data), "--out", str(tmp_path / "a.jsonl"), "--model", trained_qagen_path) == 0
    assert "QUALS:" in capsys.readouterr().err
    assert score("--input", str(data), "--out", str(tmp_path / "b.jsonl"), "--model", trained_qagen_path,
                 "--no-show-progress") == 0
    assert "QUALS:" not in capsys.readouterr().err
