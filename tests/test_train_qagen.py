"""The QAGen training recipe: data conversion, warm start, separator round trip, training, loading and resume."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel, BertTokenizer

from quals import QualsScorer
from quals.engine.presets import get_preset
from quals.engine.qagen import build_qagen
from quals.recipe.data import (
    QAExample,
    cloze_examples,
    crop_to_answer,
    load_examples,
    split_by_article,
    squad_examples,
)
from quals.recipe.seq2seq import PassageGroupCollator, _round_trips, is_cross_attention
from quals.recipe.train import TrainQAGenConfig, load_model_and_tokenizer, train_qagen
from quals.recipe.warm_start import bart_from_bert, evenly_spaced_layers
from quals.testing import CITIES, DAYS, PEOPLE, WORDS, SyntheticWorld


def _squad(world: SyntheticWorld, articles: int = 4, paragraphs: int = 3) -> dict:
    data = []
    for a in range(articles):
        items = []
        for _ in range(paragraphs):
            fact = world.fact()
            context = world.document(fact, 1)
            qas = [{"question": q, "id": f"{a}-{q}", "answers": [{"text": ans, "answer_start": context.find(ans)}] * 2}
                   for q, ans in world.qa_pairs(fact)]
            items.append({"context": context, "qas": qas})
        data.append({"title": f"article-{a}", "paragraphs": items})
    return {"version": "1.1", "data": data}


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    """A tiny uncased BERT (random weights) and its WordPiece tokenizer, saved like a Hub encoder checkpoint."""
    path = tmp_path_factory.mktemp("tiny-bert")
    words = sorted(set(WORDS + PEOPLE + CITIES + DAYS))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<", ">", "sep"] + words
    BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(path)
    return path


def test_squad_examples_one_per_distinct_answer():
    data = {"data": [{"title": "t", "paragraphs": [{"context": "Ada Lovelace wrote notes in 1843.", "qas": [
        {"question": " Who wrote notes? ", "answers": [{"text": "Ada Lovelace", "answer_start": 0},
                                                       {"text": "Ada Lovelace ", "answer_start": 0},
                                                       {"text": "Lovelace", "answer_start": 4}]}]}]}]}
    examples = squad_examples(data)
    assert [(e.question, e.answer) for e in examples] == [("Who wrote notes?", "Ada Lovelace"),
                                                          ("Who wrote notes?", "Lovelace")]
    rendered = get_preset("paper").render(examples[0].question, examples[0].answer)
    assert rendered == "Who wrote notes? <sep> Ada Lovelace"


def test_newsqa_stories_use_the_consensus_span(tmp_path):
    story = "Rain fell in Oslo on Monday."
    stories = {"data": [{"storyId": "s1", "type": "train", "text": story, "questions": [
        {"q": "Where did rain fall?", "consensus": {"s": 13, "e": 17}},
        {"q": "Why?", "consensus": {"badQuestion": True}},
        {"q": "Who?", "consensus": {"noAnswer": True}}]},
        {"storyId": "s2", "type": "dev", "text": story,
         "questions": [{"q": "When?", "consensus": {"s": 21, "e": 27}}]}]}
    path = tmp_path / "newsqa.json"
    path.write_text(json.dumps(stories))
    assert [(e.question, e.answer, e.article) for e in load_examples(path, newsqa_split="train")] == [
        ("Where did rain fall?", "Oslo", "s1")]
    assert len(load_examples(path)) == 2


def test_split_holds_out_whole_articles():
    examples = squad_examples(_squad(SyntheticWorld(0), articles=5))
    train, heldout = split_by_article(examples, 2, seed=3)
    assert len({e.article for e in heldout}) == 2
    assert not {e.article for e in train} & {e.article for e in heldout}
    assert len(train) + len(heldout) == len(examples)
    assert split_by_article(examples, 2, seed=3) == (train, heldout)  # the seed fixes the split


def test_cloze_answers_are_spans_of_their_passage():
    text = ("The council met in Leeds on Tuesday. Officials said 42 people attended the meeting. "
            "Mayor Jane Brown opened the session with a short speech.")
    examples = cloze_examples([("doc", text)], per_text=10, seed=0)
    assert examples
    for e in examples:
        assert e.answer in e.passage and e.question.endswith("?") and e.answer not in e.question


def test_crop_keeps_the_answer_sentence_and_its_neighbours():
    passage = "Rain fell. Paris is in France. It is big. Dogs bark. Cats sleep."
    example = QAExample(passage, "Where is Paris?", "France", "t")
    assert crop_to_answer(example, 0).passage == "Paris is in France."
    assert crop_to_answer(example, 1).passage == "Rain fell. Paris is in France. It is big."
    assert crop_to_answer(example, 9).passage == passage
    spanning = QAExample(passage, "What happens?", "big. Dogs", "t")  # no single sentence holds it: unchanged
    assert crop_to_answer(spanning, 0) == spanning
    assert (crop_to_answer(example, 0).question, crop_to_answer(example, 0).answer) == ("Where is Paris?", "France")


def test_cross_attention_can_start_as_a_copy_of_self_attention(bert_folder):
    bert = BertModel.from_pretrained(bert_folder).eval()
    copied = bart_from_bert(bert, 2, 2, 3, 0, cross_attention_init="self-attention")
    fresh = bart_from_bert(bert, 2, 2, 3, 0)
    for layer, index in zip(copied.model.decoder.layers, evenly_spaced_layers(2, 2), strict=True):
        attention = bert.encoder.layer[index].attention
        assert torch.equal(layer.encoder_attn.k_proj.weight, attention.self.key.weight)
        assert torch.equal(layer.encoder_attn.out_proj.bias, attention.output.dense.bias)
        assert torch.equal(layer.encoder_attn_layer_norm.weight, attention.output.LayerNorm.weight)
    assert not torch.equal(fresh.model.decoder.layers[0].encoder_attn.k_proj.weight,
                           bert.encoder.layer[0].attention.self.key.weight)
    with pytest.raises(ValueError, match="cross_attention_init"):
        from quals.recipe.warm_start import warm_start

        warm_start(str(bert_folder), "bart", None, cross_attention_init="zeros")


def test_warm_start_options_on_a_seq2seq_base_are_refused(trained_qagen_path, tmp_path):
    config = TrainQAGenConfig(train=[], base=trained_qagen_path, out=str(tmp_path),
                              cross_attention_init="self-attention")
    with pytest.raises(ValueError, match="already a seq2seq model"):
        load_model_and_tokenizer(config, get_preset("paper"))


def test_bart_from_bert_encoder_is_exactly_bert(bert_folder):
    bert = BertModel.from_pretrained(bert_folder).eval()
    bart = bart_from_bert(bert, decoder_layers=1, decoder_start_id=2, eos_id=3, pad_id=0).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        got = bart.model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got[:, :5], expected[:, :5], atol=1e-5, rtol=1e-4)
    assert bart.lm_head.weight.data_ptr() == bart.model.shared.weight.data_ptr()  # one embedding matrix
    assert evenly_spaced_layers(6, 3) == [0, 2, 5] and evenly_spaced_layers(2, 1) == [1]


def test_separator_is_added_so_generations_parse_back(bert_folder, tmp_path):
    fmt = get_preset("paper")
    assert not _round_trips(AutoTokenizer.from_pretrained(bert_folder), "<sep>")  # "<", "sep", ">" pieces
    config = TrainQAGenConfig(train=[], base=str(bert_folder), out=str(tmp_path), architecture="bart")
    model, tokenizer = load_model_and_tokenizer(config, fmt)
    assert _round_trips(tokenizer, "<sep>")
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    qagen = build_qagen(model, tokenizer, fmt)
    target = qagen.target("who visited paris ?", "alice")
    assert target.ids[0] != tokenizer.cls_token_id and target.ids[-1] == tokenizer.sep_token_id == qagen.eos_id
    assert qagen.decoder_start_id == tokenizer.cls_token_id
    assert qagen.decode_pairs(target.ids)[1] == [("who visited paris?", "alice")]  # BERT decoding joins "?"


def test_collator_shares_each_passage_among_its_targets():
    batch = PassageGroupCollator(pad_id=0)([{"input_ids": [5, 6, 7], "labels": [[1, 2], [3]]},
                                            {"input_ids": [8], "labels": [[4, 4, 4]]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, -100], [3, -100, -100], [4, 4, 4]]
    assert batch["encoder_index"].tolist() == [0, 0, 1]
    assert is_cross_attention("model.decoder.layers.0.encoder_attn.q_proj.weight")
    assert not is_cross_attention("model.decoder.layers.0.self_attn.q_proj.weight")


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["bart", "encoder-decoder"])
def test_training_writes_a_folder_the_scorer_loads_and_resume_continues(bert_folder, tmp_path, architecture):
    world = SyntheticWorld(1)
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps(_squad(world)))
    out = tmp_path / "qagen"
    common = {"train": [str(squad)], "base": str(bert_folder), "out": str(out), "architecture": architecture,
              "heldout_articles": 1, "cloze_per_passage": 1, "batch_size": 2, "save_steps": 2, "eval_steps": 2,
              "logging_steps": 1, "warmup_steps": 0, "lr": 1e-3, "max_source_tokens": 64, "num_beam_groups": 3,
              "max_new_tokens": 8, "min_new_tokens": 2, "cross_attention_lr_scale": 2.0, "use_cpu": True}
    train_qagen(TrainQAGenConfig(max_steps=2, **common))
    split = json.loads((out / "split.json").read_text())
    assert len(split["heldout_articles"]) == 1 and split["seed"] == 0

    scores = QualsScorer(model=str(out), device="cpu", show_progress=False).score(
        ["alice visited paris on monday ."], ["alice visited paris on monday . crowds gathered in the square ."])
    assert scores[0].num_generated == 3, scores[0]
    assert scores[0].quals is not None or scores[0].error == "no QA pair survived filtering"

    # resume asking for a coarser logging interval: a fresh run would log steps [2, 4] only; a resumed one restores
    # checkpoint-2's state (its history, steps 1-2, and its logging interval, 1) and continues with steps 3-4
    train_qagen(TrainQAGenConfig(max_steps=4, resume=True, **{**common, "logging_steps": 2}))
    history = json.loads((out / "training_log.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
