"""Presets by name: the built-in formats (``quals.engine.formats.PRESETS``) and the QAGen folders shipped inside
the package (``quals/models/<name>/``, ``quals.engine.model_folders.bundled_presets``).

>>> get_preset("paper").qa_separator
' <sep> '
>>> get_preset("no-such-preset")
Traceback (most recent call last):
...
quals.engine.presets.UnknownPresetError: Unknown QUALS preset 'no-such-preset'. Valid presets: ...
"""

from __future__ import annotations

from quals.engine.formats import PRESETS, QAFormat
from quals.engine.model_folders import bundled_presets


DEFAULT_PRESET = "lmqg-t5-base"


class UnknownPresetError(ValueError):
    """No preset of that name (the message lists the valid ones)."""


def all_presets() -> dict[str, QAFormat]:
    """Every preset by name: built-in, then bundled (a bundled folder may not reuse a built-in name)."""
    return {**bundled_presets(), **PRESETS}


def get_preset(name: str | QAFormat) -> QAFormat:
    """Look up a preset by name (``"default"``: ``DEFAULT_PRESET``; a ``QAFormat`` is returned unchanged)."""
    if isinstance(name, QAFormat):
        return name
    presets = all_presets()
    name = DEFAULT_PRESET if name == "default" else name
    if name not in presets:
        raise UnknownPresetError(f"Unknown QUALS preset {name!r}. Valid presets: {', '.join(sorted(presets))}")
    return presets[name]
