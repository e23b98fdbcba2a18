"""The labeling loop over the database: projects, items, gold, annotators, leases, answers, review.

Every method is one short transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: row locks with
``FOR UPDATE SKIP LOCKED`` and conditional updates), so any number of threads and processes may
share one database. The decision after an answer costs O(answers of that item); the full EM refit
of skills runs as a job (``refit``), never inside a request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pandas as pd

from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service.types import (
    AnnotatorInfo,
    GoldIn,
    ItemIn,
    ItemState,
    Kind,
    ModelVersionInfo,
    Progress,
    ProjectInfo,
    RefitReport,
    ResultRow,
    ReviewTask,
    Role,
    SubmitOut,
    TaskOut,
)

ProgressCallback = Callable[[int], None]
"""Called after each stored batch with the number of rows stored so far."""

DEFAULT_URL = "sqlite:///crowdloop.db"
URL_VARIABLE = "CROWDLOOP_DATABASE_URL"


def open_service(url: str | None = None, *, seed: int | None = None) -> LabelingService:
    """The service on ``url`` (default: ``$CROWDLOOP_DATABASE_URL``, else ``./crowdloop.db``),
    with the schema migrated to the latest version. ``seed`` fixes the gold draws (tests)."""
    raise NotImplementedError


def refit_projects(url: str | None = None, project: int | str | None = None) -> list[RefitReport]:
    """The ``crowdloop refit`` job: a full EM refit of one project (id or name) or of all."""
    raise NotImplementedError


class LabelingService:
    """The labeling loop. Build it with ``open_service``. Projects are referred to by id;
    annotators by the ``AnnotatorInfo`` that ``authenticate`` returns (the service re-reads their
    role and status in every call). Errors: ``NotFoundError``, ``AuthError``, ``ForbiddenError``,
    ``ConflictError``, ``InputError``/``UnknownLabelError`` (bad input), ``ConfigError``."""

    # -- projects ------------------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        labels: LabelSpace | Taxonomy,
        policy: ConsensusPolicy | None = None,
        *,
        rules: SkillRules | None = None,
        gold_rate: float = 0.1,
        lease_seconds: int = 600,
        model_votes: bool = True,
        suggestions: int = 3,
    ) -> ProjectInfo:
        """A new project. ``gold_rate``: share of tasks that are gold items; ``lease_seconds``: how
        long an annotator holds a task; ``model_votes``: the latest model version's predictions
        vote in the consensus (else they are only suggestions); ``suggestions``: top-k pre-labels
        shown with a task (0: none). Raises ``ConflictError`` for a taken name."""
        raise NotImplementedError

    def get_project(self, project: int | str) -> ProjectInfo:
        """A project by id or name (``NotFoundError``)."""
        raise NotImplementedError

    def list_projects(self) -> list[ProjectInfo]:
        raise NotImplementedError

    # -- items and gold ------------------------------------------------------------------------

    def import_items(
        self,
        project_id: int,
        rows: Iterable[ItemIn],
        *,
        batch_size: int = 5000,
        progress: ProgressCallback | None = None,
        model: tuple[str, str] | None = None,
    ) -> int:
        """Store items in batches of ``batch_size`` (fixed-size statements, whatever the count);
        returns the number stored. ``model=(name, version)`` names the model of the rows'
        ``predictions``. An external id already in the project, or repeated, raises
        ``InputError`` naming the row; the batches before it stay stored."""
        raise NotImplementedError

    def add_gold(self, project_id: int, rows: Iterable[GoldIn], *, batch_size: int = 5000) -> int:
        """Make imported items gold (true label, optional hint); returns the number marked."""
        raise NotImplementedError

    def item_state(self, project_id: int, external_id: str) -> ItemState:
        """The consensus state of one item (for owners and reviewers, never annotators)."""
        raise NotImplementedError

    # -- annotators and tokens -----------------------------------------------------------------

    def add_annotator(
        self, project_id: int, name: str, *, role: Role = "annotator", kind: Kind = "human"
    ) -> tuple[AnnotatorInfo, str]:
        """A new annotator and their API token, returned in plain text this once (only its
        SHA-256 is stored)."""
        raise NotImplementedError

    def new_token(self, annotator_id: int) -> str:
        """Another token for an annotator (e.g. a lost one); earlier tokens stay valid until revoked."""
        raise NotImplementedError

    def revoke_tokens(self, annotator_id: int) -> int:
        """Revoke every token of an annotator; returns how many."""
        raise NotImplementedError

    def authenticate(self, token: str) -> AnnotatorInfo:
        """The annotator a bearer token belongs to (``AuthError`` when unknown or revoked). A
        banned annotator still authenticates; the loop refuses them with ``ForbiddenError``."""
        raise NotImplementedError

    def get_annotator(self, annotator_id: int) -> AnnotatorInfo:
        raise NotImplementedError

    def set_role(self, annotator_id: int, role: Role) -> AnnotatorInfo:
        """Promote or demote an annotator (owner's decision)."""
        raise NotImplementedError

    def annotator_skills(self, project_id: int) -> list[AnnotatorInfo]:
        """Every annotator of the project with skill, answers and gold record."""
        raise NotImplementedError

    # -- the loop ------------------------------------------------------------------------------

    def next_task(self, annotator: AnnotatorInfo) -> TaskOut | None:
        """Lease the next task to an active annotator (None: nothing left for them).

        With probability ``gold_rate`` a gold item they have not answered; otherwise the open item
        with the highest expected information per cost (``crowdloop.consensus.priority``), never
        one they answered or hold, never beyond the answers the item still needs counting open
        leases; in a taxonomy, weighted by the annotator's skill in the item's predicted branch.
        Expired leases return to the pool first."""
        raise NotImplementedError

    def submit(
        self,
        annotator: AnnotatorInfo,
        lease_id: str,
        label: Any,
        *,
        duration_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> SubmitOut:
        """Store the answer to a leased task and, in the same transaction, update the item's
        posterior and status (accept / more / escalate) or, for gold, the annotator's skill and a
        possible ban. A retry with the same lease (or the same ``idempotency_key``) returns the
        stored answer with ``duplicate=True``. Raises ``UnknownLabelError`` for a label outside the
        label space (taxonomy inner nodes are fine), ``ConflictError`` for an expired, skipped or
        foreign lease."""
        raise NotImplementedError

    def skip(self, annotator: AnnotatorInfo, lease_id: str) -> None:
        """Give a leased task back; it is not offered to this annotator again."""
        raise NotImplementedError

    # -- review --------------------------------------------------------------------------------

    def review_queue(self, project_id: int, *, limit: int = 50) -> list[ReviewTask]:
        """Escalated items, oldest first, with the crowd's answers."""
        raise NotImplementedError

    def review(self, reviewer: AnnotatorInfo, project_id: int, external_id: str, label: Any) -> ItemState:
        """A reviewer's (or owner's) final label for an item (escalated or not)."""
        raise NotImplementedError

    # -- models --------------------------------------------------------------------------------

    def add_model_predictions(
        self,
        project_id: int,
        model: str,
        version: str,
        probabilities: Mapping[str, Mapping[Any, float]] | pd.DataFrame,
        *,
        batch_size: int = 5000,
        top_k: int = 10,
    ) -> ModelVersionInfo:
        """Store a model version's probabilities per item (a mapping external id -> {label: p},
        or a long frame ``task, label, probability``), keeping the ``top_k`` labels of each item.
        The newest version of a model votes (if the project's ``model_votes``) and suggests; the
        items it covers are re-decided in the same batches."""
        raise NotImplementedError

    def model_versions(self, project_id: int) -> list[ModelVersionInfo]:
        raise NotImplementedError

    # -- results -------------------------------------------------------------------------------

    def progress(self, project_id: int) -> Progress:
        raise NotImplementedError

    def results(self, project_id: int, *, batch_size: int = 10000) -> Iterator[ResultRow]:
        """Every non-gold item with its label and calibrated confidence, read in fixed-size pages."""
        raise NotImplementedError

    def answers_frame(self, project_id: int) -> pd.DataFrame:
        """The human answers as a crowd-kit frame: ``task, worker, label`` (plus ``duration_ms``,
        ``gold``: whether the item is gold)."""
        raise NotImplementedError

    def events(self, project_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
        """The latest decisions of the append-only event log, newest first."""
        raise NotImplementedError

    # -- jobs ----------------------------------------------------------------------------------

    def refit(self, project_id: int) -> RefitReport:
        """Full EM refit (``crowdloop.consensus.DynamicConsensus`` on every answer, gold clamped):
        annotator skills, the model versions' temperatures, the calibrator of the online decision,
        then every open item re-decided. A job (``crowdloop refit``), never inside a request."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the database connections."""
        raise NotImplementedError
