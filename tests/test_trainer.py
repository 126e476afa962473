"""ContrastiveTrainer end to end on a tiny BART and a templated summarization task (CPU, seconds each)."""

import json

import pytest
import torch

from trainer_ext import ContrastiveTrainer, ContrastiveTrainingArguments
from trainer_ext.candidates import STORE_FILE, CandidateStore
from trainer_ext.testing import tiny_summarization_task, word_overlap_scorer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run faster on one thread (no oversubscription)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_args(tmp_path, **overrides):
    settings = {"output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8,
                "num_train_epochs": 1, "learning_rate": 1e-3, "report_to": "none", "logging_steps": 1,
                "save_strategy": "no", "use_cpu": True, "disable_tqdm": True, "generation_max_length": 10,
                "conseq_num_candidates": 3, "conseq_negative_fraction": 1.0, "conseq_positive_fraction": 1.0,
                "seed": 0}
    return ContrastiveTrainingArguments(**{**settings, **overrides})


def make_trainer(tmp_path, num_documents=8, scorer=word_overlap_scorer, seed=0, dataset_fn=None, **overrides):
    model, tokenizer, dataset = tiny_summarization_task(num_documents, seed=seed)
    if dataset_fn is not None:
        dataset = dataset_fn(dataset)
    return ContrastiveTrainer(model=model, args=make_args(tmp_path, **overrides), train_dataset=dataset,
                              processing_class=tokenizer, scorer=scorer)


def trainable(trainer):
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


def train_logs(trainer):
    return [h for h in trainer.state.log_history if "loss" in h]


def test_three_steps_change_every_trainable_parameter_and_log_both_loss_parts(tmp_path):
    trainer = make_trainer(tmp_path, num_documents=12, max_steps=3)
    before = trainable(trainer)
    trainer.train()
    after = dict(trainer.model.named_parameters())
    unchanged = [n for n, p in before.items() if torch.equal(p, after[n].detach())]
    # position embeddings of positions never reached and the embedding rows of unused words may stay put
    assert not [n for n in unchanged if "embed" not in n and "shared" not in n], unchanged
    logs = train_logs(trainer)
    assert len(logs) == 3
    assert all("loss_positive" in h and "loss_negative" in h for h in logs)
    assert any(h["loss_negative"] > 0 for h in logs) and any(h["loss_positive"] > 0 for h in logs)
    for h in logs:
        assert h["loss"] == pytest.approx(h["loss_positive"] + h["loss_negative"], rel=1e-4)
    round_log = next(h for h in trainer.state.log_history if "conseq/num_positives" in h)
    assert round_log["conseq/num_positives"] == 12 and "conseq/regeneration_seconds" in round_log
    assert round_log["conseq/selected_share"] == 1.0


def test_logs_carry_the_log_probs_of_the_positive_and_negative_rows_and_their_margin(tmp_path):
    trainer = make_trainer(tmp_path, num_documents=8, max_steps=4, learning_rate=3e-3)
    trainer.train()
    logs = train_logs(trainer)
    for h in logs:
        assert h["logps_positive"] < 0 and h["logps_negative"] < 0
        assert h["logps_margin"] == pytest.approx(h["logps_positive"] - h["logps_negative"])
    # training raises the references' likelihood and lowers the negatives': the margin grows
    assert logs[-1]["logps_margin"] > logs[0]["logps_margin"]


class _RecordingScorer:
    """Counts calls and remembers every summary it scored."""

    def __init__(self):
        self.calls, self.summaries = 0, []

    def score(self, summaries, sources):
        self.calls += 1
        self.summaries.append(list(summaries))
        return word_overlap_scorer(summaries, sources)


@pytest.mark.parametrize(("every", "expected_epochs"), [(1, [0, 1, 2]), (2, [0, 2]), (0, [0])])
def test_candidates_are_regenerated_at_epoch_boundaries(tmp_path, every, expected_epochs):
    scorer = _RecordingScorer()
    trainer = make_trainer(tmp_path, num_documents=8, scorer=scorer, num_train_epochs=3,
                           conseq_regenerate_every_epochs=every)
    snapshots = []
    original = trainer.regeneration_callback.regenerate

    def spy(epoch):
        stats = original(epoch)
        snapshots.append({d: list(c.texts) for d, c in trainer.candidate_store.documents.items()})
        return stats

    trainer.regeneration_callback.regenerate = spy
    trainer.train()
    store = trainer.candidate_store
    assert [h["epoch"] for h in store.history] == expected_epochs
    assert store.round == trainer.regeneration_callback.rounds_this_run == len(expected_epochs)
    assert scorer.calls == len(expected_epochs)  # one scorer call per round (8 x 3 + 8 < scoring_batch_size)
    assert len(scorer.summaries[0]) == 8 * 3 + 8  # candidates plus references in the first round
    if len(expected_epochs) > 1:
        assert len(scorer.summaries[1]) == 8 * 3  # references are scored once
        assert snapshots[0] != snapshots[1]  # the model changed, and so did its samples


@pytest.mark.parametrize("remove_unused_columns", [True, False])
def test_text_columns_and_remove_unused_columns(tmp_path, remove_unused_columns):
    model, tokenizer, dataset = tiny_summarization_task(12, seed=1)
    args = make_args(tmp_path, max_steps=2, remove_unused_columns=remove_unused_columns,
                     conseq_source_column="document", conseq_summary_column="summary")
    seen_sources = []

    def scorer(summaries, sources):
        seen_sources.extend(sources)
        return word_overlap_scorer(summaries, sources)

    trainer = ContrastiveTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=dataset.select(range(4)),
                                 processing_class=tokenizer, scorer=scorer)
    trainer.train()
    assert set(seen_sources) <= set(dataset["document"])  # raw text columns reach the scorer
    assert len(train_logs(trainer)) == 2
    metrics = trainer.evaluate()  # evaluation batches use the plain seq2seq loss
    assert metrics["eval_loss"] > 0


@pytest.mark.parametrize("skip", [True, False])
def test_steps_without_training_documents_leave_the_weights_alone(tmp_path, skip):
    # round(0.05 * 8) = 0 documents selected: every batch is a zero-weight placeholder
    trainer = make_trainer(tmp_path, num_documents=8, max_steps=2, conseq_negative_fraction=0.05, weight_decay=0.1,
                           conseq_skip_empty_steps=skip)
    before = trainable(trainer)
    with pytest.warns(UserWarning, match="selected no document"):
        trainer.train()
    assert trainer.candidate_store.selection.document_ids == []
    unchanged = all(torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())
    assert unchanged == skip  # without skipping, AdamW's weight decay still moves the weights
    assert trainer.empty_steps_skipped == (2 if skip else 0)


def test_dataset_without_id_column_gets_row_ids(tmp_path):
    trainer = make_trainer(tmp_path, num_documents=8, max_steps=1,
                           dataset_fn=lambda ds: ds.remove_columns(["id", "document", "summary"]))
    trainer.train()
    assert sorted(trainer.candidate_store.documents, key=int) == [str(i) for i in range(8)]


def test_novel_unlikelihood_tokens_mask_only_tokens_absent_from_the_source(tmp_path):
    trainer = make_trainer(tmp_path, num_documents=8, max_steps=1, conseq_unlikelihood_tokens="novel")
    trainer.train()
    features = [{k: trainer.train_dataset[i][k] for k in ("id", "input_ids", "attention_mask", "labels")}
                for i in range(4)]
    batch = trainer.contrastive_collator(features)
    for row in range(batch["labels"].size(0)):
        document = batch["row_document"][row]
        source = set(batch["input_ids"][document][batch["attention_mask"][document].bool()].tolist())  # no padding
        for token, masked in zip(batch["labels"][row].tolist(), batch["negative_token_mask"][row].tolist(),
                                 strict=True):
            expected = bool(batch["is_negative"][row]) and token != -100 and token not in source
            assert masked == expected


def test_margin_rank_loss_trains_and_logs_its_parts(tmp_path):
    trainer = make_trainer(tmp_path, num_documents=8, max_steps=2, conseq_loss_type="margin_rank")
    trainer.train()
    logs = train_logs(trainer)
    assert all("loss_rank" in h and "loss_mle" in h for h in logs)
    assert all(h["loss_mle"] > 0 for h in logs)


def test_lora_trains_only_adapter_weights_and_saves_an_adapter(tmp_path):
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(task_type="SEQ_2_SEQ_LM", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    model, tokenizer, dataset = tiny_summarization_task(8)
    trainer = ContrastiveTrainer(model=model, args=make_args(tmp_path, max_steps=2, learning_rate=1e-2),
                                 train_dataset=dataset, processing_class=tokenizer, scorer=word_overlap_scorer,
                                 peft_config=config)
    everything = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(everything[n], p.detach())}
    assert changed and all("lora_" in n for n in changed)
    assert all("lora_B" in n or "lora_A" in n for n, p in trainer.model.named_parameters() if p.requires_grad)
    trainer.save_model(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    trainer.save_merged_model(str(tmp_path / "merged"))
    from transformers import AutoModelForSeq2SeqLM

    merged = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        batch = tokenizer(["alice visited rome on monday ."], return_tensors="pt")
        expected = trainer.model(**batch, decoder_input_ids=batch["input_ids"]).logits
        assert torch.allclose(merged(**batch, decoder_input_ids=batch["input_ids"]).logits, expected, atol=1e-5)


def test_lora_with_activation_checkpointing(tmp_path):
    peft = pytest.importorskip("peft")
    from trainer_ext._compat import is_activation_checkpointing

    model, tokenizer, dataset = tiny_summarization_task(8)
    trainer = ContrastiveTrainer(model=model, args=make_args(tmp_path, max_steps=2, activation_checkpointing=True),
                                 train_dataset=dataset, processing_class=tokenizer, scorer=word_overlap_scorer,
                                 peft_config=peft.LoraConfig(task_type="SEQ_2_SEQ_LM", r=4,
                                                             target_modules=["q_proj", "v_proj"]))
    trainer.train()  # without enable_input_require_grads, backward fails: "does not require grad"
    assert trainer.candidate_store.round == 1
    assert is_activation_checkpointing(trainer.model)  # switched off for generation, back on afterwards
    assert all(h["loss"] > 0 for h in train_logs(trainer))


def test_peft_config_type_is_checked(tmp_path):
    model, tokenizer, dataset = tiny_summarization_task(4)
    with pytest.raises(TypeError, match="PeftConfig"):
        ContrastiveTrainer(model=model, args=make_args(tmp_path), train_dataset=dataset, processing_class=tokenizer,
                           scorer=word_overlap_scorer, peft_config={"r": 4})


def test_resume_restores_the_candidate_store(tmp_path):
    # 16 documents, batch 4: 4 steps per epoch; checkpoints every 2 steps
    first = make_trainer(tmp_path, num_documents=16, num_train_epochs=2, save_strategy="steps", save_steps=2,
                         max_steps=6)
    first.train()
    checkpoint = tmp_path / "out" / "checkpoint-6"  # mid epoch 1, candidates from round 2 (epoch 1)
    saved = CandidateStore.load(checkpoint / STORE_FILE)
    assert saved.round == 2 and saved.epoch == 1
    assert {d: c.texts for d, c in saved.documents.items()} == {
        d: c.texts for d, c in first.candidate_store.documents.items()}

    resumed = make_trainer(tmp_path, num_documents=16, num_train_epochs=2, max_steps=8)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.regeneration_callback.rounds_this_run == 0  # mid-epoch resume: no new round
    assert resumed.candidate_store.round == 2
    assert {d: c.texts for d, c in resumed.candidate_store.documents.items()} == {
        d: c.texts for d, c in saved.documents.items()}
    assert resumed.candidate_store.selection == first.candidate_store.selection
    assert resumed.state.global_step == 8

    at_epoch_end = make_trainer(tmp_path, num_documents=16, num_train_epochs=2, max_steps=8)
    at_epoch_end.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-4"))  # end of epoch 0
    assert at_epoch_end.regeneration_callback.rounds_this_run == 1  # epoch 1 gets its round
    assert at_epoch_end.candidate_store.round == 2 and at_epoch_end.candidate_store.epoch == 1


def _write_candidates(path, dataset, make_candidates, with_scores=True):
    """A candidates file: ``make_candidates(i, summary) -> list[str]``; scores = word overlap when asked."""
    with open(path, "w") as f:
        for i, (doc_id, document, summary) in enumerate(
                zip(dataset["id"], dataset["document"], dataset["summary"], strict=True)):
            candidates = make_candidates(i, summary)
            scores = word_overlap_scorer(candidates, [document] * len(candidates)) if with_scores else None
            f.write(json.dumps({"id": doc_id, "candidates": candidates, "candidate_scores": scores}) + "\n")
    return str(path)


def test_gradient_accumulation_matches_a_single_large_batch(tmp_path):
    _, _, dataset = tiny_summarization_task(4)
    # candidates of different lengths, so that a per-micro-batch token mean would not match
    path = _write_candidates(tmp_path / "candidates.jsonl", dataset,
                             lambda i, summary: [" ".join(summary.split()[: 2 + i]), "paris " * (1 + 2 * i)])

    def one_update(batch_size, accumulation):
        trainer = make_trainer(tmp_path / f"{batch_size}x{accumulation}", num_documents=4, max_steps=1,
                               per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
                               optim="sgd", learning_rate=1.0, max_grad_norm=0.0, lr_scheduler_type="constant",
                               conseq_selection_mode="unpaired", conseq_candidates_file=path, conseq_num_candidates=2)
        before = trainable(trainer)
        trainer.train()
        return {n: p.detach() - before[n] for n, p in trainer.model.named_parameters()}

    big, small = one_update(4, 1), one_update(1, 4)
    assert any(d.abs().max() > 1e-4 for d in big.values())
    for name, delta in big.items():
        assert torch.allclose(delta, small[name], atol=1e-6, rtol=1e-4), name


def test_candidates_file_is_used_once_and_missing_scores_are_filled(tmp_path):
    model, tokenizer, dataset = tiny_summarization_task(6)
    path = tmp_path / "candidates.jsonl"
    with open(path, "w") as f:
        for i, (doc_id, summary) in enumerate(zip(dataset["id"], dataset["summary"], strict=True)):
            wrong = summary.replace("visited", "visited paris and")
            scores = [0.9, 0.1] if i % 2 else None  # half the documents come with scores
            f.write(json.dumps({"id": doc_id, "candidates": [summary, wrong], "candidate_scores": scores}) + "\n")
    scorer = _RecordingScorer()
    trainer = ContrastiveTrainer(
        model=model, args=make_args(tmp_path, max_steps=2, conseq_candidates_file=str(path),
                                    conseq_regenerate_every_epochs=0, conseq_num_candidates=2),
        train_dataset=dataset, processing_class=tokenizer,
        scorer=scorer)
    trainer.train()
    store = trainer.candidate_store
    assert store.round == 1 and store["doc-1"].scores == [0.9, 0.1]
    assert store["doc-0"].scores == word_overlap_scorer(store["doc-0"].texts, [dataset["document"][0]] * 2)
    assert store["doc-0"].token_ids[0] == tokenizer(text_target=dataset["summary"][0])["input_ids"]
    assert sum(len(batch) for batch in scorer.summaries) == 3 * 2 + 6  # 3 unscored documents x 2, 6 references


def test_scorer_objects_and_errors(tmp_path):
    from trainer_ext.scorers import RougeScorer, as_score_function

    class Result:
        def __init__(self, quals):
            self.quals = quals

    score = as_score_function(lambda summaries, sources: [Result(0.5), Result(None)])
    assert score(["a", "b"], ["x", "y"], ["r", "s"]) == [0.5, None]
    pytest.importorskip("rouge_score")
    rouge = as_score_function(RougeScorer())
    assert rouge(["alice visited rome", "bob"], ["d", "d"], ["alice visited rome", "carol"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="2 scores for 1"):
        as_score_function(lambda s, d: [1.0, 2.0])(["a"], ["x"], ["r"])
    with pytest.raises(ValueError, match="persistent"):
        make_args(tmp_path, dataloader_num_workers=1, dataloader_persistent_workers=True)
    with pytest.raises(ValueError, match="unique"):
        make_trainer(tmp_path, dataset_fn=lambda ds: ds.map(lambda _: {"id": "same"}))


def test_evaluate_module_scorer(tmp_path, monkeypatch):
    evaluate = pytest.importorskip("evaluate")
    folder = tmp_path / "overlap"
    folder.mkdir()
    (folder / "overlap.py").write_text('''
import datasets
import evaluate


class Overlap(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="word overlap", citation="", inputs_description="",
                                   features=datasets.Features({"predictions": datasets.Value("string"),
                                                               "documents": datasets.Value("string")}))

    def _compute(self, predictions, documents):
        scores = [len(set(p.split()) & set(d.split())) / max(len(p.split()), 1)
                  for p, d in zip(predictions, documents)]
        return {"scores": scores, "mean": sum(scores) / len(scores)}
''')
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    module = evaluate.load(str(folder / "overlap.py"), keep_in_memory=True)
    from trainer_ext.scorers import as_score_function

    score = as_score_function(module)
    assert score(["alice visited rome", "bob"], ["alice visited oslo", "carol"], ["r", "r"]) == [2 / 3, 0.0]


@pytest.mark.slow
def test_quals_scorer_drives_selection_and_stays_off_the_optimizer(tmp_path, trained_qagen_path):
    from quals import QualsScorer

    scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False)
    trainer = make_trainer(tmp_path, num_documents=8, scorer=scorer, max_steps=2, conseq_negative_fraction=0.5,
                           conseq_positive_fraction=0.5)
    trainer.train()
    store = trainer.candidate_store
    references = [doc.reference_score for doc in store.documents.values()]
    assert all(isinstance(r, float) for r in references)  # real references of the synthetic world are scored
    assert 0 < len(store.selection.positives) <= 4
    qagen_params = {id(p) for p in scorer.qagen.model.parameters()}
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not qagen_params & optimized


def test_a_round_that_selects_nothing_warns_with_the_cause(tmp_path):
    def unscored(summaries, sources):
        return [None] * len(summaries)

    with pytest.warns(UserWarning, match=r"selected no document: S\+ and S- are empty.*0 of 8 documents have a "
                                         r"scored candidate"):
        make_trainer(tmp_path, scorer=unscored, max_steps=1).train()


def test_a_multi_process_launch_that_trains_as_one_process_is_refused(tmp_path, monkeypatch):
    model, tokenizer, dataset = tiny_summarization_task(4)
    args = make_args(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun --nproc_per_node 2 on CPU without --use_cpu
    with pytest.raises(ValueError, match=r"launched as one of 2 .* each would train alone .* --use_cpu"):
        ContrastiveTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                           scorer=word_overlap_scorer)


def test_pairwise_objective_widens_the_gap_between_reference_and_worst_candidate(tmp_path):
    trainer = make_trainer(tmp_path, num_documents=8, max_steps=4, learning_rate=3e-3, conseq_loss_type="pairwise")
    trainer.train()
    logs = train_logs(trainer)
    assert all(h["loss"] == pytest.approx(h["loss_pairwise"], rel=1e-4) and h["loss"] > 0 for h in logs)
    assert logs[-1]["logps_margin"] > logs[0]["logps_margin"]


def test_a_new_objective_is_one_class_and_the_trainer_needs_no_change(tmp_path):
    from trainer_ext.losses import LossParts, label_smoothed_token_losses, unlikelihood_counts
    from trainer_ext.objectives import SelectedSetsObjective

    class ReferencesOnly(SelectedSetsObjective):  # plain MLE on the S+ references: S- is ignored
        name = "references_only"

        @classmethod
        def from_args(cls, args):
            return cls(**cls.selection_args(args))

        def rows(self, doc_id, reference, store, position):
            return [row for row in self.selected_rows(doc_id, reference, store, position) if not row.negative]

        def counts(self, batch):
            return unlikelihood_counts(batch["labels"], batch["row_weight"])

        def loss(self, log_probs, batch):
            nll = label_smoothed_token_losses(log_probs, batch["labels"], 0.0).sum()
            return LossParts(terms={"mle": (nll, "tokens")}, counts=self.counts(batch))

    model, tokenizer, dataset = tiny_summarization_task(8)
    objective = ReferencesOnly(negative_fraction=1.0, positive_fraction=1.0)
    trainer = ContrastiveTrainer(model=model, args=make_args(tmp_path, max_steps=2), train_dataset=dataset,
                                 processing_class=tokenizer, scorer=word_overlap_scorer, objective=objective)
    trainer.train()
    logs = train_logs(trainer)
    assert trainer.objective is objective and logs
    assert all(h["loss"] == pytest.approx(h["loss_mle"], rel=1e-4) and h["loss"] > 0 for h in logs)


def test_scoring_decoded_sources_is_said_once_at_construction(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="trainer_ext.trainer"):
        make_trainer(tmp_path, num_documents=4)
    assert "conseq_source_column is not set" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="trainer_ext.trainer"):
        make_trainer(tmp_path, num_documents=4, conseq_source_column="document")
    assert "conseq_source_column" not in caplog.text
