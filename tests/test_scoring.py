"""Teacher-forced scoring, invariances, long sources and the end-to-end behaviour of QualsScorer."""

import pytest
import torch

from quals import QualsConfig, QualsScorer
from quals.engine.formats import QAFormat
from quals.engine.loading import load_qagen, resolve_format
from quals.engine.qagen import QAGenModel, build_qagen
from quals.testing import FILLER, save_qagen, tiny_bart, word_tokenizer


SOURCE = "alice visited paris on monday . the weather was warm ."
SUMMARIES = ["alice visited paris on monday .", "bob visited paris on monday .", "alice visited rome on friday .",
             "crowds gathered in the square . alice visited paris ."]
PAPER_SCORING = {"evidence_sentences": 0, "sentence_pairs": False}  # whole source, mean over QA pairs


def hand_logprobs(qagen: QAGenModel, passage_ids: list[int], target: list[int]) -> torch.Tensor:
    """log p(z_t | z_<t, x) one token at a time, a full forward pass per prefix (no cache, no reuse)."""
    out = []
    for t in range(len(target)):
        with torch.no_grad():
            if qagen.is_encoder_decoder:
                decoder = torch.tensor([[qagen.decoder_start_id] + target[:t]])
                logits = qagen.model(input_ids=torch.tensor([passage_ids]), decoder_input_ids=decoder).logits
            else:
                logits = qagen.model(input_ids=torch.tensor([passage_ids + target[:t]])).logits
        out.append(torch.log_softmax(logits[0, -1].float(), -1)[target[t]])
    return torch.stack(out)


@pytest.mark.parametrize("arch", ["bart", "t5", "gpt2"])
def test_token_logprobs_equal_a_hand_written_loop(random_models, arch):
    qagen = load_qagen(resolve_format(None, random_models[arch]), "cpu")
    passages = [SOURCE, "bob visited rome ."]
    contexts = qagen.encode([qagen.passage_windows(p)[0] for p in passages])
    targets = [qagen.target("who visited paris ?", "alice"), qagen.target("where did bob go ?", "rome")]
    batched = qagen.token_logprobs(contexts, targets)
    for context, target, got in zip(contexts, targets, batched, strict=True):
        expected = hand_logprobs(qagen, context.input_ids.tolist(), target.ids)
        assert torch.allclose(got, expected, atol=1e-5)


def test_encoder_states_reused_equal_re_encoding(random_models):
    qagen = load_qagen(resolve_format(None, random_models["bart"]), "cpu")
    passages = [SOURCE, "bob visited rome .", "carol visited lima on sunday . " * 3]
    shared = qagen.encode([qagen.passage_windows(p)[0] for p in passages])  # one padded batch, reused below
    targets = [qagen.target(q, a) for q, a in [("who visited paris ?", "alice"), ("when ?", "sunday")]]
    jobs = [(shared[i], t) for i in range(3) for t in targets]
    reused = qagen.token_logprobs([c for c, _ in jobs], [t for _, t in jobs])
    for (context, target), got in zip(jobs, reused, strict=True):
        fresh = qagen.encode([context.input_ids.tolist()])[0]
        assert torch.allclose(got, qagen.token_logprobs([fresh], [target])[0], atol=1e-5)


def tiny_bert2bert(vocab_size: int):
    from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel

    torch.manual_seed(3)
    bert = {"vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "pad_token_id": 0}
    config = EncoderDecoderConfig.from_encoder_decoder_configs(
        BertConfig(**bert), BertConfig(**bert, is_decoder=True, add_cross_attention=True))
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    return EncoderDecoderModel(config=config)


@pytest.mark.parametrize("arch", ["bart", "t5", "bert2bert"])
def test_cross_attention_reuse_equals_the_plain_forward_pass(random_models, tmp_path, arch):
    """Targets sharing a context reuse its cross-attention keys/values; the log-probs must not change."""
    if arch == "bert2bert":
        tokenizer = word_tokenizer()
        path = save_qagen(tiny_bert2bert(len(tokenizer)), tokenizer, tmp_path / arch,
                          QAFormat(name="b2b", model="", max_source_tokens=64))
    else:
        path = random_models[arch]
    qagen = load_qagen(resolve_format(None, str(path)), "cpu")
    contexts = qagen.encode([qagen.passage_windows(p)[0] for p in (SOURCE, "bob visited rome .", SOURCE * 3)])
    targets = [qagen.target(q, a) for q, a in [("who visited paris on monday ?", "alice"), ("when ?", "monday"),
                                               ("where did bob go ?", "rome")]]
    jobs = [(contexts[i], t) for t in targets for i in (2, 0, 1)]  # interleaved contexts, mixed target lengths
    shared = qagen.token_logprobs([c for c, _ in jobs], [t for _, t in jobs])
    plain = qagen.token_logprobs([c for c, _ in jobs], [t for _, t in jobs], share_context_cache=False)
    for got, expected in zip(shared, plain, strict=True):
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("arch", ["bart", "gpt2"])
def test_scores_do_not_depend_on_batch_size_or_padding(random_models, arch):
    one = QualsScorer(model=random_models[arch], device="cpu", show_progress=False, max_batch_tokens=1)
    many = QualsScorer(model=random_models[arch], device="cpu", show_progress=False, max_batch_tokens=10**6)
    sources = [SOURCE, SOURCE * 2, "bob .", SOURCE]
    a, b = one.score(SUMMARIES, sources, True), many.score(SUMMARIES, sources, True)
    assert [r.num_pairs for r in a] == [r.num_pairs for r in b]
    for x, y in zip(a, b, strict=True):
        assert (x.quals is None) == (y.quals is None)
        if x.quals is not None:
            assert x.quals == pytest.approx(y.quals, abs=1e-5)
            assert [p.question for p in x.pairs] == [p.question for p in y.pairs]


@pytest.mark.parametrize("settings, margin", [(PAPER_SCORING, 0.5), ({}, 0.25)], ids=["paper", "default"])
def test_faithful_summary_scores_above_swapped_entity(trained_qagen_path, settings, margin):
    scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, **settings)
    faithful, swapped_person, swapped_city = scorer.quals(SUMMARIES[:3], [SOURCE] * 3)
    assert faithful > swapped_person + margin and faithful > swapped_city + margin
    assert faithful == pytest.approx(0.0, abs=0.05)  # the source supports every pair as well as the summary


def test_results_explain_each_pair_and_are_deterministic(trained_qagen_path):
    scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, **PAPER_SCORING)
    first = scorer.score([SUMMARIES[1]], [SOURCE], return_qa_pairs=True)[0]
    again = scorer.score([SUMMARIES[1]], [SOURCE], return_qa_pairs=True)[0]
    assert first.to_dict() == again.to_dict()
    pairs = first.pairs
    assert [p.quals for p in pairs] == sorted(p.quals for p in pairs)  # least supported first
    assert any(p.answer == "bob" for p in pairs[:1])  # the hallucinated entity is the least supported fact
    for p in pairs:
        assert len(p.tokens) == len(p.source_logprobs) == len(p.summary_logprobs)
        assert p.ll_source == pytest.approx(sum(p.source_logprobs) / len(p.tokens))
        assert p.quals == pytest.approx(p.ll_source - p.ll_summary)
    assert first.quals == pytest.approx(sum(p.quals for p in pairs) / len(pairs))
    assert all(r.reason for r in first.rejected)


def test_ll_summary_read_from_the_search_equals_a_second_teacher_forced_pass(trained_qagen_path, monkeypatch):
    """A pair that is exactly a generated sequence takes its LL_summary from the search's raw log-probs."""
    rows = []
    reused = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, **PAPER_SCORING)
    forced = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, reuse_search_logprobs=False,
                         **PAPER_SCORING)
    for scorer in (reused, forced):
        count = scorer._token_logprobs
        monkeypatch.setattr(scorer, "_token_logprobs",
                            lambda jobs, *rest, count=count: rows.append(len(jobs)) or count(jobs, *rest))
    a = reused.score(SUMMARIES, [SOURCE] * 4, return_qa_pairs=True)
    b = forced.score(SUMMARIES, [SOURCE] * 4, return_qa_pairs=True)
    num_pairs = sum(r.num_pairs for r in a)
    assert num_pairs > 0 and rows == [num_pairs, 2 * num_pairs]  # source windows only, vs source + summary
    for x, y in zip(a, b, strict=True):
        assert x.quals == pytest.approx(y.quals, abs=1e-5)
        for p, q in zip(x.pairs, y.pairs, strict=True):
            assert (p.question, p.answer) == (q.question, q.answer)
            assert p.summary_logprobs == pytest.approx(q.summary_logprobs, abs=1e-5)


def test_parity_mode_uses_the_penalized_search_score(trained_qagen_path):
    parity = QualsScorer(QualsConfig.paper_parity(model=trained_qagen_path, num_beam_groups=6, max_new_tokens=12,
                                                  min_new_tokens=3), device="cpu", show_progress=False)
    result = parity.score([SUMMARIES[0]], [SOURCE], return_qa_pairs=True)[0]
    for pair in result.pairs:
        assert pair.ll_summary == pytest.approx(pair.search_score / len(pair.tokens))
    assert result.source_handling == "full"


def long_source_with_fact_at_the_end() -> str:
    return " ".join(FILLER * 6) + " alice visited paris on monday ."


def test_long_sources_are_windowed_not_truncated(trained_qagen_path):
    source = long_source_with_fact_at_the_end()
    windows = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, **PAPER_SCORING)
    truncate = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, long_source="truncate",
                           **PAPER_SCORING)
    qagen = windows.load()
    spans = qagen.passage_windows(source, 64, 0.25)
    assert len(spans) > 2 and all(len(ids) <= 64 for ids in spans)
    w, t = windows.score([SUMMARIES[0]], [source])[0], truncate.score([SUMMARIES[0]], [source])[0]
    assert (w.source_handling, t.source_handling) == ("windows", "truncated")
    assert w.num_source_windows == len(spans) and t.num_source_windows == 1
    assert w.quals > t.quals + 0.5  # the supporting sentence lies beyond the first window


def test_windows_cover_the_whole_passage(random_models):
    qagen = load_qagen(resolve_format(None, random_models["bart"]), "cpu")
    text = " ".join(f"{w}" for w in (FILLER * 10))
    words = set(text.split())
    covered = {t for ids in qagen.passage_windows(text, 20, 0.25) for t in qagen.tokenizer.convert_ids_to_tokens(ids)}
    assert words <= covered


def test_leading_unknown_words_are_scored(random_models):
    qagen = load_qagen(resolve_format(None, random_models["bart"]), "cpu")
    target = qagen.target("Which team won ?", "alice")  # "Which" and "team" are not in the vocabulary
    unk = qagen.tokenizer.unk_token_id
    assert target.ids[:2] == [unk, unk] and target.num_unscored == 0
    context = qagen.encode([qagen.passage_windows(SOURCE)[0]])
    assert len(qagen.token_logprobs(context, [target])[0]) == len(target.ids)


def test_merged_terminator_and_unscored_leading_bos(tmp_path):
    tokenizer = word_tokenizer(extra_words=["|", "question", "answer", ":", ","], bos=True)
    fmt = QAFormat(name="lmqg-like", model="", question_prefix="question: ", qa_separator=", answer: ",
                   pair_delimiter="|", terminator="merged", leading_label_tokens="unscored", max_source_tokens=64)
    qagen = build_qagen(tiny_bart(len(tokenizer), seed=3), tokenizer, fmt)
    target = qagen.target("who visited paris ?", "alice")
    assert target.ids[0] == tokenizer.bos_token_id and target.num_unscored == 1
    context = qagen.encode([qagen.passage_windows(SOURCE)[0]])
    got = qagen.token_logprobs(context, [target])[0]
    assert len(got) == len(target.ids) - 1  # <s> is fed to the decoder but not scored
    with torch.no_grad():
        decoder = torch.tensor([[qagen.decoder_start_id] + target.ids[:-1]])
        logits = qagen.model(input_ids=context[0].input_ids[None], decoder_input_ids=decoder).logits[0]
    lp = torch.log_softmax(logits, -1)
    pipe = tokenizer.convert_tokens_to_ids("|")
    assert got[-1] == pytest.approx(float(torch.logaddexp(lp[-1, qagen.eos_id], lp[-1, pipe])), abs=1e-5)
    assert got[0] == pytest.approx(float(lp[1, target.ids[1]]), abs=1e-5)


def test_bad_inputs_get_named_errors_and_others_are_kept(trained_qagen_path):
    scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False)
    summaries = [SUMMARIES[0], None, 3, "", "   ", SUMMARIES[1]]
    sources = [SOURCE, SOURCE, SOURCE, SOURCE, SOURCE, None]
    results = scorer.score(summaries, sources)
    assert results[0].quals is not None and results[0].error is None
    assert [r.error for r in results[1:]] == [
        "invalid input: summary 1 is None", "invalid input: summary 2 is int, expected str",
        "empty input: summary 3 is empty or whitespace only", "empty input: summary 4 is empty or whitespace only",
        "invalid input: source 5 is None"]
    assert results[0].quals == pytest.approx(scorer.score([SUMMARIES[0]], [SOURCE])[0].quals, abs=1e-6)
    corpus = scorer.aggregate(results)
    assert (corpus.num_scored, corpus.num_unscored) == (1, 5)
    with pytest.raises(ValueError, match="2 summaries but 1 sources"):
        scorer.score(["a", "b"], ["x"])
    with pytest.raises(TypeError, match="single string"):
        scorer.score("a summary", ["x"])


def test_summary_without_surviving_pairs_is_unscored_not_a_sentinel(trained_qagen_path):
    scorer = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False, **PAPER_SCORING)
    result = scorer.score(["the the the"], [SOURCE])[0]
    assert result.quals is None and result.error == "no QA pair survived filtering"
    with_sentences = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False)  # the default
    result = with_sentences.score(["the the the"], [SOURCE], return_qa_pairs=True)[0]
    assert result.quals is not None and [p.sentence_pair for p in result.pairs] == [True]  # its sentence is checked


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_reduced_precision_agrees_with_float32(trained_qagen_path, dtype):
    reference = QualsScorer(model=trained_qagen_path, device="cpu", show_progress=False).quals(SUMMARIES[:2],
                                                                                             [SOURCE] * 2)
    reduced = QualsScorer(model=trained_qagen_path, device="cpu", dtype=dtype, show_progress=False)
    assert reduced.load().model.dtype == getattr(torch, dtype)
    assert reduced.quals(SUMMARIES[:2], [SOURCE] * 2) == pytest.approx(reference, abs=0.02)
