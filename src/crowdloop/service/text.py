"""Text the database stores: no NUL character, which PostgreSQL refuses in any text column, and no
more characters than its column holds. Every name, id, label, hint and payload the service writes
or looks up passes here first, so bad input gets an error that names it, not a driver's failure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crowdloop.errors import ConfigError, InputError

NUL = "\x00"
NAME_LENGTH = 200  # projects, annotators, model names and versions
EXTERNAL_ID_LENGTH = 500  # item ids
LABEL_LENGTH = 1000  # a label, or a taxonomy node's full path
HINT_LENGTH = 5000  # gold hints


def text_problem(value: Any, max_length: int, *, blank: bool = False) -> str | None:
    """What keeps ``value`` from being stored as text of at most ``max_length`` characters (None:
    nothing). ``blank``: an empty or all-space text is allowed."""
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}"
    if not blank and not value.strip():
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters, got {len(value)}"
    if NUL in value:
        return "contains a NUL character"
    return None


def nul_at(value: Any, where: str) -> str | None:
    """Where a JSON value (object keys and strings at any depth) has a NUL character, e.g.
    ``data.tags[2]`` or ``a key of data``; None if nowhere."""
    stack = [(value, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                return path
        elif isinstance(node, Mapping):
            for key, child in node.items():
                if isinstance(key, str) and NUL in key:
                    return f"a key of {path}"
                stack.append((child, f"{path}.{key}"))
        elif isinstance(node, list | tuple):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(node))
    return None


def checked_name(value: Any, what: str) -> str:
    """``value`` stripped, if it can be the name of a ``what`` (``ConfigError`` otherwise)."""
    problem = text_problem(value, NAME_LENGTH)
    if problem:
        raise ConfigError(f"{what} name {problem}: {value!r}")
    return value.strip()


def check_text(
    value: Any, max_length: int, *, source: str, row: int, field: str, unit: str = "item", blank: bool = False
) -> None:
    """``InputError`` naming the row and field when ``value`` cannot be stored (``text_problem``)."""
    problem = text_problem(value, max_length, blank=blank)
    if problem:
        raise InputError(f"{field.replace('_', ' ')} {problem}", source=source, rows=[row], field=field, unit=unit)


def check_json(value: Any, *, source: str, row: int, field: str, unit: str = "item") -> None:
    """``InputError`` naming the row and the place in a JSON value that has a NUL character."""
    where = nul_at(value, field)
    if where:
        raise InputError(f"{where} contains a NUL character", source=source, rows=[row], field=field, unit=unit)
