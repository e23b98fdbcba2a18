"""The API's request and response bodies: pydantic models, validated on the way in and documented
in the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

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


def _no_nul(value: Any, where: str = "data") -> Any:
    """Refuse NUL characters anywhere in a JSON payload (keys and strings)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where} contains a NUL character")
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, where)
            _no_nul(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nul(item, f"{where}[{i}]")
    return value


Payload = Annotated[dict[str, Any], AfterValidator(_no_nul)]


class Strict(BaseModel):
    """A request body: unknown fields and type coercions (``"1"`` for 1) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PricesIn(Strict):
    """Price of one answer by kind of opinion."""

    crowd: float = Field(1.0, ge=0, le=1e6)
    expert: float = Field(10.0, ge=0, le=1e6)
    model: float = Field(0.0, ge=0, le=1e6)


class PolicyIn(Strict):
    """When an item is done: accept at ``target`` confidence, between ``min_overlap`` and
    ``max_overlap`` human answers; escalate to a reviewer otherwise."""

    target: float = Field(0.97, ge=0.5, lt=1)
    min_overlap: int = Field(1, ge=0, le=100)
    max_overlap: int = Field(5, ge=1, le=100)
    escalate_early: bool = True
    partial: bool = True
    prices: PricesIn = Field(default_factory=PricesIn)

    @model_validator(mode="after")
    def _overlaps(self) -> PolicyIn:
        if self.max_overlap < self.min_overlap:
            raise ValueError("max_overlap must be >= min_overlap")
        return self


class ProjectSettings(Strict):
    policy: PolicyIn = Field(default_factory=PolicyIn)
    gold_rate: float = Field(0.1, ge=0, le=1, description="Share of tasks that are gold (control) items.")
    lease_seconds: int = Field(600, ge=5, le=7 * 86400, description="How long an annotator holds a task.")
    model_votes: bool = Field(True, description="The latest model version votes in the consensus.")
    suggestions: int = Field(3, ge=0, le=50, description="Top-k pre-labels shown with a task (0: none).")
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


class PricesOut(Out):
    crowd: float
    expert: float
    model: float


class PolicyOut(Out):
    target: float
    min_overlap: int
    max_overlap: int
    escalate_early: bool
    partial: bool
    prices: PricesOut


class ProjectOut(Out):
    id: int
    name: str
    labels: list[str]
    is_taxonomy: bool
    policy: PolicyOut
    gold_rate: float
    lease_seconds: int
    model_votes: bool
    suggestions: int
    created_at: datetime


class ProjectBrief(Out):
    """What an annotator sees of their project: its name and the labels to answer with."""

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


class AnnotatorOut(Out):
    id: int
    project_id: int
    name: str
    role: str
    kind: str
    status: str
    skill: float
    answers: int
    gold_right: int
    gold_total: int


class TokenOut(BaseModel):
    """A bearer token, shown this once (only its hash is stored)."""

    annotator: AnnotatorOut
    token: str


class CreatedProject(BaseModel):
    project: ProjectOut
    owner: TokenOut


class MeOut(BaseModel):
    annotator: AnnotatorOut
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
    count: int


class SuggestionOut(Out):
    label: str
    probability: float


class TaskOut(Out):
    lease_id: str
    item: str
    payload: dict[str, Any]
    suggestions: list[SuggestionOut]
    expires_at: datetime


class SubmitIn(Strict):
    label: Label
    duration_ms: int | None = Field(None, ge=0, le=86_400_000)
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")] | None = None


class SubmitOut(Out):
    answer_id: int
    lease_id: str
    item: str
    label: str
    duplicate: bool
    annotator_status: str


class ItemStateOut(Out):
    item: str
    status: str
    label: str | None
    confidence: float | None
    answers: int
    open_leases: int
    needed: int
    is_gold: bool


class ReviewAnswerOut(Out):
    annotator: str
    label: str


class ReviewTaskOut(Out):
    item: str
    payload: dict[str, Any]
    label: str | None
    confidence: float | None
    answers: list[ReviewAnswerOut]
    suggestions: list[SuggestionOut]


class ReviewIn(Strict):
    label: Label


class ProgressOut(Out):
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


class ResultOut(Out):
    item: str
    status: str
    label: str | None
    confidence: float | None
    answers: int


class PredictionsIn(Strict):
    """A model version's probabilities: item id -> {label: probability}."""

    model: Name
    version: Name
    probabilities: dict[ExternalId, dict[Label, Probability]] = Field(min_length=1)
    top_k: int = Field(10, ge=1, le=1000)


class ModelVersionOut(Out):
    id: int
    project_id: int
    name: str
    version: str
    predictions: int
    temperature: float
    created_at: datetime


class RefitAccepted(BaseModel):
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


class AnswersImportOut(Out):
    stored: int
    duplicates: list[int] = Field(description="Rows not stored: their annotator had answered the item already.")
    annotators_created: list[str] = Field(description="Annotators named for the first time (no token yet).")
    items_changed: int = Field(description="Items whose status the imported answers changed.")


class ItemsUploadOut(ImportOut):
    annotations_ignored: int = Field(
        0, description="0: the file's annotations are stored as answers (cancelled ones are skipped)."
    )
    answers: AnswersImportOut | None = Field(None, description="The file's annotations, stored as answers.")
