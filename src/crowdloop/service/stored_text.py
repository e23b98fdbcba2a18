"""Text the database stores and the API sends: no NUL character, which PostgreSQL refuses in any text
column; no lone surrogate (``"\\udfff"``, which Python's JSON reader accepts but no UTF-8 response
and no PostgreSQL JSON column holds); no more characters than its column holds; and JSON payloads
nested at most ``MAX_JSON_DEPTH`` deep (the response serializer stops at 255 levels). Every name,
id, label, hint and payload the service writes or looks up passes here first, so bad input gets an
error that names it, not a driver's failure at import or a response that cannot be built later."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crowdloop.errors import ConfigError, InputError

NUL = "\x00"
NAME_LENGTH = 200  # projects, annotators, model names and versions
EXTERNAL_ID_LENGTH = 500  # item ids
LABEL_LENGTH = 1000  # a label, or a taxonomy node's full path
HINT_LENGTH = 5000  # gold hints
MAX_JSON_DEPTH = 64  # objects and arrays in a payload, the payload itself included


def text_problem(value: Any, max_length: int, *, blank: bool = False) -> str | None:
    """What keeps ``value`` from being stored as text of at most ``max_length`` characters (None:
    nothing). ``blank``: an empty or all-space text is allowed."""
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}"
    if not blank and not value.strip():
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters, got {len(value)}"
    return _character_problem(value)


def _character_problem(value: str) -> str | None:
    """What character of ``value`` no database or UTF-8 response holds (None: none)."""
    if NUL in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"contains a lone surrogate at character {exc.start} (not Unicode text)"
    return None


def json_problem(value: Any, where: str, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON value cannot be stored and sent, naming the place: a NUL character or a lone
    surrogate in a key or a string (``data.tags[2] contains a NUL character``), or objects and
    arrays nested deeper than ``max_depth``; None if nothing. Iterative, whatever the depth; the
    place is spelled out only for a problem (each node keeps a link to its parent's)."""
    stack: list[tuple[Any, int, tuple | None]] = [(value, 1, None)]
    while stack:
        node, depth, trail = stack.pop()
        if isinstance(node, str):
            problem = _character_problem(node)
            if problem:
                return f"{_place(where, trail)} {problem}"
        elif isinstance(node, dict | list | tuple | Mapping):
            if depth > max_depth:
                return f"{_place(where, trail)} is nested more than {max_depth} levels deep"
            if isinstance(node, list | tuple):
                stack.extend((child, depth + 1, (trail, i, True)) for i, child in enumerate(node))
                continue
            for key, child in node.items():
                problem = _character_problem(key) if isinstance(key, str) else None
                if problem:
                    return f"a key of {_place(where, trail)} {problem}"
                stack.append((child, depth + 1, (trail, key, False)))
    return None


def _place(where: str, trail: tuple | None) -> str:
    """``where`` followed by the keys (``.key``) and indices (``[i]``) of a ``json_problem`` trail."""
    steps = []
    while trail is not None:
        trail, step, index = trail
        steps.append(f"[{step}]" if index else f".{step}")
    return where + "".join(reversed(steps))


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
    """``InputError`` naming the row, the field and the place in a JSON value that cannot be stored
    and sent (``json_problem``)."""
    problem = json_problem(value, field)
    if problem:
        raise InputError(problem, source=source, rows=[row], field=field, unit=unit)
