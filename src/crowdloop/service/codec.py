"""How a project's label space, policy and skill rules are stored (JSON columns) and read back."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from crowdloop.consensus import ConsensusPolicy, Prices, SkillRules
from crowdloop.errors import ConfigError
from crowdloop.labels import LabelSpace, Taxonomy


def labels_to_json(labels: LabelSpace) -> dict[str, Any]:
    """A flat space: its labels in code order. A taxonomy: each node's path segments (names of
    the node and its ancestors) and the optional Google ids, so codes survive the round trip."""
    if isinstance(labels, Taxonomy):
        names = [str(name) for name in labels.labels]
        segments = [
            name if labels.parent[code] < 0 else name[len(names[labels.parent[code]]) + 3 :]
            for code, name in enumerate(names)
        ]
        paths = [[segments[c] for c in labels.path_codes[code] if c >= 0] for code in range(len(names))]
        return {"kind": "taxonomy", "paths": paths, "ids": labels.ids}
    values = labels.labels
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        raise ConfigError("project labels must be strings or integers")
    return {"kind": "labels", "labels": values}


def labels_from_json(data: dict[str, Any]) -> LabelSpace:
    if data["kind"] == "taxonomy":
        return Taxonomy([tuple(p) for p in data["paths"]], ids=data.get("ids"))
    return LabelSpace(data["labels"])


def policy_to_json(policy: ConsensusPolicy) -> dict[str, Any]:
    return asdict(policy)


def policy_from_json(data: dict[str, Any]) -> ConsensusPolicy:
    fields = dict(data)
    return ConsensusPolicy(**{**fields, "prices": Prices(**fields.get("prices", {}))})


def rules_to_json(rules: SkillRules) -> dict[str, Any]:
    return asdict(rules)


def rules_from_json(data: dict[str, Any]) -> SkillRules:
    return SkillRules(**data)
