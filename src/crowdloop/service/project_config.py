"""A project's configuration as the service reads it, cached per process: its label space (which
never changes), its policy and skill rules (cached with the ``settings_version`` they were read at,
read again once it changes), label codes, and the decision of its last refit (``Decider``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.consensus.decider import Decider
from crowdloop.errors import UnknownLabelError
from crowdloop.labels import LabelSpace
from crowdloop.service import codec


class ProjectColumns(Protocol):
    """The columns of a project row the configuration is read from."""

    id: int
    settings_version: int
    labels: Any
    policy: Any
    rules: Any
    calibrator: Any
    skill_prior: float | None
    typical_skill: float | None
    skill_evidence: float | None
    sibling_share: float | None
    vague_share: float | None
    model_floor: float | None
    refit_at: datetime | None


class ProjectConfig:
    """The cached configuration of every project this process has seen (module docstring)."""

    def __init__(self) -> None:
        self._codes: dict[int, tuple[LabelSpace, dict]] = {}  # label -> code, the fast path of ``code``
        self._labels: dict[int, LabelSpace] = {}
        self._policies: dict[int, tuple[int, ConsensusPolicy]] = {}
        self._rules: dict[int, tuple[int, SkillRules]] = {}
        self._deciders: dict[tuple[int, Any, int], Decider] = {}

    def labels(self, project: ProjectColumns) -> LabelSpace:
        labels = self._labels.get(project.id)
        if labels is None:
            labels = self._labels[project.id] = codec.labels_from_json(project.labels)
        return labels

    def remember_labels(self, project_id: int, labels: LabelSpace) -> None:
        """A new project's label space, known without reading it back."""
        self._labels[project_id] = labels

    def code(self, labels: LabelSpace, label: Any, *, field: str = "label") -> int:
        """The code of an answer's label (``UnknownLabelError`` when it is not one)."""
        if isinstance(label, str | int) and not isinstance(label, bool):
            codes = self._codes.get(id(labels))
            if codes is None or codes[0] is not labels:
                codes = self._codes[id(labels)] = (labels, {value: code for code, value in enumerate(labels.labels)})
            code = codes[1].get(label)
            if code is not None:
                return code
        if label is None or isinstance(label, dict | list | bool):
            raise UnknownLabelError(f"label {label!r} is not in the label space of {len(labels)} labels", field=field)
        return int(labels.encode(np.array([label], dtype=object), field=field, source="answer")[0])

    def rules(self, project: ProjectColumns) -> SkillRules:
        """The project's skill rules at its ``settings_version``."""
        cached = self._rules.get(project.id)
        if cached is None or cached[0] != project.settings_version:
            cached = self._rules[project.id] = (project.settings_version, codec.rules_from_json(project.rules))
        return cached[1]

    def skill_rules(self, project: ProjectColumns) -> SkillRules:
        """The skill rules with the prior mean the last refit learned (the policy's stated prior
        accuracy before any refit): annotators' skills are weighed as the decision's fit weighs them."""
        prior = project.skill_prior if project.skill_prior is not None else self.policy(project).prior_accuracy
        rules = self.rules(project)
        return rules if rules.prior_mean == prior else replace(rules, prior_mean=prior)

    def policy(self, project: ProjectColumns) -> ConsensusPolicy:
        """The project's consensus policy at its ``settings_version``."""
        cached = self._policies.get(project.id)
        if cached is None or cached[0] != project.settings_version:
            cached = self._policies[project.id] = (project.settings_version, codec.policy_from_json(project.policy))
        return cached[1]

    def decider(self, project: ProjectColumns) -> Decider:
        """The decision of the project's last refit under its current settings (its calibrator is
        data, ``TopLabelCalibrator.from_dict``)."""
        key = (project.id, project.refit_at, project.settings_version)
        decider = self._deciders.get(key)
        if decider is None:
            stored = project.calibrator if project.refit_at is not None else None
            rules = self.skill_rules(project)
            decider = Decider(
                self.labels(project),
                self.policy(project),
                typical_skill=project.typical_skill or rules.prior_mean,
                skill_evidence=project.skill_evidence or rules.prior_strength,
                calibrator=TopLabelCalibrator.from_dict(stored) if stored else None,
                sibling_share=project.sibling_share if project.refit_at is not None else None,
                vague_share=project.vague_share if project.refit_at is not None else None,
                model_floor=project.model_floor if project.refit_at is not None else None,
            )
            self._deciders = {k: v for k, v in self._deciders.items() if k[0] != project.id}
            self._deciders[key] = decider
        return decider
