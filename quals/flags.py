"""Command-line flags from a settings dataclass: one ``--flag`` per field, typed and documented by the field.

Used by ``quals score`` (``QualsConfig``) and ``quals train-qagen`` (``TrainQAGenConfig``), so both read their
flags the same way:

- the type comes from the annotation (``int | None`` -> ``int``; ``Literal[...]`` -> ``choices``; ``bool`` ->
  ``--flag/--no-flag``; ``list[str]`` -> repeatable, each use adding values);
- the help text is the field's ``metadata["help"]``;
- a field with no default is a required flag; a flag not given leaves the field's default.

>>> import argparse
>>> from dataclasses import dataclass, field
>>> @dataclass
... class Settings:
...     name: str = field(metadata={"help": "required"})
...     size: int | None = field(default=None, metadata={"help": "optional"})
>>> parser = argparse.ArgumentParser()
>>> add_dataclass_arguments(parser, Settings)
>>> dataclass_from_args(Settings, parser.parse_args(["--name", "x", "--size", "3"]))
Settings(name='x', size=3)
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, fields


def add_dataclass_arguments(parser, cls, exclude: tuple[str, ...] = (), extra_help: dict[str, str] | None = None
                            ) -> None:
    """Add one flag per field of ``cls`` to ``parser`` (or an argument group); ``extra_help`` adds to a help text."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in exclude:
            continue
        kind = hints[f.name]
        required = f.default is MISSING and f.default_factory is MISSING
        help_text = " ".join(filter(None, [f.metadata.get("help", ""), (extra_help or {}).get(f.name)]))
        options = {"help": help_text, "default": None, "dest": f.name}
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # "int | None" -> int
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if typing.get_origin(kind) is typing.Literal:
            options["choices"] = typing.get_args(kind)
        elif kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is list:
            options.update(action="extend", nargs="+", type=typing.get_args(kind)[0])
        else:
            options["type"] = kind
        parser.add_argument("--" + f.name.replace("_", "-"), required=required, **options)


def dataclass_kwargs(cls, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` whose flags were given."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}


def dataclass_from_args(cls, args: argparse.Namespace):
    """``cls`` built from the flags given (the defaults for the others)."""
    return cls(**dataclass_kwargs(cls, args))
