"""The runnable examples in the package's docstrings (``>>>`` lines) run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import quals
import trainer_ext


def _modules_with_examples() -> list[str]:
    names = []
    for package in (quals, trainer_ext):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith(".__main__"):  # importing it runs the CLI
                continue
            tests = doctest.DocTestFinder().find(importlib.import_module(info.name))
            if any(not example.options.get(doctest.SKIP) for test in tests for example in test.examples):
                names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_examples_are_found():
    assert {"quals.recipe.data", "quals.recipe.warm_start", "quals.engine.results", "quals.engine.presets",
            "quals.engine.qagen.prompt", "quals.flags"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(name), optionflags=flags)
    assert result.attempted > 0 and result.failed == 0, f"{result.failed} of {result.attempted} failed in {name}"
