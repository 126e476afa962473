"""quals.testing: the tiny QAGens' cache honours QUALS_TINY_SEED (the suite can run on another training)."""

import torch
import transformers

from quals.testing import tiny_qagen


def test_the_tiny_qagen_seed_comes_from_the_environment_unless_given(tmp_path, monkeypatch):
    def cached(seed: int) -> str:  # a folder tiny_qagen takes as already trained (nothing is trained here)
        path = tmp_path / f"quals-tiny-qagen-v3-seed{seed}-tf{transformers.__version__}-torch{torch.__version__}"
        path.mkdir(exist_ok=True)
        (path / "quals_format.json").write_text("{}")
        return str(path)

    expected = {seed: cached(seed) for seed in (0, 1, 7)}
    monkeypatch.delenv("QUALS_TINY_SEED", raising=False)
    assert str(tiny_qagen(tmp_path)) == expected[0]
    monkeypatch.setenv("QUALS_TINY_SEED", "7")
    assert str(tiny_qagen(tmp_path)) == expected[7]
    assert str(tiny_qagen(tmp_path, seed=1)) == expected[1]  # an explicit seed wins
