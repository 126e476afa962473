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

import json
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

from quals.engine.formats import QAFormat
from quals.engine.model_folders import save_qagen
from quals.engine.sentence_pairs import SENTENCE_QUESTION


SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<sep>"]  # ids 0..4

PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar"]
CITIES = ["paris", "rome", "oslo", "lima", "cairo", "delhi", "tokyo", "quito", "lagos", "seoul", "dublin", "prague"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
FILLER = ["the weather was warm .", "crowds gathered in the square .", "officials made a short statement .",
          "the trip had been planned for months .", "local media covered the event ."]
QUESTION_WORDS = ["who", "visited", "where", "did", "go", "when", "visit", "on", "?", "."]
QUESTION_WORDS += SENTENCE_QUESTION.replace("?", " ").split()  # the fixed question of a sentence pair
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

    def training_pairs(self, fact: Fact) -> list[tuple[str, str]]:
        """What a tiny QAGen learns to write for ``fact``: its QA pairs and its sentence pair (``SENTENCE_QUESTION``
        answered by the sentence, as the scorer asks it when ``QualsConfig.sentence_pairs`` is on)."""
        return self.qa_pairs(fact) + [(SENTENCE_QUESTION, self.sentence(fact))]


RANDOM_FORMAT = QAFormat(name="random-tiny", model="", max_source_tokens=64, max_new_tokens=10, min_new_tokens=2,
                         num_beam_groups=4)

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
            question, answer = world.rng.choice(world.training_pairs(fact))
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


def tiny_qagen(cache_dir: str | Path | None = None, seed: int | None = None, kind: str = "seq2seq") -> Path:
    """A tiny QAGen trained on the synthetic world, trained once and cached on disk (~15 s the first time).

    For runnable examples, demos and tests with no network: it writes "who visited paris ? <sep> alice"
    style pairs, so faithful synthetic summaries score higher than ones with a swapped entity. ``kind="causal"``:
    a tiny Llama with a ChatML chat template (``train_tiny_causal_qagen``).

    ``seed`` defaults to the environment variable ``QUALS_TINY_SEED`` (else 0). The same seed trains the same
    weights on one machine, but another CPU's float rounding trains slightly different ones, so a test must hold
    for any QAGen that learned the world: ``QUALS_TINY_SEED=1 python -m pytest`` runs the suite on another.
    """
    import os

    seed = int(os.environ.get("QUALS_TINY_SEED", "0")) if seed is None else seed
    path = tiny_qagen_path(cache_dir, seed, kind)
    if not (path / "quals_format.json").is_file():
        tmp = path.with_name(path.name + f".tmp{random.randrange(1 << 30)}")
        (train_tiny_causal_qagen if kind == "causal" else train_tiny_qagen)(tmp, seed=seed)
        if path.exists():  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(path)
    return path


def tiny_qagen_path(cache_dir: str | Path | None, seed: int, kind: str = "seq2seq") -> Path:
    """Where ``tiny_qagen`` caches the tiny QAGen of ``seed`` and ``kind`` (named by the versions that trained it)."""
    import tempfile

    import transformers

    version = {"seq2seq": "v3", "causal": "causal-v3"}[kind]
    tag = f"quals-tiny-qagen-{version}-seed{seed}-tf{transformers.__version__}-torch{torch.__version__}"
    return Path(cache_dir or tempfile.gettempdir()) / tag


# ---------------------------------------------------------------------------------------------- causal LMs
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2

CHAT_FORMAT = QAFormat(name="tiny-chat", model="", chat=True, question_prefix="question: ", qa_separator=" answer: ",
                       input_template="{passage}\nWrite a question and its answer.", stop_at_newline=True,
                       max_source_tokens=96, max_new_tokens=14, min_new_tokens=2, num_beam_groups=4)


def chat_tokenizer(vocab_size: int = 640) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained here on the synthetic world's words, with a ChatML chat template."""
    from tokenizers import decoders, trainers

    words = " ".join(WORDS + PEOPLE + CITIES + DAYS + [" " + w for w in WORDS + PEOPLE + CITIES + DAYS])
    corpus = [words] * 4 + ["question: answer: Write a question and its answer.\n"] * 8
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=CHAT_SPECIALS,
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        model_max_length=4096)
    tokenizer.chat_template = CHATML
    return tokenizer


def tiny_causal_lm(vocab_size: int, arch: str = "llama", d_model: int = 64, layers: int = 2, seed: int = 0):
    """A randomly initialised tiny Llama or Qwen2 (grouped-query attention, rotary positions)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    config_class, model_class = classes[arch]
    config = config_class(vocab_size=vocab_size, hidden_size=d_model, intermediate_size=2 * d_model,
                          num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                          tie_word_embeddings=False)
    return model_class(config)


def write_gguf(model, tokenizer, path: str | Path) -> Path:
    """Write a tiny Qwen2 model and its byte-level BPE tokenizer as an unquantized (F32) GGUF file."""
    import gguf
    import numpy as np

    config, path = model.config, Path(path)
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    special = set(tokenizer.all_special_tokens) | {t.content for t in tokenizer.added_tokens_decoder.values()}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([3 if token in special else 1 for token, _ in vocab])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_bos_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer.chat_template)
    names = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for name, tensor in model.state_dict().items():
        stem, kind = name.rsplit(".", 1)
        if stem.startswith("model.layers."):
            _, _, layer, rest = stem.split(".", 3)
            stem = f"blk.{layer}.{names[rest]}"
        else:
            stem = names[stem]
        writer.add_tensor(f"{stem}.{kind}", tensor.detach().float().numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def train_tiny_causal_qagen(path: str | Path, steps: int = 500, seed: int = 0, arch: str = "llama") -> Path:
    """Train a tiny chat-format causal QAGen on the synthetic world (prompts and targets built as the scorer
    builds them) and save it."""
    from quals.engine.qagen import build_qagen

    tokenizer = chat_tokenizer()
    model = tiny_causal_lm(len(tokenizer), arch, seed=seed)
    qagen = build_qagen(model, tokenizer, CHAT_FORMAT)
    world = SyntheticWorld(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        rows, labels = [], []
        for _ in range(32):
            fact = world.fact()
            prompt = qagen.training_input(world.document(fact, world.rng.randint(0, 2)), 96)
            target = qagen.target(*world.rng.choice(world.training_pairs(fact))).ids
            rows.append(torch.tensor(prompt + target[:-1]))
            labels.append(torch.tensor([-100] * (len(prompt) - 1) + target))
        width = max(len(r) for r in rows)
        input_ids = torch.stack([torch.cat([r, r.new_zeros(width - len(r))]) for r in rows])  # [B, L] right padded
        label_ids = torch.stack([torch.cat([r, r.new_full((width - len(r),), -100)]) for r in labels])
        logits = model(input_ids=input_ids).logits  # [B, L, V]; padding sits after every real token
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), label_ids.flatten(), ignore_index=-100)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return save_qagen(model, tokenizer, path, CHAT_FORMAT)
