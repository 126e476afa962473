"""The drop-in claim, tried as a user would: a summarization script shaped like transformers'
``run_summarization.py`` (written here in our own words: ``HfArgumentParser`` over model, data and training
dataclasses, its own ``text_column``/``summary_column``, tokenization that removes the text columns, ``--do_train``/
``--do_eval``/``--do_predict`` and ``predict_with_generate``) runs after swapping ``Seq2SeqTrainer`` and
``Seq2SeqTrainingArguments`` for ``ContrastiveTrainer`` and ``ContrastiveTrainingArguments`` (and passing a scorer).
"""

import json
import runpy
import sys

import pytest

from trainer_ext.testing import tiny_summarization_task


SCRIPT = '''
import json, os, sys
from dataclasses import dataclass, field

from datasets import load_dataset
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, DataCollatorForSeq2Seq, HfArgumentParser

from trainer_ext import ContrastiveTrainer as Seq2SeqTrainer                        # the swap
from trainer_ext import ContrastiveTrainingArguments as Seq2SeqTrainingArguments    # the swap
from trainer_ext.testing import word_overlap_scorer


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "model folder"})


@dataclass
class DataTrainingArguments:
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_column: str = "document"
    summary_column: str = "summary"
    max_source_length: int = 64
    max_target_length: int = 16
    keep_text_columns: bool = False


def main():
    model_args, data_args, training_args = HfArgumentParser(
        (ModelArguments, DataTrainingArguments, Seq2SeqTrainingArguments)).parse_args_into_dataclasses()
    files = {name: path for name, path in (("train", data_args.train_file), ("validation", data_args.validation_file),
                                           ("test", data_args.test_file)) if path}
    raw = load_dataset("json", data_files=files)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_args.model_name_or_path)

    def preprocess(batch):
        inputs = tokenizer(batch[data_args.text_column], max_length=data_args.max_source_length, truncation=True)
        inputs["labels"] = tokenizer(text_target=batch[data_args.summary_column],
                                     max_length=data_args.max_target_length, truncation=True)["input_ids"]
        return inputs

    def tokenized(split):
        column_names = raw[split].column_names
        keep = {data_args.text_column} if data_args.keep_text_columns else set()
        return raw[split].map(preprocess, batched=True, remove_columns=[c for c in column_names if c not in keep])

    train = tokenized("train") if training_args.do_train else None
    evaluation = tokenized("validation") if training_args.do_eval else None
    trainer = Seq2SeqTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=evaluation,
                             processing_class=tokenizer, data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
                             scorer=word_overlap_scorer)
    results = {}
    if training_args.do_train:
        results["train"] = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint).metrics
        trainer.save_model()
    if training_args.do_eval:
        results["eval"] = trainer.evaluate(max_length=data_args.max_target_length, metric_key_prefix="eval")
    if training_args.do_predict:
        prediction = trainer.predict(tokenized("test"), max_length=data_args.max_target_length)
        results["predictions"] = tokenizer.batch_decode(prediction.predictions, skip_special_tokens=True)
    with open(os.path.join(training_args.output_dir, "script_results.json"), "w") as out:
        json.dump(results, out, default=str)


if __name__ == "__main__":
    main()
'''


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("dropin")
    model, tokenizer, dataset = tiny_summarization_task(12)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    rows = [{"document": r["document"], "summary": r["summary"]} for r in dataset]
    for name, part in (("train", rows[:8]), ("validation", rows[8:10]), ("test", rows[10:])):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    (root / "run_summarization.py").write_text(SCRIPT)
    return root


def run_script(workspace, out, *flags, monkeypatch):
    argv = ["run_summarization.py", "--model_name_or_path", str(workspace / "model"), "--output_dir", str(out),
            "--train_file", str(workspace / "train.jsonl"), "--validation_file", str(workspace / "validation.jsonl"),
            "--test_file", str(workspace / "test.jsonl"), "--text_column", "document", "--summary_column", "summary",
            "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "2", "--use_cpu",
            "--report_to", "none", "--predict_with_generate", "--generation_max_length", "8",
            "--conseq_num_candidates", "2", "--conseq_positive_fraction", "1", "--conseq_negative_fraction", "1",
            "--disable_tqdm", "true", *flags]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(workspace / "run_summarization.py"), run_name="__main__")
    return json.loads((out / "script_results.json").read_text())


def test_the_swapped_script_trains_evaluates_and_predicts(workspace, tmp_path, monkeypatch):
    results = run_script(workspace, tmp_path / "run", "--do_train", "--do_eval", "--do_predict", "--max_steps", "2",
                         "--save_strategy", "no", monkeypatch=monkeypatch)
    assert results["train"]["train_loss"] > 0
    assert "eval_loss" in results["eval"] and len(results["predictions"]) == 2
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("mode", ["--do_eval", "--do_predict"])
def test_evaluation_or_prediction_alone_needs_no_train_set(workspace, tmp_path, monkeypatch, mode):
    results = run_script(workspace, tmp_path / "run", mode, monkeypatch=monkeypatch)
    assert "train" not in results
    assert ("eval_loss" in results["eval"]) if mode == "--do_eval" else len(results["predictions"]) == 2


def test_a_removed_source_column_is_refused_at_construction_with_the_fix(workspace, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"conseq_source_column='document' is not a column of train_dataset.*"
                                         r"pass the untokenized data it read as conseq_text_dataset.*"
                                         r"remove_columns=\[c for c in column_names if c != 'document'\]"):
        run_script(workspace, tmp_path / "run", "--do_train", "--conseq_source_column", "document",
                   monkeypatch=monkeypatch)


def test_a_kept_source_column_reaches_the_scorer_as_raw_text(workspace, tmp_path, monkeypatch):
    results = run_script(workspace, tmp_path / "run", "--do_train", "--max_steps", "1", "--save_strategy", "no",
                         "--keep_text_columns", "true", "--conseq_source_column", "document",
                         monkeypatch=monkeypatch)
    assert results["train"]["train_loss"] > 0


def test_the_untokenized_file_gives_the_scorer_raw_texts_with_no_script_change(workspace, tmp_path, monkeypatch):
    """The script removed its text columns; naming the file it read brings the raw texts back, flags only."""
    import trainer_ext.testing

    seen: dict[str, set[str]] = {"summaries": set(), "sources": set()}
    score = trainer_ext.testing.word_overlap_scorer

    def recording_scorer(summaries, sources):
        seen["summaries"].update(summaries)
        seen["sources"].update(sources)
        return score(summaries, sources)

    monkeypatch.setattr(trainer_ext.testing, "word_overlap_scorer", recording_scorer)
    results = run_script(workspace, tmp_path / "run", "--do_train", "--max_steps", "1", "--save_strategy", "no",
                         "--conseq_text_dataset", str(workspace / "train.jsonl"), "--conseq_source_column",
                         "document", "--conseq_summary_column", "summary", monkeypatch=monkeypatch)
    rows = [json.loads(line) for line in (workspace / "train.jsonl").read_text().splitlines()]
    assert results["train"]["train_loss"] > 0
    assert seen["sources"] == {r["document"] for r in rows}  # the raw documents, every one, nothing decoded
    assert {r["summary"] for r in rows} <= seen["summaries"]  # references are scored beside the candidates


def test_an_untokenized_file_in_another_order_is_refused_naming_the_row(workspace, tmp_path, monkeypatch):
    lines = (workspace / "train.jsonl").read_text().splitlines()
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_text("".join(line + "\n" for line in reversed(lines)))
    with pytest.raises(ValueError, match=r"conseq_text_dataset row \d+ does not match training row \d+: its "
                                         r"'document' begins .*same split, same order"):
        run_script(workspace, tmp_path / "run", "--do_train", "--conseq_text_dataset", str(shuffled),
                   "--conseq_source_column", "document", monkeypatch=monkeypatch)
