"""quals.testing: the tiny QAGens' cache honours QUALS_TINY_SEED (the suite can run on another training)."""

from quals.testing import tiny_qagen, tiny_qagen_path


def test_the_tiny_qagen_seed_comes_from_the_environment_unless_given(tmp_path, monkeypatch):
    for seed in (0, 1, 7):  # folders tiny_qagen takes as already trained (nothing is trained here)
        tiny_qagen_path(tmp_path, seed).mkdir()
        (tiny_qagen_path(tmp_path, seed) / "quals_format.json").write_text("{}")
    monkeypatch.delenv("QUALS_TINY_SEED", raising=False)
    assert tiny_qagen(tmp_path) == tiny_qagen_path(tmp_path, 0)
    monkeypatch.setenv("QUALS_TINY_SEED", "7")
    assert tiny_qagen(tmp_path) == tiny_qagen_path(tmp_path, 7)
    assert tiny_qagen(tmp_path, seed=1) == tiny_qagen_path(tmp_path, 1)  # an explicit seed wins
