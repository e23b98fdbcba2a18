"""How a project's label space, policy and skill rules are stored (JSON columns) and read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from typing import Any, TypeVar

from crowdloop.consensus import ConsensusPolicy, Prices, SkillRules
from crowdloop.errors import ConfigError
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service.stored_text import LABEL_LENGTH, NAME_LENGTH, text_problem

T = TypeVar("T")


def labels_to_json(labels: LabelSpace) -> dict[str, Any]:
    """A flat space: its labels in code order. A taxonomy: each node's path segments (names of
    the node and its ancestors) and the optional Google ids, so codes survive the round trip.
    ``ConfigError`` names the first label (or id) the database cannot store."""
    check_labels(labels)
    if isinstance(labels, Taxonomy):
        names = [str(name) for name in labels.labels]
        segments = [
            name if labels.parent[code] < 0 else name[len(names[labels.parent[code]]) + 3 :]
            for code, name in enumerate(names)
        ]
        paths = [[segments[c] for c in labels.path_codes[code] if c >= 0] for code in range(len(names))]
        return {"kind": "taxonomy", "paths": paths, "ids": labels.ids}
    return {"kind": "labels", "labels": labels.labels}


def check_labels(labels: LabelSpace) -> None:
    """Every label a text of at most ``LABEL_LENGTH`` characters without NUL (a taxonomy's path
    included) or an integer; a taxonomy's ids texts too."""
    for number, value in enumerate(labels.labels, start=1):
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ConfigError(f"project labels must be strings or integers, label {number} is {value!r}")
        problem = None if isinstance(value, int) else text_problem(value, LABEL_LENGTH)
        if problem:
            raise ConfigError(f"label {number} {problem}: {value!r}")
    for number, value in enumerate(getattr(labels, "ids", None) or [], start=1):
        problem = text_problem(value, NAME_LENGTH)
        if problem:
            raise ConfigError(f"taxonomy id {number} {problem}: {value!r}")


def labels_from_json(data: dict[str, Any]) -> LabelSpace:
    if data["kind"] == "taxonomy":
        return Taxonomy([tuple(p) for p in data["paths"]], ids=data.get("ids"))
    return LabelSpace(data["labels"])


def policy_to_json(policy: ConsensusPolicy) -> dict[str, Any]:
    return asdict(policy)


def policy_from_json(data: dict[str, Any]) -> ConsensusPolicy:
    """The stored policy; a setting it lacks (stored before the setting was) takes its default."""
    return ConsensusPolicy(**{**data, "prices": Prices(**data.get("prices", {}))})


def rules_to_json(rules: SkillRules) -> dict[str, Any]:
    return asdict(rules)


def rules_from_json(data: dict[str, Any]) -> SkillRules:
    return SkillRules(**data)


def changed(settings: T, changes: Mapping[str, Any], what: str) -> T:
    """``settings`` (a ``ConsensusPolicy``, ``Prices`` or ``SkillRules``) with some fields changed;
    a policy's ``prices`` may change in part too. ``ConfigError`` names a field it does not have."""
    if not isinstance(changes, Mapping):
        raise ConfigError(f"{what} changes must be a mapping of field -> value, got {type(changes).__name__}")
    known = {f.name for f in fields(settings)}
    unknown = sorted(str(k) for k in changes if k not in known)
    if unknown:
        raise ConfigError(f"{what} has no field {unknown[0]!r} (fields: {', '.join(sorted(known))})")
    values = dict(changes)
    if isinstance(values.get("prices"), Mapping):
        values["prices"] = changed(settings.prices, values["prices"], "prices")
    return replace(settings, **values)
