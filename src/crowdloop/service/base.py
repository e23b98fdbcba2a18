"""The shared core of the labeling service: transactions, caches, and deciding items again."""

from __future__ import annotations

import contextlib
import hashlib
import random
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Row
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from crowdloop.consensus import SkillRules
from crowdloop.errors import NotFoundError
from crowdloop.labels import LabelSpace
from crowdloop.service.item_decisions import Executor, ItemDecisions, skill_book
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.stored_text import EXTERNAL_ID_LENGTH, checked_name, text_problem
from crowdloop.service.types import AnnotatorInfo, ItemState, ProjectInfo
from crowdloop.store import db
from crowdloop.store import model_queries as mq
from crowdloop.store import queries as q
from crowdloop.store.direct import CompiledStatement, DirectConnection, direct_transaction
from crowdloop.store.schema import Annotator, Item, ModelVersion, Project, utcnow

T = TypeVar("T")
PAGE = 2_000
SETTLED = ("accepted", "reviewed")
_RETRIES = 8


def make_token() -> str:
    return "cl_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure (PostgreSQL), a busy database (SQLite) or a lost
    connection (the pool has dropped it): try again."""
    code = getattr(exc.orig, "sqlstate", None)
    return exc.connection_invalidated or code in ("40P01", "40001") or "database is locked" in str(exc.orig)


class Prefixed:
    """The columns of one table inside a joined row, by their plain names (``a_status`` -> ``status``)."""

    __slots__ = ("_prefix", "_row")

    def __init__(self, row: Row, prefix: str) -> None:
        self._row, self._prefix = row, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._prefix + name)


class ProjectRow:
    """A project's light columns (``queries.PROJECT``); its label space, policy, rules and
    calibrator are read from the same transaction on first use (the service caches what they
    give, so most requests never read them)."""

    def __init__(self, row: Row, db: Executor) -> None:
        self._row, self._db, self._heavy = row, db, None

    def __getattr__(self, name: str) -> Any:
        if name in q.PROJECT_HEAVY_COLUMNS:
            if self._heavy is None:
                self._heavy = self._db.execute(q.PROJECT_HEAVY, {"project": self._row.id}).one()
            return getattr(self._heavy, name)
        return getattr(self._row, name)


class ServiceBase:
    """What every part of the labeling service shares: the engine, transactions with retries,
    the projects' cached configuration (``config``: ``ProjectConfig``) and the decisions of their
    items (``decisions``: ``ItemDecisions``)."""

    def __init__(self, engine: Engine, *, seed: int | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self._clock = clock or utcnow
        self._sessions = db.session_factory(engine)
        self._readers = db.session_factory(db.reader(engine))
        self._pg = db.is_postgresql(engine)
        # SQLite has one writer at a time: this process's threads queue on a lock of their own
        # instead of in SQLite's busy handler, which sleeps up to 100 ms between tries
        self._writer = contextlib.nullcontext() if self._pg else threading.RLock()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.config = ProjectConfig()
        self.decisions = ItemDecisions(self.config)
        self._direct: dict[tuple, CompiledStatement] = {}  # the hot path's statements, compiled
        self.checkpointer: db.WalCheckpointer | None = None

    def _run(self, work: Callable[[Session], T]) -> T:
        """``work`` in one transaction, retried on deadlocks and serialization failures."""
        return self._retried(lambda: db.transaction(self._sessions), work, self._writer)

    def _read(self, work: Callable[[Session], T]) -> T:
        """``work`` that only reads, in one transaction that waits for no writer (SQLite: deferred,
        a snapshot beside the write lock)."""
        return self._retried(lambda: db.transaction(self._readers), work, contextlib.nullcontext())

    def _run_direct(self, work: Callable[[DirectConnection], T], *, write: bool = True) -> T:
        """``work`` in one transaction on the driver's connection (``store.direct``: the hot path);
        ``write=False`` for one that only reads (see ``_read``)."""
        return self._retried(
            lambda: direct_transaction(self.engine, self._direct, write=write),
            work,
            self._writer if write else contextlib.nullcontext(),
        )

    def _retried(
        self,
        transaction: Callable[[], contextlib.AbstractContextManager],
        work: Callable[[Any], T],
        writer: contextlib.AbstractContextManager,
    ) -> T:
        for attempt in range(_RETRIES):
            try:
                with writer, transaction() as session:
                    return work(session)
            except DBAPIError as exc:
                if isinstance(exc, IntegrityError) or not retryable(exc) or attempt == _RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1) * (1 + self._draw()))
        raise AssertionError("unreachable")

    def _draw(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def _locked(self, statement: Any, *, skip: bool = False, of: Any = None) -> Any:
        """``SELECT ... FOR UPDATE [SKIP LOCKED]`` on PostgreSQL; SQLite's transaction already
        holds the write lock."""
        return statement.with_for_update(skip_locked=skip, of=of) if self._pg else statement

    def _project(self, db: Executor, project_id: int) -> ProjectRow:
        row = None
        if isinstance(project_id, int):
            row = db.execute(q.PROJECT, {"project": project_id}).first()
        if row is None:
            raise NotFoundError(f"no project with id {project_id!r}")
        return ProjectRow(row, db)

    def _info(self, project: ProjectRow | Project) -> ProjectInfo:
        return ProjectInfo(
            id=project.id,
            name=project.name,
            labels=self.config.labels(project),
            policy=self.config.policy(project),
            rules=self.config.rules(project),
            gold_rate=project.gold_rate,
            lease_seconds=project.lease_seconds,
            model_votes=project.model_votes,
            suggestions=project.suggestions,
            created_at=project.created_at,
            reviewers_see_gold=project.reviewers_see_gold,
            text_fields=project.text_fields,
            audit_rate=project.audit_rate,
            hide_rate=project.hide_rate,
        )

    def _annotator_info(self, annotator: Annotator | Row, rules: SkillRules) -> AnnotatorInfo:
        return AnnotatorInfo(
            id=annotator.id,
            project_id=annotator.project_id,
            name=annotator.name,
            role=annotator.role,
            kind=annotator.kind,
            status=annotator.status,
            skill=float(skill_book([annotator], rules).accuracy()[0]),
            answers=annotator.answer_count,
            gold_right=round(annotator.gold_right),
            gold_total=round(annotator.gold_total),
        )

    def _rules_of(self, db: Executor, project_id: int) -> SkillRules:
        """The project's skill rules (its light columns are read to learn their version)."""
        return self.config.rules(self._project(db, project_id))

    def _event(self, db: Executor, project_id: int, kind: str, detail: dict, **who: int | None) -> None:
        row = {"project_id": project_id, "item_id": None, "annotator_id": None, **who}
        db.execute(q.NEW_EVENTS, [{**row, "kind": kind, "detail": detail, "created_at": utcnow()}])

    def _annotator(self, session: Session, annotator_id: int) -> Annotator:
        annotator = session.get(Annotator, annotator_id) if isinstance(annotator_id, int) else None
        if annotator is None:
            raise NotFoundError(f"no annotator with id {annotator_id!r}")
        return annotator

    def _item(self, session: Session, project_id: int, external_id: str, *, lock: bool = False) -> Item:
        item = None
        if not text_problem(str(external_id), EXTERNAL_ID_LENGTH):  # no stored id could match
            statement = self._locked(q.ITEM_BY_EXTERNAL_ID) if lock else q.ITEM_BY_EXTERNAL_ID
            item = session.scalars(statement, {"project": project_id, "external_id": str(external_id)}).first()
        if item is None:
            raise NotFoundError(f"no item {external_id!r} in project {project_id}")
        return item

    @staticmethod
    def _state(item: Item, labels: LabelSpace) -> ItemState:
        return ItemState(
            item=item.external_id,
            status=item.status,
            label=None if item.label is None else labels.name(item.label),
            confidence=item.confidence,
            answers=item.answer_count,
            open_leases=item.open_leases,
            needed=item.needed,
            is_gold=item.is_gold,
        )

    def _model_version(self, project_id: int, name: str, version: str) -> int:
        """The id of a model version, created when new."""
        name, version = checked_name(name, "model"), checked_name(version, "model version")

        def work(session: Session) -> int:
            self._project(session, project_id)
            found = session.scalar(mq.VERSION_ID, {"project": project_id, "name": name, "version": version})
            if found is not None:
                return found
            row = ModelVersion(
                project_id=project_id,
                name=name,
                version=version,
                temperature=1.0,
                prediction_count=0,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return row.id

        try:
            return self._run(work)
        except IntegrityError:  # created concurrently
            return self._run(work)

    def close(self) -> None:
        """Stop the log checkpoints (if any) and release the database connections."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
