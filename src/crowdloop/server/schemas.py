"""The API's request bodies (pydantic models, validated on the way in and documented in the OpenAPI
schema), their validation helpers, and the responses whose shape is the API's own. A response that is
a service result field for field is that result's dataclass (``crowdloop.service.types``), returned
as it is."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from crowdloop.consensus import ConsensusPolicy, Prices
from crowdloop.consensus.policy import Bounds, bounds_of
from crowdloop.errors import ConfigError
from crowdloop.service import AnnotatorInfo
from crowdloop.service.answer_import import AnswersImported
from crowdloop.service.stored_text import json_problem

MAX_ID = 2**31 - 1
TEXT = r"^[^\x00]*\S[^\x00]*$"
"""Text with a visible character and no NUL (which no database column stores)."""
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT)]
Label = Annotated[str, Field(min_length=1, max_length=1000, pattern=TEXT)]
ExternalId = Annotated[str, Field(min_length=1, max_length=500, pattern=TEXT)]
Hint = Annotated[str, Field(max_length=5000, pattern=r"^[^\x00]*$")]
Probability = Annotated[float, Field(ge=0, le=1)]
RoleName = Literal["owner", "annotator", "reviewer"]
ProjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
AnnotatorId = Annotated[int, Path(ge=1, le=MAX_ID)]
ItemPath = Annotated[str, Path(min_length=1, max_length=500, pattern=TEXT)]
LeaseId = Annotated[str, Path(min_length=1, max_length=200, pattern=TEXT)]


def _storable(value: Any) -> Any:
    """Refuse a JSON payload the database cannot hold or a response cannot carry (``json_problem``)."""
    problem = json_problem(value, "data")
    if problem:
        raise ValueError(problem)
    return value


Payload = Annotated[dict[str, Any], AfterValidator(_storable)]


def limits(bounds: Bounds) -> dict[str, float]:
    """``Field`` keywords (``ge``, ``gt``, ``le``, ``lt``) of a setting's bounds."""
    out: dict[str, float] = {}
    if bounds.low is not None:
        out["gt" if bounds.low_open else "ge"] = bounds.low
    if bounds.high is not None:
        out["lt" if bounds.high_open else "le"] = bounds.high
    return out


def bounded(settings: type, name: str, description: str) -> Any:
    """The ``Field`` of a number setting of the engine's ``settings`` dataclass, with the bounds
    declared there (``consensus.policy``): the API refuses what the engine would."""
    return Field(description=description, **limits(bounds_of(settings, name)))


POLICY, PRICES = ConsensusPolicy(), Prices()
"""The engine's defaults, which the API's are."""
Target = Annotated[
    float,
    bounded(ConsensusPolicy, "target", "Accept an item once the calibrated chance its label is right reaches this."),
]
MinOverlap = Annotated[int, bounded(ConsensusPolicy, "min_overlap", "Human answers every item gets at least.")]
MaxOverlap = Annotated[
    int, bounded(ConsensusPolicy, "max_overlap", "Human answers after which an item goes to a reviewer.")
]
LabelValue = Annotated[
    float,
    bounded(ConsensusPolicy, "label_value", "What a right label is worth, in the prices' currency (null: not used)."),
]
PriorAccuracy = Annotated[
    float,
    bounded(
        ConsensusPolicy,
        "prior_accuracy",
        "The stated prior mean accuracy of an annotator, before any evidence (the crowd's agreement moves it; "
        "after a refit the decision uses the prior it learned, and a change counts from the next refit).",
    ),
]
CrowdPrice = Annotated[float, bounded(Prices, "crowd", "Price of a crowd answer.")]
ExpertPrice = Annotated[float, bounded(Prices, "expert", "Price of an expert's (reviewer's) decision.")]
ModelPrice = Annotated[float, bounded(Prices, "model", "Price of a model's answer.")]
GoldRate = Annotated[float, Field(ge=0, le=1, description="Share of tasks that are gold (control) items.")]
LeaseSeconds = Annotated[int, Field(ge=5, le=7 * 86400, description="How long an annotator holds a task.")]
ModelVotes = Annotated[bool, Field(description="The latest model version votes in the consensus.")]
ReviewersSeeGold = Annotated[
    bool,
    Field(description="Reviewers may read gold items and every item's state (else only the items they review)."),
]
Exam = Annotated[
    bool,
    Field(description="A new annotator's tasks are gold until the ban test can tell (SkillRules.exam)."),
]
SuggestionCount = Annotated[int, Field(ge=0, le=20, description="Top-k pre-labels shown with a task (0: none).")]
AuditRate = Annotated[
    float,
    Field(
        ge=0,
        le=1,
        description="Share of the items the model is sure of still sent to people, and the least share of the "
        "sample that confirms a model version before it labels (0: no sample, no audit).",
    ),
]
TextFields = Annotated[
    list[Name],
    Field(max_length=100, description="Payload fields the model reads (null: every string field; []: no model)."),
]
HideRate = Annotated[
    float, Field(ge=0, le=1, description="Share of tasks served without their suggestions (measures anchoring).")
]


class Strict(BaseModel):
    """A request body: unknown fields and type coercions (``"1"`` for 1) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    """A response read from the attributes of the service's objects it converts."""

    model_config = ConfigDict(from_attributes=True)


class PricesIn(Strict):
    """Price of one answer by kind of opinion."""

    crowd: CrowdPrice = PRICES.crowd
    expert: ExpertPrice = PRICES.expert
    model: ModelPrice = PRICES.model


class PolicyIn(Strict):
    """When an item is done (``ConsensusPolicy``): accept at ``target`` confidence, between
    ``min_overlap`` and ``max_overlap`` human answers; escalate to a reviewer otherwise."""

    target: Target = POLICY.target
    min_overlap: MinOverlap = POLICY.min_overlap
    max_overlap: MaxOverlap = POLICY.max_overlap
    escalate_early: bool = POLICY.escalate_early
    partial: bool = POLICY.partial
    label_value: LabelValue | None = POLICY.label_value
    prices: PricesIn = Field(default_factory=PricesIn)
    prior_accuracy: PriorAccuracy = POLICY.prior_accuracy

    @model_validator(mode="after")
    def _consistent(self) -> PolicyIn:
        self.to_policy()  # the engine's checks across fields (max_overlap >= min_overlap)
        return self

    def to_policy(self) -> ConsensusPolicy:
        """The engine's policy (``ValueError`` with its message when it refuses)."""
        try:
            return ConsensusPolicy(**{**dict(self), "prices": Prices(**self.prices.model_dump())})
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class PolicyPatch(Strict):
    """The policy fields to change (``prices`` too may change in part); the others stay as they
    are. ``null`` leaves a field as it is, except ``label_value``, which it sets to not used."""

    target: Target | None = None
    min_overlap: MinOverlap | None = None
    max_overlap: MaxOverlap | None = None
    escalate_early: bool | None = None
    partial: bool | None = None
    label_value: LabelValue | None = None
    prices: PricesIn | None = None
    prior_accuracy: PriorAccuracy | None = None


class ProjectSettings(Strict):
    policy: PolicyIn = Field(default_factory=PolicyIn)
    gold_rate: GoldRate = 0.1
    lease_seconds: LeaseSeconds = 600
    model_votes: ModelVotes = True
    suggestions: SuggestionCount = 3
    reviewers_see_gold: ReviewersSeeGold = False
    exam: Exam = True
    text_fields: TextFields | None = None
    audit_rate: AuditRate = 0.05
    hide_rate: HideRate = 0.1
    owner: Name = Field("owner", description="Name of the project's first owner (who gets the token).")


class ProjectIn(ProjectSettings):
    """A new project: a label list (``labels``) or a taxonomy (``taxonomy``: ``A > B > C`` paths or
    Google Product Taxonomy lines ``ID - A > B > C``), and its policy."""

    name: Name
    labels: list[Label] | None = Field(None, min_length=1, max_length=100_000)
    taxonomy: list[Label] | None = Field(None, min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _one_label_space(self) -> ProjectIn:
        if (self.labels is None) == (self.taxonomy is None):
            raise ValueError("give labels or taxonomy, exactly one")
        return self


class ProjectPatch(Strict):
    """The settings to change, any of them; the label space never changes."""

    name: Name | None = None
    policy: PolicyPatch | None = None
    gold_rate: GoldRate | None = None
    lease_seconds: LeaseSeconds | None = None
    model_votes: ModelVotes | None = None
    suggestions: SuggestionCount | None = None
    reviewers_see_gold: ReviewersSeeGold | None = None
    exam: Exam | None = None
    text_fields: TextFields | None = None
    audit_rate: AuditRate | None = None
    hide_rate: HideRate | None = None

    def changes(self) -> dict[str, Any]:
        """The settings sent, as ``update_project`` takes them: a ``null`` leaves its setting as it
        is, except the policy's ``label_value``, which it clears."""
        given = self.model_dump(exclude_unset=True, exclude_none=True)
        if self.policy is not None and "label_value" in self.policy.model_fields_set:
            given.setdefault("policy", {})["label_value"] = self.policy.label_value
        if "exam" in given:
            given["rules"] = {"exam": given.pop("exam")}
        return given

    @model_validator(mode="before")
    @classmethod
    def _labels_stay(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.keys() & {"labels", "taxonomy"}:
            raise ValueError(
                "a project's label space never changes (its codes are in every stored answer): "
                "create a new project for other labels"
            )
        return data


class PolicyOut(Out):
    """A project's ``ConsensusPolicy``, every setting of it (``PolicyIn``)."""

    target: float
    min_overlap: int
    max_overlap: int
    escalate_early: bool
    partial: bool
    label_value: float | None
    prices: Prices
    prior_accuracy: float


class ProjectOut(Out):
    """A project (``ProjectInfo``) with its label space as the list of label names (paths in a
    taxonomy) and ``is_taxonomy``, its policy as ``PolicyOut`` and whether new annotators sit the
    exam (``exam``); the other skill rules stay inside."""

    id: int
    name: str
    labels: list[str]
    is_taxonomy: bool
    policy: PolicyOut
    gold_rate: float
    lease_seconds: int
    model_votes: bool
    suggestions: int
    reviewers_see_gold: bool
    exam: bool
    hide_rate: float
    created_at: datetime
    text_fields: list[str] | None
    audit_rate: float


class ProjectUpdated(BaseModel):
    """What a PATCH did (``ProjectUpdate``), with the project as ``ProjectOut``."""

    project: ProjectOut
    changed: dict[str, dict[str, Any]] = Field(description="Each setting changed: {'from': old, 'to': new}.")
    redecided: int = Field(description="Open items decided again under the new settings in this request.")
    left_to_refit: int = Field(
        description="Open items the next refit (crowdloop refit) decides again: too many for one request."
    )


class ProjectBrief(Out):
    """What an annotator sees of their project: its name and the labels to answer with (the
    settings in ``ProjectOut`` are for owners)."""

    id: int
    name: str
    labels: list[str]
    is_taxonomy: bool


class AnnotatorIn(Strict):
    name: Name
    role: RoleName = "annotator"
    kind: Literal["human", "model"] = "human"


class RoleIn(Strict):
    role: RoleName


class TokenOut(BaseModel):
    """A bearer token, shown this once (only its hash is stored)."""

    annotator: AnnotatorInfo
    token: str


class CreatedProject(BaseModel):
    """A new project and its first owner's token."""

    project: ProjectOut
    owner: TokenOut


class Member(BaseModel):
    """Who an annotator or reviewer is, without their skill or gold record (which move with each
    gold answer, so showing them would tell which tasks were gold)."""

    id: int
    project_id: int
    name: str
    role: RoleName
    kind: str
    status: str
    answers: int


class MeOut(BaseModel):
    """The token's annotator (for owners and the admin with skill and gold record), and whether the
    token is the admin's."""

    annotator: AnnotatorInfo | Member
    admin: bool


class ItemRecord(Strict):
    """An item to import: its id, payload (``data``), optional gold label (with a hint) and a
    model's probabilities per label."""

    id: ExternalId
    data: Payload = Field(default_factory=dict)
    gold: Label | None = None
    hint: Hint | None = None
    predictions: dict[Label, Probability] | None = None


class ModelRef(Strict):
    name: Name
    version: Name


class ItemsIn(Strict):
    items: list[ItemRecord] = Field(min_length=1)
    model: ModelRef | None = Field(None, description="The model whose predictions the items carry.")


class ImportOut(BaseModel):
    """What an item import stored (the service counts the items; the API also the gold and predictions)."""

    imported: int
    gold: int
    predictions: int
    annotations_ignored: int = Field(
        0, description="Answers given before import (Label Studio annotations) are not replayed."
    )


class GoldRecord(Strict):
    item: ExternalId
    label: Label
    hint: Hint | None = None


class GoldListIn(Strict):
    gold: list[GoldRecord] = Field(min_length=1)


class CountOut(BaseModel):
    """How many rows a request changed (the service answers with the bare number)."""

    count: int


class SubmitIn(Strict):
    label: Label
    duration_ms: int | None = Field(None, ge=0, le=86_400_000)
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")] | None = None


class ReviewIn(Strict):
    label: Label


class PredictionsIn(Strict):
    """A model version's probabilities: item id -> {label: probability}."""

    model: Name
    version: Name
    probabilities: dict[ExternalId, dict[Label, Probability]] = Field(min_length=1)
    top_k: int = Field(10, ge=1, le=1000)


class RefitAccepted(BaseModel):
    """A refit started after the response: the request does not wait for its ``RefitReport`` (the
    event log, ``/events``, records what it did)."""

    project_id: int
    status: Literal["started"] = "started"


class AnswerRecord(Strict):
    """An answer given before import: the item, who answered (by name) and the label; ``review``:
    a reviewer's final decision."""

    item: ExternalId
    annotator: Name
    label: Label
    review: bool = False


class AnswersIn(Strict):
    answers: list[AnswerRecord] = Field(min_length=1)


class ItemsUploadOut(ImportOut):
    """An item file's import, with the file's annotations stored as answers."""

    annotations_ignored: int = Field(
        0, description="0: the file's annotations are stored as answers (cancelled ones are skipped)."
    )
    answers: AnswersImported | None = Field(None, description="The file's annotations, stored as answers.")
