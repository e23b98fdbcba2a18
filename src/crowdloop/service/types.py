"""What goes in and out of the labeling service: plain frozen dataclasses, no database objects."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.labels import LabelSpace, Taxonomy

Role = Literal["owner", "annotator", "reviewer"]
Kind = Literal["human", "model"]
AnnotatorStatus = Literal["active", "banned"]
ItemStatus = Literal["more", "accepted", "escalated", "reviewed", "gold", "disputed"]
LabelSource = Literal["crowd", "model", "review", "gold"]
ROLES: tuple[str, ...] = ("owner", "annotator", "reviewer")
KINDS: tuple[str, ...] = ("human", "model")
ITEM_STATUSES: tuple[str, ...] = ("more", "accepted", "escalated", "reviewed", "gold", "disputed")
"""``more``: needs answers; ``accepted``: the consensus reached the target (or a partial taxonomy
level); ``escalated``: waits for a reviewer; ``reviewed``: a reviewer decided (final); ``gold``: a
control item with a known label (served to annotators like any other item); ``disputed``: accepted,
but the newest model disputes the label strongly (a likely label error): waits for a reviewer."""
DISPUTED = "disputed"
Clock = Callable[[], datetime]
"""The time the service measures leases and job claims by: a function returning an aware UTC
datetime (``open_service``'s ``clock``)."""


@dataclass(frozen=True)
class ItemIn:
    """One item to import. ``gold``: its true label (makes it a gold item; ``hint`` is shown to
    reviewers and in the annotator's feedback, never in the task); ``predictions``: a model's
    probability per label (stored under the ``model`` name given to ``import_items``)."""

    external_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    gold: Hashable | None = None
    hint: str | None = None
    predictions: Mapping[Hashable, float] | None = None


@dataclass(frozen=True)
class GoldIn:
    """A gold label for an item already imported."""

    external_id: str
    label: Hashable
    hint: str | None = None


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    labels: LabelSpace | Taxonomy
    policy: ConsensusPolicy
    rules: SkillRules
    gold_rate: float
    lease_seconds: int
    model_votes: bool
    suggestions: int
    created_at: datetime
    reviewers_see_gold: bool = False
    text_fields: list[str] | None = field(
        default=None,
        metadata={"description": "Payload fields the project's model reads (null: every string field; []: no model)."},
    )
    audit_rate: float = field(
        default=0.05, metadata={"description": "Share of the items the model is sure of still sent to people (audit)."}
    )
    hide_rate: float = 0.1

    @property
    def is_taxonomy(self) -> bool:
        return isinstance(self.labels, Taxonomy)


@dataclass(frozen=True)
class ProjectUpdate:
    """What ``update_project`` did: the project as it is now; ``changed``: each setting changed,
    ``{"from": old, "to": new}`` (policy and rules as their stored JSON); ``redecided``: open items
    decided again under the new settings in the same call; ``left_to_refit``: open items the next
    refit (``crowdloop refit``) decides again, the project having too many items for one call."""

    project: ProjectInfo
    changed: dict[str, dict[str, Any]]
    redecided: int
    left_to_refit: int


@dataclass(frozen=True)
class AnnotatorInfo:
    """An annotator as the service knows it: ``skill`` is the posterior mean accuracy (SkillBook),
    ``gold_right``/``gold_total`` its record on gold items."""

    id: int
    project_id: int
    name: str
    role: Role
    kind: Kind
    status: AnnotatorStatus
    skill: float
    answers: int
    gold_right: int
    gold_total: int


@dataclass(frozen=True)
class Suggestion:
    """A pre-label shown to the annotator: a label of the model's top-k and its probability."""

    label: str
    probability: float


@dataclass(frozen=True)
class TaskOut:
    """A task handed to an annotator. It never says whether the item is gold, nor anything about
    the other answers or the consensus state."""

    lease_id: str
    item: str
    payload: dict[str, Any]
    suggestions: list[Suggestion]
    expires_at: datetime


@dataclass(frozen=True)
class SubmitOut:
    """What the annotator learns after a submit: the answer is stored (``duplicate``: this was a
    retry of a submit already stored, which did not count again) and whether they may go on;
    ``next_task``: the next task, when the submit asked for it in the same call."""

    answer_id: int
    lease_id: str
    item: str
    label: str
    duplicate: bool
    annotator_status: AnnotatorStatus
    next_task: TaskOut | None = field(
        default=None,
        metadata={"description": "With `?next=true`: the annotator's next task, leased (null when none is left)."},
    )


@dataclass(frozen=True)
class ItemState:
    """The consensus state of one item (owners and reviewers only)."""

    item: str
    status: ItemStatus
    label: str | None
    confidence: float | None
    answers: int
    open_leases: int
    needed: int
    is_gold: bool


@dataclass(frozen=True)
class ReviewAnswer:
    """One crowd answer to an escalated item: who answered and the label."""

    annotator: str
    label: str


@dataclass(frozen=True)
class ReviewTask:
    """An escalated or disputed item for a reviewer: the crowd's answers and the leading label;
    for a disputed item the label the model gives instead (``model_label``) and the ``reason``."""

    item: str
    payload: dict[str, Any]
    label: str | None
    confidence: float | None
    answers: list[ReviewAnswer]
    suggestions: list[Suggestion]
    model_label: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ModelVersionInfo:
    """A stored model version: its predictions (items it has probabilities for) and the
    temperature the last refit learned for it."""

    id: int
    project_id: int
    name: str
    version: str
    predictions: int
    temperature: float
    created_at: datetime


@dataclass(frozen=True)
class ModelVersionMetrics:
    """A version of the project's own model (``service.training``): its ``state`` (``active``,
    ``pending``, ``rejected``: worse on gold, never used), training set, cross-fitted accuracy and
    ECE on ``gold_n`` gold items, the ``threshold`` it proved for labels without humans (None:
    none), and where the project stood when it was trained (``at_*``: answers, cost, settled and
    model-labelled items): progress over time; ``confirmed_at``: when a sample of people's labels
    confirmed the threshold (``service.automation``)."""

    version: str
    state: str
    created_at: datetime
    training_size: int
    training_hash: str
    gold_n: int
    gold_accuracy: float | None
    gold_ece: float | None
    threshold: float | None
    items_labelled: int
    at_answers: int
    at_cost: float
    at_cost_per_item: float
    at_settled: int
    at_automated: int
    confirmed_at: datetime | None = None


@dataclass(frozen=True)
class AuditFigures:
    """The audit of the model's labels (``service.automation``): ``automation`` is ``on``,
    ``confirming`` (a version proved a threshold on gold and waits for its sample), ``stopped``
    (a sample or audit proved the labels below the target) or ``off`` (no version proved a
    threshold); ``audited`` items of the version in use settled by people, ``right`` of them the
    model's label, their ``accuracy`` and its Clopper-Pearson ``lower_bound`` (at the level every
    acceptance is held to, ``consensus.decider.CAUTION``)."""

    automation: str
    version: str | None
    audited: int
    right: int
    accuracy: float | None
    lower_bound: float | None


@dataclass(frozen=True)
class SuggestionMeasure:
    """One measure of what suggestions do to answers, shown against hidden (on answers to items
    whose label is known: gold, or settled by a reviewer): ``shown`` and ``hidden`` values,
    ``effect`` (their difference, or ratio for times) with its 95% interval ``low``-``high``, and
    the answers each side (``crowdloop.models.prelabels.anchoring_effect``)."""

    measure: str
    shown: float
    hidden: float
    effect: float
    low: float
    high: float
    n_shown: int
    n_hidden: int


@dataclass(frozen=True)
class LabelErrorCounts:
    """Accepted labels the model disputed: ``flagged`` in all, ``pending`` review, ``fixed`` (the
    reviewer chose another label) and ``kept`` (the reviewer kept the accepted label)."""

    flagged: int = 0
    pending: int = 0
    fixed: int = 0
    kept: int = 0


@dataclass(frozen=True)
class DisputedItem:
    """An accepted label the model disputes: the label, the model's, and the model's probability of each."""

    item: str
    label: str
    model_label: str
    label_probability: float
    model_probability: float


@dataclass(frozen=True)
class LabelCheck:
    """What a check of the accepted labels against the newest model version found: ``checked``
    accepted items it has predictions for, ``disputed`` the ones sent to review (this check)."""

    project_id: int
    model: str | None
    checked: int
    disputed: list[DisputedItem]


@dataclass(frozen=True)
class Progress:
    """Where a project stands. ``accuracy_estimate``: mean calibrated confidence of the settled
    (accepted or reviewed) items, the expected share of them that is right; ``cost``: money spent so
    far (crowd, expert and model answers at the policy's prices); ``automation_rate``: share of the
    accepted items that needed no human answer; ``automated``: items labelled by the project's
    model with no human answer, ``automated_share`` of all items; ``paid_answers_per_item``: human
    answers (gold included, reviews not) per item; ``cost_per_item``; ``audit`` and
    ``model_versions``: the project's own model (``service.training``); ``suggestions``: the anchoring effect of the
    suggestions and the answer times, shown against hidden, as the last refit measured them (empty
    until both kinds of answers exist on items whose label is known); ``label_errors``: accepted
    labels the model disputed and what the reviewers decided."""

    project_id: int
    items: int
    gold_items: int
    status_counts: dict[str, int]
    answers: int
    gold_answers: int
    reviews: int
    answers_per_item: float
    cost: float
    accuracy_estimate: float | None
    automation_rate: float
    annotators: int
    banned: int
    automated: int = 0
    automated_share: float = 0.0
    paid_answers_per_item: float = 0.0
    cost_per_item: float = 0.0
    audit: AuditFigures | None = None
    model_versions: list[ModelVersionMetrics] = field(default_factory=list)
    suggestions: list[SuggestionMeasure] = field(default_factory=list)
    label_errors: LabelErrorCounts = field(default_factory=LabelErrorCounts)


@dataclass(frozen=True)
class ResultRow:
    """The final (or current) label of an item with its calibrated confidence; ``source``: where
    the label came from (``crowd``: the consensus of answers, with the model's vote if any;
    ``model``: the project's model with no human answer; ``review``: a reviewer; ``gold``: a known
    label), ``model_version``: the version of the project's model that gave a ``model`` label."""

    item: str
    status: ItemStatus
    label: str | None
    confidence: float | None
    answers: int
    source: LabelSource = "crowd"
    model_version: str | None = None


@dataclass(frozen=True)
class RefitReport:
    """What a full refit did: the skill model the engine chose, annotators updated, whether a
    calibrator was fitted on gold, the model versions' learned temperatures, items re-decided, and
    in a taxonomy the share of wrong answers that name a sibling of the truth."""

    project_id: int
    skill_model: str
    annotators: int
    calibrated: bool
    temperatures: dict[str, float]
    items_redecided: int
    seconds: float
    sibling_share: float | None = None
    vague_share: float | None = None
    model_floor: float | None = None


@dataclass(frozen=True)
class RefitSkipped:
    """A project a refit job left alone because another refit of it was running (``reason``): that
    one takes the latest answers."""

    project_id: int
    reason: str


@dataclass(frozen=True)
class CurvePoint:
    """A model version on the learning curve: the labels it could train on, its ``accuracy`` on
    the ``gold`` items it has predictions for."""

    version: str
    labels: int
    accuracy: float
    gold: int


@dataclass(frozen=True)
class PlanRange:
    """An estimate and its bootstrap interval (None: unbounded, e.g. a target above the asymptote)."""

    estimate: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PlanReport:
    """How much data (``Planning.plan``): the curve's ``points`` and fitted ``curve`` (``a - b
    n^-c``), the labels now and the ones ``target`` needs, their cost against a model change (at an
    engineer hour of 10 to 15 annotator hours: ``model_change_range``), and the recommendation
    (``add data``, ``change the model`` or ``target reached``) with its reason. Money in the units of
    the project's prices."""

    project_id: int
    model: str | None
    points: list[CurvePoint]
    curve: dict[str, float]
    asymptote: PlanRange
    target: float
    current_labels: int
    current_accuracy: PlanRange
    labels_needed: PlanRange
    data_cost: PlanRange
    price_per_label: float
    annotator_hour_price: float
    seconds_per_answer: float
    model_change_cost: float
    model_change_range: list[float]
    recommendation: str
    reason: str
