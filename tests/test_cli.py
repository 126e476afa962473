"""``quals score`` end to end: text pairs, JSONL/CSV with named columns, explanations, errors and exit codes."""

import csv
import json
import subprocess
import sys

import pytest

from quals.cli import main


SOURCE = "alice visited paris on monday . the weather was warm ."


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_text_files_in_input_order_with_a_summary_table(tmp_path, trained_qagen_path, capsys):
    (tmp_path / "sums.txt").write_text("alice visited paris on monday .\nbob visited paris on monday .\n\n")
    (tmp_path / "docs.txt").write_text(f"{SOURCE}\n{SOURCE}\n{SOURCE}\n")
    code = main(["score", "--summaries", str(tmp_path / "sums.txt"), "--sources", str(tmp_path / "docs.txt"),
                 "--out", str(tmp_path / "out.jsonl"), "--model", trained_qagen_path, "--device", "cpu"])
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert code == 0 and [r["index"] for r in rows] == [0, 1, 2]
    assert rows[0]["quals"] > rows[1]["quals"] and rows[2]["quals"] is None
    assert rows[2]["error"] == "empty input: summary 2 is empty or whitespace only"
    table = capsys.readouterr().err
    assert "QUALS summary" in table and "scored                2" in table and "empty input         1" in table


def test_jsonl_with_columns_passthrough_ids_explain_and_error_report(tmp_path, trained_qagen_path):
    lines = [json.dumps({"id": "a", "summary": "bob visited paris on monday .", "document": SOURCE}),
             json.dumps({"id": "b", "summary": "alice visited paris ."}),  # no document
             "{not json",
             json.dumps({"id": "c", "summary": "alice visited paris on monday .", "document": SOURCE, "x": 1})]
    (tmp_path / "in.jsonl").write_bytes(("\n".join(lines) + "\n").encode())
    out = tmp_path / "out.jsonl"
    code = main(["score", "--input", str(tmp_path / "in.jsonl"), "--source-column", "document", "--out", str(out),
                 "--model", trained_qagen_path, "--device", "cpu", "--explain", "--filter-mode", "reference"])
    rows = read_jsonl(out)
    assert code == 1  # some rows unreadable, the others scored
    assert [r.get("id") for r in rows] == ["a", "b", None, "c"] and [r["index"] for r in rows] == [0, 1, 2, 3]
    qa_pairs = [p for p in rows[0]["pairs"] if not p["sentence_pair"]]  # least supported first
    assert qa_pairs[0]["answer"] == "bob" and rows[3]["quals"] > rows[0]["quals"]
    errors = read_jsonl(tmp_path / "out.jsonl.errors.jsonl")
    assert [e["index"] for e in errors] == [1, 2] and "missing field(s) document" in errors[0]["error"]


def test_csv_input_and_non_utf8_lines(tmp_path, trained_qagen_path):
    with open(tmp_path / "in.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["summary", "source"])
        writer.writerow(["alice visited paris on monday .", SOURCE])
    (tmp_path / "sums.txt").write_bytes(b"alice visited paris .\n\xff\xfe broken\n")
    (tmp_path / "docs.txt").write_text(f"{SOURCE}\n{SOURCE}\n")
    assert main(["score", "--input", str(tmp_path / "in.csv"), "--out", str(tmp_path / "a.jsonl"),
                 "--model", trained_qagen_path]) == 0
    assert read_jsonl(tmp_path / "a.jsonl")[0]["quals"] is not None
    assert main(["score", "--summaries", str(tmp_path / "sums.txt"), "--sources", str(tmp_path / "docs.txt"),
                 "--out", str(tmp_path / "b.jsonl"), "--model", trained_qagen_path]) == 1
    rows = read_jsonl(tmp_path / "b.jsonl")
    assert rows[0]["quals"] is not None and "not valid UTF-8" in rows[1]["error"]


@pytest.mark.parametrize("problem", ["mismatched", "missing_column", "missing_file", "bad_model", "no_input"])
def test_unusable_input_exits_2_with_a_clear_message(tmp_path, trained_qagen_path, capsys, problem):
    (tmp_path / "two.txt").write_text("a\nb\n")
    (tmp_path / "one.txt").write_text("a\n")
    (tmp_path / "in.csv").write_text("text,doc\nx,y\n")
    args = {
        "mismatched": ["--summaries", str(tmp_path / "two.txt"), "--sources", str(tmp_path / "one.txt")],
        "missing_column": ["--input", str(tmp_path / "in.csv")],
        "missing_file": ["--input", str(tmp_path / "nope.jsonl")],
        "bad_model": ["--input", str(tmp_path / "in.csv"), "--summary-column", "text", "--source-column", "doc",
                      "--model", str(tmp_path / "no-model"), "--preset", "paper"],
        "no_input": [],
    }[problem]
    if problem != "bad_model":
        args += ["--model", trained_qagen_path]
    assert main(["score", *args, "--out", str(tmp_path / "o.jsonl")]) == 2
    message = capsys.readouterr().err
    expected = {"mismatched": "has 2 rows but",
                "missing_column": "has no column(s) summary, source; its columns are text, doc",
                "missing_file": "No such file", "bad_model": "Could not load the QAGen model",
                "no_input": "Give --input FILE"}[problem]
    assert expected in message and "Traceback" not in message


def test_module_entry_point_runs(tmp_path, trained_qagen_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"summary": "alice visited paris .", "source": SOURCE}) + "\n")
    result = subprocess.run([sys.executable, "-m", "quals", "score", "--input", str(tmp_path / "in.jsonl"),
                             "--out", "-", "--model", trained_qagen_path, "--max-pairs", "2"],
                            check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout.splitlines()[0])
    assert row["num_pairs"] <= 2 + 1 and row["quals"] is not None  # two QA pairs at most, and its sentence pair
    help_text = subprocess.run([sys.executable, "-m", "quals", "score", "--help"], check=True, capture_output=True,
                               text=True)
    assert "--filter-mode {strict,reference}" in help_text.stdout and "--parity" in help_text.stdout
