"""Config fields that are also `lanai node` flags. A service's config dataclass declares each
setting once, with its default, flag and help; the node's command line is built from it, so
`lanai node` with no flags and `NodeConfig()` build the same node."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
FLAG = "lanai.flag"


def option(default: Any = dataclasses.MISSING, *, flag: str, help: str,  # noqa: A002 - argparse's word
           factory: Callable[[], Any] | None = None, choices: Sequence[str] | None = None) -> Any:
    """A dataclass field shown as `flag` on the node's command line. `factory` computes the
    default when it depends on the machine or the environment (core count, an env variable).
    Tuples are comma-separated on the command line."""
    metadata = {FLAG: (flag, help, tuple(choices) if choices else None)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def cores() -> int:
    return os.cpu_count() or 1


def half_the_cores() -> int:
    """Measured on 2 cores (bench/speech.py): 2 slots x 1 thread served 1.9x the requests of 1 x 2."""
    return min(cores(), max(2, cores() // 2))


def names(text: str) -> tuple[str, ...]:
    """"a, b,,c" -> ("a", "b", "c")."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, config: type[Any], prefix: str) -> None:
    """Add a flag for every option of `config`; values land in `<prefix>.<field>` of the namespace."""
    for field, (flag, text, choices), default in _options(config):
        dest = f"{prefix}.{field.name}"
        shown = ",".join(default) if isinstance(default, tuple) else default
        text = text if "(default" in text else f"{text} (default {shown if shown != '' else 'none'})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif isinstance(default, tuple):
            parser.add_argument(flag, dest=dest, type=names, default=default, metavar="NAME,...", help=text)
        else:
            metavar = None if choices else "N" if isinstance(default, int) else "X" if isinstance(default, float) \
                else field.name.upper()
            parser.add_argument(flag, dest=dest, type=type(default), default=default, choices=choices,
                                metavar=metavar, help=text)


def from_args(config: type[T], args: argparse.Namespace, prefix: str) -> T:
    """The config the flags added by `add_flags` describe."""
    values = {field.name: getattr(args, f"{prefix}.{field.name}") for field, _, _ in _options(config)}
    return config(**values)


def _options(config: type[Any]) -> list[tuple[dataclasses.Field[Any], tuple[str, str, tuple[str, ...] | None], Any]]:
    found = []
    for field in dataclasses.fields(config):
        if FLAG in field.metadata:
            factory = field.default_factory
            default = factory() if factory is not dataclasses.MISSING else field.default
            found.append((field, field.metadata[FLAG], default))
    return found
