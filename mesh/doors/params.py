"""Reading an OpenAI-style request's parameters with errors that name the parameter and say
what to send instead. A JSON body and a multipart form read alike."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lanai.services.core.errors import InvalidInput, quote


class BadParam(InvalidInput):
    """A parameter the request got wrong; `param` is its name (the OpenAI error's `param`)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class Params:
    """Typed getters over a request's fields. Unknown fields are ignored (tools send many);
    known ones with a wrong type or value raise BadParam."""

    def __init__(self, fields: Mapping[str, Any], *, form: bool = False) -> None:
        self._fields = fields
        self._form = form  # a multipart form: every value arrives as text

    def has(self, name: str) -> bool:
        return self._fields.get(name) is not None

    def raw(self, name: str) -> Any:
        return self._fields.get(name)

    def text(self, name: str, default: str = "", *, required: bool = False, choices: tuple[str, ...] = ()) -> str:
        value = self._fields.get(name)
        if value is None:
            if required:
                raise BadParam(name, f"'{name}' is required")
            return default
        if not isinstance(value, str):
            raise BadParam(name, f"'{name}' must be a string, not {_kind(value)}")
        if choices and value not in choices:
            raise BadParam(name, f"'{name}' is {quote(value)}; use one of: {', '.join(choices)}")
        return value

    def number(self, name: str, lo: float, hi: float) -> float | None:
        value = self._fields.get(name)
        if value is None:
            return None
        if self._form and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise BadParam(name, f"'{name}' must be a number, not {quote(value)}") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise BadParam(name, f"'{name}' must be a finite number, not {quote(value)}")
        if not lo <= value <= hi:
            raise BadParam(name, f"'{name}' is {value:g}; it must be between {lo:g} and {hi:g}")
        return float(value)

    def integer(self, name: str, lo: int, hi: int) -> int | None:
        value = self._fields.get(name)
        if value is None:
            return None
        if self._form and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadParam(name, f"'{name}' must be an integer, not {quote(value)}")
        if not lo <= value <= hi:
            raise BadParam(name, f"'{name}' is {value}; it must be between {lo} and {hi}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._fields.get(name)
        if value is None:
            return default
        if self._form and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise BadParam(name, f"'{name}' must be true or false, not {quote(value)}")
        return value

    def strings(self, name: str, *, most: int) -> list[str]:
        """A string or a list of strings (OpenAI's `stop`, `input`)."""
        value = self._fields.get(name)
        if value is None:
            return []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise BadParam(name, f"'{name}' must be a string or a list of strings (token arrays are not "
                                 "supported: send text)")
        if len(items) > most:
            raise BadParam(name, f"'{name}' has {len(items)} items; send at most {most}")
        return items

    def mapping(self, name: str) -> Params:
        value = self._fields.get(name)
        if value is None:
            return Params({})
        if not isinstance(value, dict):
            raise BadParam(name, f"'{name}' must be an object, not {_kind(value)}")
        return Params(value)

    def only(self, name: str, *allowed: Any, why: str) -> None:
        """A parameter lanai accepts only at these values (what a tool sends by default)."""
        value = self._fields.get(name)
        if value is not None and value not in allowed:
            raise BadParam(name, f"'{name}'={quote(value)} is not supported: {why}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value),
                                                                                        type(value).__name__)
