"""Our diverse beam search: exact behaviour on a scripted decoder, and equivalences on real tiny models."""

import pytest
import torch

from quals.engine.diverse_beam_search import KeepAllRows, diverse_beam_search
from quals.engine.loading import load_qagen, resolve_format
from quals.engine.qagen import Target


EOS, PAD = 2, 0


class ScriptedDecoder:
    """Every row, every step: the same log-probs (token 3 > 4 > 5 > eos, unless ``eos_first``)."""

    def __init__(self, rows, eos_first=False):
        logits = torch.tensor([-9.0, -9.0, 3.0 if eos_first else -3.0, 2.0, 1.5, 1.0])
        self.logprobs = torch.log_softmax(logits, -1)
        self.rows, self.fed = rows, []

    def start(self):
        return self.logprobs.expand(self.rows, -1).clone()

    def keep(self, rows):
        self.rows = len(rows)

    def step(self, tokens):
        assert len(tokens) == self.rows  # only rows still decoding are fed
        self.fed.append(tokens.clone())
        return self.logprobs.expand(self.rows, -1).clone()


def run(groups, penalty, n=1, min_new=1, max_new=3, eos_first=False, penalty_candidates=1, share_prefixes=True):
    decoder = ScriptedDecoder(n * groups, eos_first)
    out = diverse_beam_search(decoder, n, groups, penalty, min_new, max_new, EOS, PAD, penalty_candidates,
                              share_prefixes)
    return out, decoder


def test_returns_one_sequence_per_group_and_forces_eos_at_max():
    out, _ = run(groups=3, penalty=0.0, n=2, max_new=4)
    assert out.sequences.shape == (2, 3, 5)  # [N, G, max_new + 1]
    assert (out.sequences[..., -1] == EOS).all() and (out.lengths == 5).all()


def test_without_penalty_every_group_is_greedy():
    out, _ = run(groups=3, penalty=0.0)
    assert (out.sequences[0, :, :3] == 3).all()
    assert torch.equal(out.token_logprobs, out.penalized_logprobs)


def test_penalty_moves_later_groups_to_other_tokens():
    out, _ = run(groups=3, penalty=10.0)
    assert out.sequences[0, :, 0].tolist() == [3, 4, 5]
    # content tokens no earlier group chose carry no penalty; the forced eos is shared, so it is penalized
    assert torch.equal(out.penalized_logprobs[..., :3], out.token_logprobs[..., :3])
    assert torch.allclose(out.penalized_logprobs[0, :, 3], out.token_logprobs[0, :, 3] - torch.tensor([0, 10., 20.]))


def test_small_penalty_is_paid_and_kept_apart_from_raw_logprobs():
    out, _ = run(groups=3, penalty=0.1)  # token 3 leads token 4 by 0.5 nats: worth paying up to 0.5
    assert (out.sequences[0, :, :3] == 3).all()
    raw, penalized = out.token_logprobs[0, :, 0], out.penalized_logprobs[0, :, 0]
    assert torch.allclose(penalized, raw - torch.tensor([0.0, 0.1, 0.2]))  # lambda x (earlier groups that chose 3)
    # 4 steps (3 tokens + eos), each paying lambda x g
    assert torch.allclose(out.search_scores()[0], out.token_logprobs[0].sum(-1) - torch.tensor([0.0, 0.4, 0.8]))


def test_fairseq_counting_penalizes_top_two_candidates_of_earlier_groups():
    out, _ = run(groups=2, penalty=10.0, penalty_candidates=2)
    assert out.sequences[0, :, 0].tolist() == [3, 5]  # group 0 counted both 3 and 4


def test_min_new_tokens_masks_eos_and_finished_groups_stop():
    out, decoder = run(groups=2, penalty=0.0, min_new=2, max_new=6, eos_first=True)
    assert out.sequences[0, 0].tolist() == [3, 3, EOS]
    assert out.lengths.tolist() == [[3, 3]]
    assert len(decoder.fed) == 2  # stopped as soon as every group finished


def test_groups_on_one_prefix_share_one_decoder_row():
    shared, shared_decoder = run(groups=4, penalty=0.0, n=2, max_new=3)  # every group writes 3 3 3 eos
    separate, separate_decoder = run(groups=4, penalty=0.0, n=2, max_new=3, share_prefixes=False)
    assert torch.equal(shared.sequences, separate.sequences)
    assert [len(t) for t in shared_decoder.fed] == [2, 2, 2]  # one row per input
    assert [len(t) for t in separate_decoder.fed] == [8, 8, 8]  # one row per group
    assert (shared.decoder_rows, separate.decoder_rows) == (8 + 6, 8 + 24)  # this decoder starts with N*G rows


def test_groups_that_part_ways_get_their_own_rows():
    out, decoder = run(groups=3, penalty=10.0, max_new=3)  # groups choose 3, 4, 5 at the first step
    assert [len(t) for t in decoder.fed] == [3, 3, 3]
    assert out.sequences[0, :, 0].tolist() == [3, 4, 5]


def test_min_greater_than_max_is_rejected():
    with pytest.raises(ValueError, match="min_new_tokens"):
        run(groups=1, penalty=0.0, min_new=5, max_new=3)


@pytest.fixture(scope="module")
def trained(trained_qagen_path):
    return load_qagen(resolve_format(None, trained_qagen_path), "cpu")


def test_one_group_without_penalty_equals_transformers_greedy(trained):
    passages = ["alice visited paris on monday .", "bob visited rome on friday . the weather was warm ."]
    contexts = trained.encode([trained.passage_windows(p)[0] for p in passages])
    out = diverse_beam_search(trained.stepper(contexts, 1), 2, 1, 0.0, 3, 12, trained.eos_id, trained.pad_id)
    for i, passage in enumerate(passages):
        inputs = trained.tokenizer(passage, return_tensors="pt")
        greedy = trained.model.generate(**inputs, do_sample=False, num_beams=1, min_new_tokens=3, max_new_tokens=13)
        expected = greedy[0, 1:].tolist()  # drop the decoder start token
        expected = expected[: expected.index(trained.eos_id) + 1]
        assert out.sequences[i, 0, : out.lengths[i, 0]].tolist() == expected


def test_batched_search_equals_one_input_at_a_time(trained):
    passages = ["alice visited paris on monday .", "carol visited lima on sunday . crowds gathered in the square ."]
    contexts = trained.encode([trained.passage_windows(p)[0] for p in passages])

    def search(ctx):
        return diverse_beam_search(trained.stepper(ctx, 4), len(ctx), 4, 0.5, 3, 12, trained.eos_id, trained.pad_id)

    together = search(contexts)
    for i in range(2):
        alone = search(contexts[i: i + 1])
        assert torch.equal(together.sequences[i, :, : alone.sequences.shape[-1]], alone.sequences[0])
        assert torch.allclose(together.token_logprobs[i, :, : alone.sequences.shape[-1]], alone.token_logprobs[0],
                              atol=1e-5)


@pytest.mark.parametrize("arch", ["bart", "t5", "gpt2"])
def test_raw_logprobs_equal_teacher_forcing(random_models, arch):
    qagen = load_qagen(resolve_format(None, random_models[arch]), "cpu")
    contexts = qagen.encode([qagen.passage_windows("alice visited paris on monday .")[0]])
    out = diverse_beam_search(qagen.stepper(contexts, 3), 1, 3, 0.7, 2, 8, qagen.eos_id, qagen.pad_id)
    for g in range(3):
        ids = out.sequences[0, g, : out.lengths[0, g]].tolist()
        forced = qagen.token_logprobs(contexts, [Target(ids)])[0]  # random models may emit specials: score as is
        assert torch.allclose(forced, out.token_logprobs[0, g, : len(ids)], atol=1e-5)


def test_prefix_sharing_gives_identical_results_with_fewer_rows(trained):
    passages = ["alice visited paris on monday . the weather was warm .", "bob visited rome on friday ."]
    contexts = trained.encode([trained.passage_windows(p)[0] for p in passages])
    args = (2, 8, 0.5, 3, 12, trained.eos_id, trained.pad_id)
    shared = diverse_beam_search(trained.stepper(contexts, 8), *args)
    separate = diverse_beam_search(trained.stepper(contexts, 8), *args, share_prefixes=False)
    assert torch.equal(shared.sequences, separate.sequences)
    assert torch.allclose(shared.token_logprobs, separate.token_logprobs, atol=1e-5)
    assert torch.allclose(shared.penalized_logprobs, separate.penalized_logprobs, atol=1e-5)
    assert shared.decoder_rows < separate.decoder_rows  # the trained model keeps groups together for a while


def test_dropping_finished_groups_gives_identical_results(trained):
    contexts = trained.encode([trained.passage_windows("alice visited paris on monday . the weather was warm .")[0]])
    args = (1, 8, 0.5, 3, 12, trained.eos_id, trained.pad_id)
    compact = diverse_beam_search(trained.stepper(contexts, 8), *args)
    full = diverse_beam_search(KeepAllRows(trained.stepper(contexts, 8), 8, trained.pad_id), *args,
                               share_prefixes=False)
    assert len(set(compact.lengths[0].tolist())) > 1  # groups finished at different steps, so rows were dropped
    assert torch.equal(compact.sequences, full.sequences)
    assert torch.allclose(compact.token_logprobs, full.token_logprobs, atol=1e-5)


@pytest.mark.parametrize("arch", ["bart", "gpt2"])
def test_first_step_shared_by_the_groups_equals_one_per_group(random_models, arch):
    """The G groups of a context share its first step (cross-attention keys/values, or the prompt's cache)."""
    qagen = load_qagen(resolve_format(None, random_models[arch]), "cpu")
    contexts = qagen.encode([qagen.passage_windows(p)[0] for p in ("alice visited paris on monday .", "bob .")])
    args = (2, 5, 0.5, 2, 8, qagen.eos_id, qagen.pad_id)
    shared = diverse_beam_search(qagen.stepper(contexts, 5), *args)
    separate = diverse_beam_search(qagen.stepper(contexts, 5, share_context_cache=False), *args)
    assert torch.equal(shared.sequences, separate.sequences)
    assert torch.allclose(shared.token_logprobs, separate.token_logprobs, atol=1e-5)
