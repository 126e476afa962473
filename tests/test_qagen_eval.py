"""benchmarks/qagen_eval.py on a tiny QAGen and a SQuAD file the test writes: the report counts what it says, and a
sampled token loss scores the asked number of pairs without changing which passages are generated from."""

import json
import sys
from pathlib import Path

from quals import resolve_format


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import qagen_eval


PASSAGES = {"held": ["alice visited paris on monday .", "bob lives in rome .", "the weather was warm ."],
            "trained": ["crowds gathered in the square ."]}


def squad_file(tmp_path: Path) -> Path:
    data = [{"title": title, "paragraphs": [
        {"context": passage, "qas": [{"question": f"what about {word} ?", "answers": [{"text": word}]}
                                     for word in passage.split()[:2]]} for passage in passages]}
            for title, passages in PASSAGES.items()]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": data}))
    return path


def test_report_counts_generated_answers_and_a_sampled_loss_keeps_the_passages(trained_qagen_path, tmp_path):
    fmt, squad = resolve_format(None, trained_qagen_path), squad_file(tmp_path)
    split = {"heldout_articles": ["held"]}
    whole = qagen_eval.evaluate(fmt, split, str(squad), num_passages=2, groups=2, penalty=0.5, seed=0)
    sampled = qagen_eval.evaluate(fmt, split, str(squad), num_passages=2, groups=2, penalty=0.5, seed=0,
                                  loss_pairs=2)
    assert whole["heldout_pairs"] == whole["token_loss_pairs"] == 6 and sampled["token_loss_pairs"] == 2
    assert whole["token_loss"] > 0 and sampled["token_loss"] > 0
    assert whole["passages_generated"] == 2 and whole["counts"] == sampled["counts"]
    assert [s["passage"] for s in whole["samples"]] == [s["passage"] for s in sampled["samples"]]
    counts = whole["counts"]
    assert 0 < counts["answers"] == counts["questions"] and counts["answer_in_own"] <= counts["answers"]
    assert whole["answer_in_own_passage"] == round(counts["answer_in_own"] / max(counts["answers"], 1), 4)
