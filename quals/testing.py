"""Tiny offline models and a synthetic world, for tests, benchmarks and demos that cannot download weights.

- ``word_tokenizer``: a word-level fast tokenizer built in milliseconds with the ``tokenizers`` library;
- ``tiny_bart`` / ``tiny_t5`` / ``tiny_gpt2``: randomly initialised models of a few hundred thousand weights;
- ``SyntheticWorld``: templated news facts (who visited where, when) with their QA pairs;
- ``train_tiny_qagen``: trains a tiny QAGen on that world in seconds, so its QUALS scores mean something.

>>> world = SyntheticWorld(seed=0)
>>> fact = world.fact()
>>> world.sentence(fact).endswith(" .")
True
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from quals.bundled import save_format
from quals.formats import QAFormat


SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<sep>"]  # ids 0..4

PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar"]
CITIES = ["paris", "rome", "oslo", "lima", "cairo", "delhi", "tokyo", "quito", "lagos", "seoul", "dublin", "prague"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
FILLER = ["the weather was warm .", "crowds gathered in the square .", "officials made a short statement .",
          "the trip had been planned for months .", "local media covered the event ."]
QUESTION_WORDS = ["who", "visited", "where", "did", "go", "when", "visit", "on", "?", "."]
WORDS = sorted({word for sentence in FILLER for word in sentence.split()} | set(QUESTION_WORDS))


def word_tokenizer(extra_words: list[str] | None = None, bos: bool = False) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the synthetic world's words; ``<sep>`` is a special token.

    ``bos=True`` makes it add ``<s>`` before every sequence, as BART's tokenizer does.
    """
    words = sorted(set(WORDS + PEOPLE + CITIES + DAYS + (extra_words or [])))
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    template = "<s> $A </s>" if bos else "$A </s>"
    backend.post_processor = processors.TemplateProcessing(single=template, special_tokens=[("<s>", 1), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", extra_special_tokens=["<sep>"], model_max_length=512)


def tiny_bart(vocab_size: int, d_model: int = 64, layers: int = 2, max_positions: int = 512, seed: int = 0):
    torch.manual_seed(seed)
    config = BartConfig(vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=2 * d_model,
                        decoder_ffn_dim=2 * d_model, max_position_embeddings=max_positions, pad_token_id=0,
                        bos_token_id=1, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None,
                        dropout=0.0, attention_dropout=0.0)
    return BartForConditionalGeneration(config)


def tiny_t5(vocab_size: int, d_model: int = 64, layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=16, d_ff=2 * d_model, num_layers=layers,
                      num_heads=4, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0, dropout_rate=0.0)
    return T5ForConditionalGeneration(config)


def tiny_gpt2(vocab_size: int, d_model: int = 64, layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_embd=d_model, n_layer=layers, n_head=4, n_positions=512,
                        bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return GPT2LMHeadModel(config)


def save_qagen(model, tokenizer, path: str | Path, fmt: QAFormat) -> Path:
    """Save model, tokenizer and format so ``QualsScorer(model=path)`` loads it with no preset."""
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    save_format(fmt.replace(model=str(path)), path)
    return path


@dataclass(frozen=True)
class Fact:
    person: str
    city: str
    day: str


class SyntheticWorld:
    """Templated facts "PERSON visited CITY on DAY ." with filler sentences and their QA pairs."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def fact(self) -> Fact:
        return Fact(self.rng.choice(PEOPLE), self.rng.choice(CITIES), self.rng.choice(DAYS))

    def sentence(self, fact: Fact) -> str:
        return f"{fact.person} visited {fact.city} on {fact.day} ."

    def document(self, fact: Fact, filler: int = 2) -> str:
        sentences = [self.sentence(fact)] + self.rng.sample(FILLER, filler)
        return " ".join(sentences)

    def corrupt(self, fact: Fact, field: str = "person") -> Fact:
        """The same fact with one entity swapped for another of its kind (a hallucination)."""
        pool = {"person": PEOPLE, "city": CITIES, "day": DAYS}[field]
        other = self.rng.choice([x for x in pool if x != getattr(fact, field)])
        return Fact(**{**fact.__dict__, field: other})

    @staticmethod
    def qa_pairs(fact: Fact) -> list[tuple[str, str]]:
        return [(f"who visited {fact.city} ?", fact.person), (f"where did {fact.person} go ?", fact.city),
                (f"when did {fact.person} visit {fact.city} ?", fact.day)]


TINY_FORMAT = QAFormat(name="tiny-synthetic", model="", max_source_tokens=64, max_new_tokens=12, min_new_tokens=3,
                       num_beam_groups=6, diversity_penalty=0.5)


def train_tiny_qagen(path: str | Path, steps: int = 300, seed: int = 0, arch: str = "bart") -> Path:
    """Train a tiny QAGen on the synthetic world (passages and one-sentence summaries -> QA pairs) and save it."""
    tokenizer = word_tokenizer()
    model = {"bart": tiny_bart, "t5": tiny_t5}[arch](len(tokenizer), seed=seed)
    world = SyntheticWorld(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        inputs, targets = [], []
        for _ in range(32):
            fact = world.fact()
            passage = world.document(fact, world.rng.randint(0, 2))
            question, answer = world.rng.choice(world.qa_pairs(fact))
            inputs.append(passage)
            targets.append(TINY_FORMAT.render(question, answer))
        batch = tokenizer(inputs, text_target=targets, padding=True, return_tensors="pt")
        batch["labels"][batch["labels"] == tokenizer.pad_token_id] = -100
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return save_qagen(model, tokenizer, path, TINY_FORMAT)


def tiny_qagen(cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """A tiny QAGen trained on the synthetic world, trained once and cached on disk (~15 s the first time).

    For runnable examples, demos and tests with no network: it writes "who visited paris ? <sep> alice"
    style pairs, so faithful synthetic summaries score higher than ones with a swapped entity.
    """
    import tempfile

    import transformers

    tag = f"quals-tiny-qagen-v1-seed{seed}-tf{transformers.__version__}-torch{torch.__version__}"
    path = Path(cache_dir or tempfile.gettempdir()) / tag
    if not (path / "quals_format.json").is_file():
        tmp = path.with_name(path.name + f".tmp{random.randrange(1 << 30)}")
        train_tiny_qagen(tmp, seed=seed)
        if path.exists():  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(path)
    return path
