"""Shared fixtures: everything offline, tiny models built or trained locally (never downloaded)."""

import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from quals.engine.model_folders import save_qagen
from quals.testing import RANDOM_FORMAT, tiny_bart, tiny_gpt2, tiny_qagen, tiny_t5, word_tokenizer


torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def trained_qagen_path():
    """A tiny QAGen trained on the synthetic world (cached on disk across runs)."""
    return str(tiny_qagen())


@pytest.fixture(scope="session")
def random_models(tmp_path_factory):
    """Randomly initialised tiny BART, T5 and GPT-2 QAGen folders sharing one word-level tokenizer."""
    tokenizer = word_tokenizer()
    root = tmp_path_factory.mktemp("random-models")
    builders = {"bart": tiny_bart, "t5": tiny_t5, "gpt2": tiny_gpt2}
    return {name: str(save_qagen(build(len(tokenizer), seed=1), tokenizer, root / name, RANDOM_FORMAT))
            for name, build in builders.items()}
