"""Per-document seeded sampling (trainer_ext.sampling): a real sampler, and candidates that do not depend on how
documents are batched."""

import pytest
import torch

from trainer_ext import ContrastiveTrainer, ContrastiveTrainingArguments
from trainer_ext.sampling import GumbelSampler, row_seed
from trainer_ext.testing import tiny_summarization_task, word_overlap_scorer


def test_gumbel_max_draws_from_the_filtered_tempered_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0]])
    sampler = GumbelSampler([row_seed(0, 1, "d", k) for k in range(1)], temperature=0.7, top_k=3)
    draws = torch.stack([sampler(None, logits).argmax(-1) for _ in range(20_000)]).flatten()
    frequencies = torch.bincount(draws, minlength=5).float() / len(draws)
    expected = torch.cat([(logits[0, :3] / 0.7).softmax(-1), torch.zeros(2)])
    assert frequencies[3:].sum() == 0  # outside the top 3: never drawn
    assert frequencies == pytest.approx(expected, abs=0.01)


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    sampler = GumbelSampler([1, 2], top_p=0.75)
    kept = torch.isfinite(sampler(None, logits.repeat(2, 1)))
    assert kept.tolist() == [[True, True, False, False]] * 2  # 0.5 + 0.3 reaches 0.75


def test_candidates_do_not_depend_on_the_generation_batch_size(tmp_path):
    candidates = []
    for batch_size in (1, 3, 8):
        model, tokenizer, dataset = tiny_summarization_task(8)
        args = ContrastiveTrainingArguments(output_dir=str(tmp_path / str(batch_size)), report_to="none", use_cpu=True,
                                            per_device_eval_batch_size=batch_size, generation_max_length=10,
                                            conseq_num_candidates=3, seed=0)
        trainer = ContrastiveTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                     scorer=word_overlap_scorer)
        trainer.regeneration_callback.regenerate(0)
        candidates.append({d: c.texts for d, c in trainer.candidate_store.documents.items()})
    assert candidates[0] == candidates[1] == candidates[2]
    texts = [t for doc in candidates[0].values() for t in doc]
    assert len(set(texts)) > len(candidates[0])  # real sampling: not one text per document
