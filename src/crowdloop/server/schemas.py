"""The API's request bodies (pydantic models, validated on the way in and documented in the OpenAPI
schema), their validation helpers, and the responses whose shape is the API's own. A response that is
a service result field for field is that result's dataclass (``crowdloop.service.types``), returned
as it is."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from crowdloop.consensus import Prices
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
Target = Annotated[float, Field(ge=0.5, lt=1)]
MinOverlap = Annotated[int, Field(ge=0, le=100)]
MaxOverlap = Annotated[int, Field(ge=1, le=100)]
GoldRate = Annotated[float, Field(ge=0, le=1, description="Share of tasks that are gold (control) items.")]
LeaseSeconds = Annotated[int, Field(ge=5, le=7 * 86400, description="How long an annotator holds a task.")]
ModelVotes = Annotated[bool, Field(description="The latest model version votes in the consensus.")]
ReviewersSeeGold = Annotated[
    bool,
    Field(description="Reviewers may read gold items and every item's state (else only the items they review)."),
]
SuggestionCount = Annotated[int, Field(ge=0, le=20, description="Top-k pre-labels shown with a task (0: none).")]
AuditRate = Annotated[
    float, Field(ge=0, le=1, description="Share of the items the model is sure of still sent to people.")
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

    crowd: float = Field(1.0, ge=0, le=1e6)
    expert: float = Field(10.0, ge=0, le=1e6)
    model: float = Field(0.0, ge=0, le=1e6)


class PolicyIn(Strict):
    """When an item is done: accept at ``target`` confidence, between ``min_overlap`` and
    ``max_overlap`` human answers; escalate to a reviewer otherwise."""

    target: Target = 0.97
    min_overlap: MinOverlap = 1
    max_overlap: MaxOverlap = 5
    escalate_early: bool = True
    partial: bool = True
    prices: PricesIn = Field(default_factory=PricesIn)

    @model_validator(mode="after")
    def _overlaps(self) -> PolicyIn:
        if self.max_overlap < self.min_overlap:
            raise ValueError("max_overlap must be >= min_overlap")
        return self


class PolicyPatch(Strict):
    """The policy fields to change (``prices`` too may change in part); the others stay as they are."""

    target: Target | None = None
    min_overlap: MinOverlap | None = None
    max_overlap: MaxOverlap | None = None
    escalate_early: bool | None = None
    partial: bool | None = None
    prices: PricesIn | None = None


class ProjectSettings(Strict):
    policy: PolicyIn = Field(default_factory=PolicyIn)
    gold_rate: GoldRate = 0.1
    lease_seconds: LeaseSeconds = 600
    model_votes: ModelVotes = True
    suggestions: SuggestionCount = 3
    reviewers_see_gold: ReviewersSeeGold = False
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
    text_fields: TextFields | None = None
    audit_rate: AuditRate | None = None
    hide_rate: HideRate | None = None

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
    """The settings of ``ConsensusPolicy`` a project is created with (``PolicyIn``), without the
    engine's ``label_value``, which the API does not set."""

    target: float
    min_overlap: int
    max_overlap: int
    escalate_early: bool
    partial: bool
    prices: Prices


class ProjectOut(Out):
    """A project (``ProjectInfo``) with its label space as the list of label names (paths in a
    taxonomy) and ``is_taxonomy``, and its policy as ``PolicyOut``; the skill rules stay inside."""

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
