"""ContrastiveTrainer with a decoder-only summarizer: a tiny Llama prompted with a chat template (CPU, seconds)."""

import pytest
import torch

from quals.testing import tiny_gpt2
from trainer_ext import ContrastiveTrainer, ContrastiveTrainingArguments
from trainer_ext.summarizers import CausalSummarizer
from trainer_ext.testing import tiny_causal_summarization_task, word_overlap_scorer


def make_args(tmp_path, **overrides):
    settings = {"output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 4, "per_device_eval_batch_size": 4,
                "num_train_epochs": 1, "learning_rate": 3e-3, "report_to": "none", "logging_steps": 1,
                "save_strategy": "no", "use_cpu": True, "disable_tqdm": True, "generation_max_length": 10,
                "conseq_num_candidates": 2, "conseq_negative_fraction": 1.0, "conseq_positive_fraction": 1.0,
                "conseq_source_column": "document", "seed": 0}
    return ContrastiveTrainingArguments(**{**settings, **overrides})


@pytest.mark.parametrize("arch", ["llama", "gpt2"])  # rotary positions, and absolute ones (which padding would shift)
def test_row_logits_are_a_plain_forward_pass_and_do_not_depend_on_padding(arch):
    model, tokenizer, dataset = tiny_causal_summarization_task(3)
    if arch == "gpt2":
        model = tiny_gpt2(len(tokenizer), d_model=32, layers=1)
    model.eval()  # no dropout
    kind = CausalSummarizer(tokenizer.pad_token_id)
    rows = [dataset[i] for i in range(3)]
    alone = []
    for row in rows:  # one row, no padding: the logits of [prompt ; summary] at the summary positions
        prompt, summary = torch.tensor([row["input_ids"]]), torch.tensor([row["labels"]])
        full = model(input_ids=torch.cat([prompt, summary], 1)).logits
        expected = full[:, prompt.size(1) - 1: prompt.size(1) - 1 + summary.size(1)]
        got = kind.row_logits(model, prompt, torch.ones_like(prompt), torch.tensor([0]), summary)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        alone.append(got[0])
    batch = tokenizer.pad([{"input_ids": r["input_ids"]} for r in rows], return_tensors="pt", padding_side="left")
    width = max(len(r["labels"]) for r in rows)
    labels = torch.full((3, width), -100)
    for i, row in enumerate(rows):  # left-padded labels, as an evaluation collator on a left-padding tokenizer makes
        labels[i, width - len(row["labels"]):] = torch.tensor(row["labels"])
    batched = kind.row_logits(model, batch["input_ids"], batch["attention_mask"], torch.arange(3), labels)
    for i, row in enumerate(rows):
        torch.testing.assert_close(batched[i, width - len(row["labels"]):], alone[i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_lora", [False, True])
def test_a_decoder_only_summarizer_trains_with_candidates_that_exclude_the_prompt(tmp_path, use_lora):
    from peft import LoraConfig

    model, tokenizer, dataset = tiny_causal_summarization_task(8)
    peft_config = LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"]) if use_lora else None
    trainer = ContrastiveTrainer(model=model, args=make_args(tmp_path, max_steps=3), train_dataset=dataset,
                                 processing_class=tokenizer, scorer=word_overlap_scorer, peft_config=peft_config)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and all(h["loss"] > 0 and "logps_margin" in h for h in logs)
    candidates = [t for doc in trainer.candidate_store.documents.values() for t in doc.texts]
    assert candidates and not any("Summarize" in t or "im_start" in t for t in candidates)  # the reply only
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n in trainable) if use_lora else trainable


def test_decoder_only_evaluation_and_prediction_without_a_train_set(tmp_path):
    model, tokenizer, dataset = tiny_causal_summarization_task(4)
    args = make_args(tmp_path, predict_with_generate=True)
    trainer = ContrastiveTrainer(model=model, args=args, eval_dataset=dataset.remove_columns(["id", "document",
                                                                                            "summary"]),
                                 processing_class=tokenizer, scorer=word_overlap_scorer)
    metrics = trainer.evaluate(max_length=6)
    assert metrics["eval_loss"] > 0
    prediction = trainer.predict(dataset.remove_columns(["id", "document", "summary"]), max_length=6)
    assert prediction.predictions.shape[0] == 4 and prediction.predictions.shape[1] <= 6


def test_a_decoder_only_summarizer_needs_the_raw_source_column(tmp_path):
    model, tokenizer, dataset = tiny_causal_summarization_task(4)
    with pytest.raises(ValueError, match="input_ids hold its prompt .* set conseq_source_column"):
        ContrastiveTrainer(model=model, args=make_args(tmp_path, conseq_source_column=None), train_dataset=dataset,
                           processing_class=tokenizer, scorer=word_overlap_scorer)


def test_raw_texts_from_an_aligned_text_dataset_behind_chat_prompts():
    """A decoder-only summarizer's input_ids are a whole chat prompt; the alignment check still finds each document in
    its prompt, and the scorer gets the raw texts back; too few rows are refused."""
    from trainer_ext.testing import synthetic_documents
    from trainer_ext.texts import DocumentTexts

    _, tokenizer, dataset = tiny_causal_summarization_task(6)
    tokenized = dataset.remove_columns(["document", "summary"])
    raw = synthetic_documents(6)
    texts = DocumentTexts(tokenized, tokenizer, "document", "summary", raw)
    _, sources, references = texts([0, 5])
    assert sources == [raw[0]["document"], raw[5]["document"]]
    assert references == [raw[0]["summary"], raw[5]["summary"]]
    with pytest.raises(ValueError, match="conseq_text_dataset has 5 rows, fewer than the 6 training rows"):
        DocumentTexts(tokenized, tokenizer, "document", None, raw.select(range(5)))
    with pytest.raises(ValueError, match="conseq_text_dataset row 0 does not match training row 0"):
        DocumentTexts(tokenized, tokenizer, "document", None, synthetic_documents(6, seed=1))
