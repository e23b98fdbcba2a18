"""The database schema (SQLAlchemy 2 ORM). Alembic's migrations in ``migrations/`` create it.

Counts the loop needs (answers and open leases per item, gold record per annotator) are columns
kept up to date by conditional updates in the same transaction as the rows they count, so no
query ever counts over JSON or over all the answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Project(Base):
    """A labeling project: its label space (``labels``: the labels, or for a taxonomy the paths
    and optional ids), consensus policy, skill rules, gold rate, whether reviewers may read gold
    items (``reviewers_see_gold``), the calibrator of the decision (``TopLabelCalibrator.to_dict``:
    data, never a pickle) and the annotators' prior skill the last refit learned.
    ``hide_rate``: the share of leases whose suggestions are computed but not shown (anchoring).
    ``settings_version`` counts the changes of its settings: every process caches a policy and
    rules under the version they were read at, so a change made in one process is seen by all."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    is_taxonomy: Mapped[bool] = mapped_column(Boolean)
    # deferred: read once per process (the service caches them), never with every request
    labels: Mapped[dict] = mapped_column(JSON, deferred=True)
    policy: Mapped[dict] = mapped_column(JSON, deferred=True)
    rules: Mapped[dict] = mapped_column(JSON, deferred=True)
    gold_rate: Mapped[float] = mapped_column(Float)
    lease_seconds: Mapped[int] = mapped_column(Integer)
    model_votes: Mapped[bool] = mapped_column(Boolean)
    suggestions: Mapped[int] = mapped_column(Integer)
    reviewers_see_gold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    hide_rate: Mapped[float] = mapped_column(Float, default=0.1, server_default="0.1")
    settings_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    calibrator: Mapped[dict | None] = mapped_column(JSON, nullable=True, deferred=True)
    # the project's own model: payload fields read as text (None: every string field; []: no model),
    # the share of model labels still sent to humans, and the version automation stopped at
    text_fields: Mapped[list | None] = mapped_column(JSON, nullable=True)
    audit_rate: Mapped[float] = mapped_column(Float, default=0.05, server_default="0.05")
    automation_stopped: Mapped[int | None] = mapped_column(Integer, nullable=True)
    typical_skill: Mapped[float | None] = mapped_column(Float, nullable=True)
    skill_evidence: Mapped[float | None] = mapped_column(Float, nullable=True)  # behind typical_skill
    sibling_share: Mapped[float | None] = mapped_column(Float, nullable=True)  # of wrong answers (a taxonomy)
    vague_share: Mapped[float | None] = mapped_column(Float, nullable=True)  # of right answers (a taxonomy)
    model_floor: Mapped[float | None] = mapped_column(Float, nullable=True)  # of the model rows that vote
    skill_prior: Mapped[float | None] = mapped_column(Float, nullable=True)
    # what suggestions do to answers, shown against hidden, as the last refit measured it
    suggestion_effect: Mapped[list | None] = mapped_column(JSON, nullable=True, deferred=True)
    refit_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Item(Base):
    """An item to label. ``label`` is a code of the project's label space; ``needed``: answers
    still to order now (the decision's ``next``); ``priority``: expected information per cost of
    one more answer (a share of the most it can be: ``consensus.priority``) times ``learn_weight``,
    the worth of its label to the model and to the spread of what is labelled
    (``service.priorities``, in (1, 2]; the order of the pool); ``branch``: the predicted top-level
    branch (taxonomy routing, -1 unknown); ``disputed_from`` and
    ``disputed_label``: an accepted label the model disputed and the model's label (the item then
    waits for a reviewer, status ``disputed``; both stay after the review)."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("project_id", "external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict] = mapped_column(JSON)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    answer_count: Mapped[int] = mapped_column(Integer, default=0)
    open_leases: Mapped[int] = mapped_column(Integer, default=0)
    needed: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    learn_weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    branch: Mapped[int] = mapped_column(Integer, default=-1)
    # the model version that labelled the item with no human answer (source "model"), else None
    model_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    disputed_from: Mapped[int | None] = mapped_column(Integer, nullable=True)
    disputed_label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# the pool in the order next_task reads it: highest priority first, oldest first among equals
Index("ix_items_pool", Item.project_id, Item.is_gold, Item.status, Item.priority.desc(), Item.id)
# gold items in the order next_task hands them out (fewest answers first): it stops at the first
# few an annotator has not seen instead of sorting every gold item; partial, so that an answer to
# any other item does not move an entry of it
Index(
    "ix_items_gold_pool",
    Item.project_id,
    Item.answer_count,
    Item.id,
    sqlite_where=Item.is_gold.is_(True),
    postgresql_where=Item.is_gold.is_(True),
)
# pages of a project's items in id order (results, refit): a range scan, never a sort of all items
Index("ix_items_page", Item.project_id, Item.is_gold, Item.id)
# the items the model disputed (label errors), for progress(): a partial index of a few rows
Index(
    "ix_items_disputed",
    Item.project_id,
    Item.status,
    sqlite_where=Item.disputed_from.is_not(None),
    postgresql_where=Item.disputed_from.is_not(None),
)
# what progress() counts, read from the index alone
Index("ix_items_progress", Item.project_id, Item.status, Item.answer_count, Item.confidence)


class GoldLabel(Base):
    """The true label of a gold item (never shown to annotators) and an optional hint."""

    __tablename__ = "gold_labels"
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[int] = mapped_column(Integer)
    hint: Mapped[str | None] = mapped_column(Text, nullable=True)


class Annotator(Base):
    """A person or a model working on a project. Skill evidence as in ``SkillBook``: gold answers
    (``gold_right`` of ``gold_total``; ``since_*``: those since the last refit), the refit's
    expected agreements (``model_right`` of ``model_total``), and answer times (``timed``,
    ``fast``). ``branch_skills``: accuracy per top-level branch of a taxonomy (refit)."""

    __tablename__ = "annotators"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    answer_count: Mapped[int] = mapped_column(Integer, default=0)
    gold_right: Mapped[float] = mapped_column(Float, default=0.0)
    gold_total: Mapped[float] = mapped_column(Float, default=0.0)
    since_right: Mapped[float] = mapped_column(Float, default=0.0)
    since_total: Mapped[float] = mapped_column(Float, default=0.0)
    model_right: Mapped[float] = mapped_column(Float, default=0.0)
    model_total: Mapped[float] = mapped_column(Float, default=0.0)
    timed: Mapped[float] = mapped_column(Float, default=0.0)
    fast: Mapped[float] = mapped_column(Float, default=0.0)
    branch_skills: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiToken(Base):
    """An API token, stored as the SHA-256 hex digest of its high-entropy secret."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Lease(Base):
    """An item handed to an annotator until ``expires_at``; ``state``: open, done, skipped, expired.
    An annotator holds at most one open lease.
    ``suggestions``: the model's top labels when leased; ``suggestions_shown``: whether the task
    showed them (False: hidden, to measure anchoring; None: there were none)."""

    __tablename__ = "leases"
    __table_args__ = (
        Index("ix_leases_open", "state", "expires_at"),
        Index("ix_leases_item_annotator", "item_id", "annotator_id"),
        Index("ix_leases_annotator_state", "annotator_id", "state"),
        # an annotator holds one open lease: two ``next`` calls at once cannot both insert one
        Index(
            "ux_leases_one_open",
            "annotator_id",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="open")
    suggestions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    suggestions_shown: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Answer(Base):
    """One human answer: at most one per (item, annotator) and per lease; a reviewer's final
    decision is an answer with ``is_review``. ``suggestions`` and ``suggestions_shown``: the
    lease's (what the model suggested, and whether the annotator saw it)."""

    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id"),
        UniqueConstraint("annotator_id", "idempotency_key"),
        Index("ix_answers_project", "project_id", "id"),
        Index("ix_answers_kinds", "project_id", "is_gold", "is_review"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"))
    lease_id: Mapped[str | None] = mapped_column(ForeignKey("leases.id", ondelete="SET NULL"), unique=True)
    label: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    suggestions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    suggestions_shown: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    is_review: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class JobClaim(Base):
    """A job that runs on one project in one process at a time (``job``: ``refit``, ``model``): ``holder``
    (a random id of the process's claim) holds it until ``expires_at`` and renews it while it runs,
    so a holder that died leaves a claim the next one takes over once it lapses."""

    __tablename__ = "job_claims"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ModelVersion(Base):
    """A version of a model whose predictions vote; ``temperature``: the reliability the refit
    learned on gold (probabilities enter the posterior raised to it). ``state``: ``active`` (votes
    and suggests; uploaded versions are), ``pending`` (the service's model writing its
    predictions), ``rejected`` (worse on gold than the version in use: kept, never used).
    The service's own versions record their training set (``training_size``, ``training_hash``)
    and ``metrics`` (cross-fitted accuracy and calibration on gold, the automation threshold);
    ``confirmed_at``: when a fresh sample of the items above the threshold, labelled by people,
    proved the threshold (``service.automation``: until then the version labels nothing)."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(200))
    temperature: Mapped[float] = mapped_column(Float, default=1.0)
    prediction_count: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    training_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    training_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ModelArtifact(Base):
    """The fitted parameters of a service-trained model version as data (an ``.npz`` of arrays,
    no pickles), with their SHA-256: written and read by the service only."""

    __tablename__ = "model_artifacts"
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Audit(Base):
    """An item the model was sure enough to label, sent to humans instead to measure it: the
    model's ``label`` and ``confidence``; its outcome is the label the humans settle on."""

    __tablename__ = "audits"
    __table_args__ = (Index("ix_audits_version", "model_version_id"),)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    label: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Prediction(Base):
    """A model version's top labels for one item: ``labels`` codes and ``probs`` (same order)."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("item_id", "model_version_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    labels: Mapped[list] = mapped_column(JSON)
    probs: Mapped[list] = mapped_column(JSON)


class Event(Base):
    """The append-only log of decisions: who (annotator, or the engine) did what to which item, why."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_project", "project_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), nullable=True)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
