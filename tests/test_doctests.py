"""The runnable examples in the package's docstrings (``>>>`` lines) run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import quals
import trainer_ext


def _modules() -> list[str]:
    names = []
    for package in (quals, trainer_ext):
        names += [info.name for info in pkgutil.iter_modules(package.__path__, package.__name__ + ".")
                  if not info.name.endswith(".__main__")]  # importing __main__ runs the CLI
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
