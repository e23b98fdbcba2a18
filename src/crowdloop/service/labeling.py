"""The labeling loop over the database: projects, items, gold, annotators, leases, answers, review.

Every method is one short transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: row locks with
``FOR UPDATE SKIP LOCKED`` and conditional updates), so any number of threads and processes may
share one database. The decision after an answer costs O(answers of that item); the full EM refit
of skills runs as a job (``refit``), never inside a request.

Invariants the transactions keep, for every non-gold item: ``answer_count + open_leases <=
max_overlap``; ``open_leases`` equals its open leases; an annotator answers an item at most once;
a lease is held by one annotator and yields at most one answer.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import pickle
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Integer, Row, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from crowdloop.aggregation.calibration import TopLabelCalibrator
from crowdloop.consensus import ACCEPTED, ESCALATED, MORE, ConsensusPolicy, SkillBook, SkillRules
from crowdloop.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    UnknownLabelError,
)
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service import codec
from crowdloop.service.online import Decisions, OnlineConsensus, Opinions
from crowdloop.service.refit import StoredAnswers
from crowdloop.service.refit import refit as fit_project
from crowdloop.service.types import (
    KINDS,
    ROLES,
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
    ReviewAnswer,
    ReviewTask,
    Role,
    SubmitOut,
    Suggestion,
    TaskOut,
)
from crowdloop.store import db
from crowdloop.store import queries as q
from crowdloop.store.db import DEFAULT_URL, URL_VARIABLE
from crowdloop.store.schema import (
    Annotator,
    Answer,
    ApiToken,
    Event,
    GoldLabel,
    Item,
    Lease,
    ModelVersion,
    Prediction,
    Project,
    utcnow,
)

__all__ = ["DEFAULT_URL", "URL_VARIABLE", "LabelingService", "open_service", "refit_projects"]

ProgressCallback = Callable[[int], None]
"""Called after each stored batch with the number of rows stored so far."""

T = TypeVar("T")
MAX_BATCH = 10_000
PAGE = 2_000
SETTLED = ("accepted", "reviewed")
_RETRIES = 8


def open_service(
    url: str | None = None, *, seed: int | None = None, clock: Callable[[], datetime] | None = None
) -> LabelingService:
    """The service on ``url`` (default: ``$CROWDLOOP_DATABASE_URL``, else ``./crowdloop.db``),
    with the schema migrated to the latest version. ``seed`` fixes the gold draws and ``clock``
    (a function returning an aware UTC datetime) the time leases are measured by (tests)."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    return LabelingService(engine, seed=seed, clock=clock)


def refit_projects(url: str | None = None, project: int | str | None = None) -> list[RefitReport]:
    """The ``crowdloop refit`` job: a full EM refit of one project (id or name) or of all."""
    service = open_service(url)
    try:
        targets = [service.get_project(project)] if project is not None else service.list_projects()
        return [service.refit(p.id) for p in targets]
    finally:
        service.close()


def _update(model: type) -> Any:
    """An UPDATE of ``model`` rows that leaves the session's objects alone (the loop reads what it
    needs back with RETURNING, or not at all)."""
    return update(model).execution_options(synchronize_session=False)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _batched(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure (PostgreSQL) or a busy database (SQLite): try again."""
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40P01", "40001") or "database is locked" in str(exc.orig)


class ProjectRow:
    """A project's light columns (``queries.PROJECT``); its label space, policy, rules and
    calibrator are read from the same transaction on first use (the service caches what they
    give, so most requests never read them)."""

    def __init__(self, row: Row, session: Session) -> None:
        self._row, self._session, self._heavy = row, session, None

    def __getattr__(self, name: str) -> Any:
        if name in q.PROJECT_HEAVY_COLUMNS:
            if self._heavy is None:
                self._heavy = self._session.connection().execute(q.PROJECT_HEAVY, {"project": self._row.id}).one()
            return getattr(self._heavy, name)
        return getattr(self._row, name)


class LabelingService:
    """The labeling loop. Build it with ``open_service``. Projects are referred to by id;
    annotators by the ``AnnotatorInfo`` that ``authenticate`` returns (the service re-reads their
    role and status in every call). Errors: ``NotFoundError``, ``AuthError``, ``ForbiddenError``,
    ``ConflictError``, ``InputError``/``UnknownLabelError`` (bad input), ``ConfigError``."""

    def __init__(self, engine: Engine, *, seed: int | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self._clock = clock or utcnow
        self._sessions = db.session_factory(engine)
        self._pg = db.is_postgresql(engine)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._codes: dict[int, tuple[LabelSpace, dict]] = {}  # label -> code, the fast path of _code
        self._labels: dict[int, LabelSpace] = {}  # a project's label space, policy and rules never change
        self._policy_cache: dict[int, ConsensusPolicy] = {}
        self._rule_cache: dict[int, SkillRules] = {}
        self._deciders: dict[tuple[int, Any], OnlineConsensus] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def _run(self, work: Callable[[Session], T]) -> T:
        """``work`` in one transaction, retried on deadlocks and serialization failures."""
        for attempt in range(_RETRIES):
            try:
                with db.transaction(self._sessions) as session:
                    return work(session)
            except DBAPIError as exc:
                if isinstance(exc, IntegrityError) or not _retryable(exc) or attempt == _RETRIES - 1:
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

    def _project(self, session: Session, project_id: int) -> ProjectRow:
        row = None
        if isinstance(project_id, int):
            row = session.connection().execute(q.PROJECT, {"project": project_id}).first()
        if row is None:
            raise NotFoundError(f"no project with id {project_id!r}")
        return ProjectRow(row, session)

    def _code(self, labels: LabelSpace, label: Any, *, field: str = "label") -> int:
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

    def _rules(self, project: ProjectRow) -> SkillRules:
        rules = self._rule_cache.get(project.id)
        if rules is None:
            rules = self._rule_cache[project.id] = codec.rules_from_json(project.rules)
        return rules

    def _policy(self, project: ProjectRow) -> ConsensusPolicy:
        policy = self._policy_cache.get(project.id)
        if policy is None:
            policy = self._policy_cache[project.id] = codec.policy_from_json(project.policy)
        return policy

    def _label_space(self, project: ProjectRow) -> LabelSpace:
        labels = self._labels.get(project.id)
        if labels is None:
            labels = self._labels[project.id] = codec.labels_from_json(project.labels)
        return labels

    def _decider(self, project: ProjectRow) -> OnlineConsensus:
        key = (project.id, project.refit_at)
        decider = self._deciders.get(key)
        if decider is None:
            calibrator: TopLabelCalibrator | None = pickle.loads(project.calibrator) if project.calibrator else None
            decider = OnlineConsensus(
                self._label_space(project),
                self._policy(project),
                self._rules(project),
                typical_skill=project.typical_skill,
                calibrator=calibrator,
            )
            self._deciders = {k: v for k, v in self._deciders.items() if k[0] != project.id}
            self._deciders[key] = decider
        return decider

    def _info(self, project: ProjectRow | Project) -> ProjectInfo:
        return ProjectInfo(
            id=project.id,
            name=project.name,
            labels=self._label_space(project),
            policy=self._policy(project),
            rules=self._rules(project),
            gold_rate=project.gold_rate,
            lease_seconds=project.lease_seconds,
            model_votes=project.model_votes,
            suggestions=project.suggestions,
            created_at=project.created_at,
        )

    @staticmethod
    def _book(annotators: list[Annotator], rules: SkillRules) -> SkillBook:
        """A ``SkillBook`` holding the stored evidence of ``annotators`` (in that order)."""
        book = SkillBook(len(annotators), rules)
        for name in ("gold_right", "gold_total", "since_right", "since_total", "model_right", "model_total"):
            setattr(book, name, np.array([getattr(a, name) for a in annotators], dtype=np.float64))
        book.timed = np.array([a.timed for a in annotators], dtype=np.float64)
        book.fast = np.array([a.fast for a in annotators], dtype=np.float64)
        return book

    def _annotator_info(self, annotator: Annotator, rules: SkillRules) -> AnnotatorInfo:
        return AnnotatorInfo(
            id=annotator.id,
            project_id=annotator.project_id,
            name=annotator.name,
            role=annotator.role,
            kind=annotator.kind,
            status=annotator.status,
            skill=float(self._book([annotator], rules).accuracy()[0]),
            answers=annotator.answer_count,
            gold_right=round(annotator.gold_right),
            gold_total=round(annotator.gold_total),
        )

    def _rules_of(self, session: Session, project_id: int) -> SkillRules:
        return self._rules(self._project(session, project_id))

    def _event(self, session: Session, project_id: int, kind: str, detail: dict, **who: int | None) -> None:
        session.add(Event(project_id=project_id, kind=kind, detail=detail, created_at=utcnow(), **who))

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
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ConfigError(f"project name must be 1-200 characters, got {name!r}")
        if not isinstance(labels, LabelSpace):
            raise ConfigError("labels must be a LabelSpace or a Taxonomy")
        if not (isinstance(gold_rate, int | float) and 0 <= gold_rate <= 1):
            raise ConfigError(f"gold_rate must be in [0, 1], got {gold_rate!r}")
        if not (isinstance(lease_seconds, int) and 1 <= lease_seconds <= 7 * 86400):
            raise ConfigError(f"lease_seconds must be an integer in [1, 604800], got {lease_seconds!r}")
        if not (isinstance(suggestions, int) and 0 <= suggestions <= 20):
            raise ConfigError(f"suggestions must be an integer in [0, 20], got {suggestions!r}")
        policy = policy or ConsensusPolicy()
        rules = rules or SkillRules()
        row = Project(
            name=name.strip(),
            is_taxonomy=isinstance(labels, Taxonomy),
            labels=codec.labels_to_json(labels),
            policy=codec.policy_to_json(policy),
            rules=codec.rules_to_json(rules),
            gold_rate=float(gold_rate),
            lease_seconds=lease_seconds,
            model_votes=bool(model_votes),
            suggestions=suggestions,
            created_at=utcnow(),
        )

        def work(session: Session) -> ProjectInfo:
            session.add(row)
            session.flush()
            self._labels[row.id] = labels
            return self._info(row)

        try:
            return self._run(work)
        except IntegrityError:
            raise ConflictError(f"a project named {name.strip()!r} exists already") from None

    def get_project(self, project: int | str) -> ProjectInfo:
        """A project by id or name (``NotFoundError``)."""

        def work(session: Session) -> ProjectInfo:
            if isinstance(project, str) and not project.isdigit():
                row = session.scalars(select(Project).where(Project.name == project)).first()
                if row is None:
                    raise NotFoundError(f"no project named {project!r}")
                return self._info(row)
            return self._info(self._project(session, int(project)))

        return self._run(work)

    def list_projects(self) -> list[ProjectInfo]:
        return self._run(lambda s: [self._info(p) for p in s.scalars(select(Project).order_by(Project.id))])

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
        _check_batch(batch_size)
        info = self.get_project(project_id)
        version_id = self._model_version(project_id, *model) if model else None
        stored = 0
        for batch in _batched(rows, batch_size):
            parsed = _parse_items(batch, info.labels, first_row=stored + 1)
            if any(p["predictions"] for p in parsed) and version_id is None:
                raise InputError(
                    "items carry predictions but no model is named",
                    source="items",
                    hint="Pass model=(name, version).",
                )
            self._run(
                lambda s, parsed=parsed, first=stored + 1: self._store_items(s, project_id, parsed, first, version_id)
            )
            stored += len(parsed)
            if progress is not None:
                progress(stored)
        return stored

    def _store_items(
        self, session: Session, project_id: int, parsed: list[dict], first_row: int, version_id: int | None
    ) -> None:
        project = self._project(session, project_id)
        ids = [p["external_id"] for p in parsed]
        taken = set(
            session.scalars(select(Item.external_id).where(Item.project_id == project_id, Item.external_id.in_(ids)))
        )
        if taken:
            rows = [first_row + i for i, x in enumerate(ids) if x in taken]
            raise InputError(
                f"item {ids[rows[0] - first_row]!r} is already in the project",
                source="items",
                rows=rows,
                field="external_id",
                unit="item",
            )
        decider = self._decider(project)
        soft = None
        if version_id is not None and project.model_votes:
            soft = _soft_frame(
                [(i, version_id, p["predictions"]) for i, p in enumerate(parsed) if p["predictions"]], {version_id: 1.0}
            )
        table = decider.decide(Opinions.of(len(parsed), [], [], [], soft))
        now = utcnow()
        values = []
        for i, p in enumerate(parsed):
            gold = p["gold"] is not None
            values.append(
                {
                    "project_id": project_id,
                    "external_id": p["external_id"],
                    "payload": p["payload"],
                    "is_gold": gold,
                    "status": "gold" if gold else table.status[i],
                    "label": (p["gold"] if gold else _code_or_none(table.label[i])),
                    "confidence": 1.0 if gold else _float_or_none(table, i),
                    "answer_count": 0,
                    "open_leases": 0,
                    "needed": 0 if gold else int(table.next[i]),
                    "priority": 0.0 if gold else float(table.priority[i]),
                    "branch": -1 if gold else int(table.branch[i]),
                    "updated_at": now,
                }
            )
        session.execute(insert(Item.__table__), values)  # one executemany, no RETURNING (row-at-a-time on SQLite)
        item_ids: list[int | None] = [None] * len(values)
        if any(p["gold"] is not None or p["predictions"] for p in parsed) or (table.status == ACCEPTED).any():
            found = dict(
                session.execute(
                    select(Item.external_id, Item.id).where(Item.project_id == project_id, Item.external_id.in_(ids))
                ).all()
            )
            item_ids = [found[x] for x in ids]
        gold_rows = [
            {"item_id": item_id, "label": p["gold"], "hint": p["hint"]}
            for item_id, p in zip(item_ids, parsed, strict=True)
            if p["gold"] is not None
        ]
        if gold_rows:
            session.execute(insert(GoldLabel), gold_rows)
        predictions = [
            {
                "model_version_id": version_id,
                "item_id": item_id,
                "labels": p["predictions"][0],
                "probs": p["predictions"][1],
            }
            for item_id, p in zip(item_ids, parsed, strict=True)
            if p["predictions"]
        ]
        if predictions:
            session.execute(insert(Prediction), predictions)
            session.execute(
                _update(ModelVersion)
                .where(ModelVersion.id == version_id)
                .values(prediction_count=ModelVersion.prediction_count + len(predictions))
            )
        automated = [
            {
                "project_id": project_id,
                "item_id": item_id,
                "kind": ACCEPTED,
                "created_at": now,
                "detail": {"by": "model", "label": v["label"], "confidence": v["confidence"], "answers": 0},
            }
            for item_id, v in zip(item_ids, values, strict=True)
            if v["status"] == ACCEPTED
        ]
        if automated:
            session.execute(insert(Event), automated)

    def add_gold(self, project_id: int, rows: Iterable[GoldIn], *, batch_size: int = 5000) -> int:
        """Make imported items gold (true label, optional hint); returns the number marked."""
        _check_batch(batch_size)
        info = self.get_project(project_id)
        marked = 0
        for batch in _batched(rows, batch_size):
            codes = _encode_column([g.label for g in batch], info.labels, "gold", marked + 1)

            def work(
                session: Session, batch: list[GoldIn] = batch, codes: np.ndarray = codes, first: int = marked + 1
            ) -> None:
                ids = [str(g.external_id) for g in batch]
                found = dict(
                    session.execute(
                        select(Item.external_id, Item.id).where(
                            Item.project_id == project_id, Item.external_id.in_(ids)
                        )
                    ).all()
                )
                missing = [first + i for i, x in enumerate(ids) if x not in found]
                if missing:
                    raise InputError(
                        f"gold for unknown item {ids[missing[0] - first]!r}", source="gold", rows=missing, unit="row"
                    )
                item_ids = [found[x] for x in ids]
                session.execute(
                    _update(Item),
                    [
                        {
                            "id": i,
                            "is_gold": True,
                            "status": "gold",
                            "label": int(c),
                            "confidence": 1.0,
                            "needed": 0,
                            "priority": 0.0,
                        }
                        for i, c in zip(item_ids, codes, strict=True)
                    ],
                )
                existing = set(session.scalars(select(GoldLabel.item_id).where(GoldLabel.item_id.in_(item_ids))))
                fresh = [
                    {"item_id": i, "label": int(c), "hint": g.hint}
                    for i, c, g in zip(item_ids, codes, batch, strict=True)
                    if i not in existing
                ]
                if fresh:
                    session.execute(insert(GoldLabel), fresh)
                changed = [
                    {"item_id": i, "label": int(c), "hint": g.hint}
                    for i, c, g in zip(item_ids, codes, batch, strict=True)
                    if i in existing
                ]
                if changed:
                    session.execute(_update(GoldLabel), changed)

            self._run(work)
            marked += len(batch)
        return marked

    def item_state(self, project_id: int, external_id: str) -> ItemState:
        """The consensus state of one item (for owners and reviewers, never annotators)."""

        def work(session: Session) -> ItemState:
            project = self._project(session, project_id)
            item = self._item(session, project_id, external_id)
            return self._state(item, self._label_space(project))

        return self._run(work)

    def _item(self, session: Session, project_id: int, external_id: str, *, lock: bool = False) -> Item:
        statement = select(Item).where(Item.project_id == project_id, Item.external_id == str(external_id))
        item = session.scalars(self._locked(statement) if lock else statement).first()
        if item is None:
            raise NotFoundError(f"no item {external_id!r} in project {project_id}")
        return item

    @staticmethod
    def _state(item: Item, labels: LabelSpace) -> ItemState:
        return ItemState(
            item=item.external_id,
            status=item.status,
            label=None if item.label is None else str(labels.decode([item.label])[0]),
            confidence=item.confidence,
            answers=item.answer_count,
            open_leases=item.open_leases,
            needed=item.needed,
            is_gold=item.is_gold,
        )

    # -- annotators and tokens -----------------------------------------------------------------

    def add_annotator(
        self, project_id: int, name: str, *, role: Role = "annotator", kind: Kind = "human"
    ) -> tuple[AnnotatorInfo, str]:
        """A new annotator and their API token, returned in plain text this once (only its
        SHA-256 is stored)."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ConfigError(f"annotator name must be 1-200 characters, got {name!r}")
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        token = _new_token()

        def work(session: Session) -> AnnotatorInfo:
            rules = self._rules_of(session, project_id)
            annotator = Annotator(
                project_id=project_id, name=name.strip(), role=role, kind=kind, status="active", created_at=utcnow()
            )
            for column in (
                "answer_count",
                "gold_right",
                "gold_total",
                "since_right",
                "since_total",
                "model_right",
                "model_total",
                "timed",
                "fast",
            ):
                setattr(annotator, column, 0)
            session.add(annotator)
            session.flush()
            session.add(ApiToken(annotator_id=annotator.id, digest=_digest(token), revoked=False, created_at=utcnow()))
            return self._annotator_info(annotator, rules)

        try:
            return self._run(work), token
        except IntegrityError:
            raise ConflictError(f"project {project_id} has an annotator named {name.strip()!r} already") from None

    def new_token(self, annotator_id: int) -> str:
        """Another token for an annotator (e.g. a lost one); earlier tokens stay valid until revoked."""
        token = _new_token()

        def work(session: Session) -> None:
            self._annotator(session, annotator_id)
            session.add(ApiToken(annotator_id=annotator_id, digest=_digest(token), revoked=False, created_at=utcnow()))

        self._run(work)
        return token

    def revoke_tokens(self, annotator_id: int) -> int:
        """Revoke every token of an annotator; returns how many."""

        def work(session: Session) -> int:
            self._annotator(session, annotator_id)
            result = session.execute(
                _update(ApiToken)
                .where(ApiToken.annotator_id == annotator_id, ApiToken.revoked.is_(False))
                .values(revoked=True)
            )
            return result.rowcount

        return self._run(work)

    def authenticate(self, token: str) -> AnnotatorInfo:
        """The annotator a bearer token belongs to (``AuthError`` when unknown or revoked). A
        banned annotator still authenticates; the loop refuses them with ``ForbiddenError``."""
        if not isinstance(token, str) or not 16 <= len(token) <= 200:
            raise AuthError("missing or malformed API token")
        digest = _digest(token)

        def work(session: Session) -> AnnotatorInfo:
            stored = session.scalars(select(ApiToken).where(ApiToken.digest == digest)).first()
            if stored is None or not hmac.compare_digest(stored.digest, digest) or stored.revoked:
                raise AuthError("unknown or revoked API token")
            annotator = session.get(Annotator, stored.annotator_id)
            return self._annotator_info(annotator, self._rules_of(session, annotator.project_id))

        return self._run(work)

    def _annotator(self, session: Session, annotator_id: int) -> Annotator:
        annotator = session.get(Annotator, annotator_id) if isinstance(annotator_id, int) else None
        if annotator is None:
            raise NotFoundError(f"no annotator with id {annotator_id!r}")
        return annotator

    def get_annotator(self, annotator_id: int) -> AnnotatorInfo:
        def work(session: Session) -> AnnotatorInfo:
            annotator = self._annotator(session, annotator_id)
            return self._annotator_info(annotator, self._rules_of(session, annotator.project_id))

        return self._run(work)

    def set_role(self, annotator_id: int, role: Role) -> AnnotatorInfo:
        """Promote or demote an annotator (owner's decision)."""
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")

        def work(session: Session) -> AnnotatorInfo:
            annotator = self._annotator(session, annotator_id)
            before = annotator.role
            annotator.role = role
            self._event(session, annotator.project_id, "role", {"from": before, "to": role}, annotator_id=annotator.id)
            return self._annotator_info(annotator, self._rules_of(session, annotator.project_id))

        return self._run(work)

    def annotator_skills(self, project_id: int) -> list[AnnotatorInfo]:
        """Every annotator of the project with skill, answers and gold record."""

        def work(session: Session) -> list[AnnotatorInfo]:
            rules = self._rules_of(session, project_id)
            rows = session.scalars(select(Annotator).where(Annotator.project_id == project_id).order_by(Annotator.id))
            return [self._annotator_info(a, rules) for a in rows]

        return self._run(work)

    # -- the loop ------------------------------------------------------------------------------

    def next_task(self, annotator: AnnotatorInfo) -> TaskOut | None:
        """Lease the next task to an active annotator (None: nothing left for them).

        With probability ``gold_rate`` a gold item they have not answered; otherwise the open item
        with the highest expected information per cost (``crowdloop.consensus.priority``), never
        one they answered or hold, never beyond the answers the item still needs counting open
        leases; in a taxonomy, weighted by the annotator's skill in the item's predicted branch.
        Expired leases return to the pool first. An annotator holds one task at a time: asking
        again returns the task they hold."""
        gold_draw = self._draw()
        return self._run(lambda s: self._next_task(s, annotator.id, gold_draw))

    def _next_task(self, session: Session, annotator_id: int, gold_draw: float) -> TaskOut | None:
        now = self._clock()
        connection = session.connection()
        annotator = self._worker(connection, annotator_id)
        project = self._project(session, annotator.project_id)
        self._reclaim(connection, project.id, now)
        held = connection.execute(q.HELD, {"annotator": annotator.id, "now": now}).first()
        if held is not None:
            return self._task(connection, held.id, held.item_id, held.suggestions, held.expires_at)
        item_id = self._pick_gold(connection, project, annotator) if gold_draw < project.gold_rate else None
        if item_id is None:
            item_id = self._pick_pool(connection, project, annotator)
        if item_id is None:
            return None
        lease_id = secrets.token_hex(16)
        suggestions = self._suggestions(connection, project, item_id)
        expires = now + timedelta(seconds=project.lease_seconds)
        connection.execute(
            q.NEW_LEASE,
            {"id": lease_id, "project_id": project.id, "item_id": item_id, "annotator_id": annotator.id,
             "state": "open", "suggestions": suggestions, "created_at": now, "expires_at": expires},
        )  # fmt: skip
        return self._task(connection, lease_id, item_id, suggestions, expires)

    def _worker(self, connection: Connection, annotator_id: int) -> Row:
        """The annotator, if allowed to work on tasks (active and human)."""
        annotator = connection.execute(q.ANNOTATOR, {"annotator": annotator_id}).first()
        if annotator is None:
            raise NotFoundError(f"no annotator with id {annotator_id!r}")
        if annotator.status != "active":
            raise ForbiddenError(f"annotator {annotator.name!r} is {annotator.status}")
        if annotator.kind != "human":
            raise ForbiddenError(f"annotator {annotator.name!r} is a model: models add predictions, not answers")
        return annotator

    @staticmethod
    def _task(
        connection: Connection, lease_id: str, item_id: int, suggestions: list | None, expires: datetime
    ) -> TaskOut:
        item = connection.execute(q.TASK_ITEM, {"item": item_id}).one()
        return TaskOut(
            lease_id=lease_id,
            item=item.external_id,
            payload=item.payload,
            suggestions=[Suggestion(**s) for s in suggestions or []],
            expires_at=expires if expires.tzinfo else expires.replace(tzinfo=UTC),
        )

    def _reclaim(self, connection: Connection, project_id: int, now: datetime) -> int:
        """Return up to ``queries.RECLAIM_BATCH`` expired leases of the project to the pool."""
        statement = q.EXPIRED_LOCKED if self._pg else q.EXPIRED
        expired = connection.execute(statement, {"now": now, "project": project_id}).all()
        reclaimed = 0
        for lease_id, item_id in expired:
            if connection.execute(q.EXPIRE_LEASE, {"lease": lease_id}).rowcount:
                connection.execute(q.RELEASE_ITEM, {"item": item_id})
                reclaimed += 1
        return reclaimed

    def _pick_gold(self, connection: Connection, project: ProjectRow, annotator: Row) -> int | None:
        candidates = connection.execute(q.GOLD_POOL, {"project": project.id, "annotator": annotator.id}).scalars().all()
        if not candidates:
            return None
        with self._rng_lock:
            item_id = self._rng.choice(candidates)
        connection.execute(q.TAKE_GOLD, {"item": item_id})
        return item_id

    def _pick_pool(self, connection: Connection, project: ProjectRow, annotator: Row) -> int | None:
        routed = project.is_taxonomy and bool(annotator.branch_skills)
        if routed:
            statement = q.POOL_ROUTED_LOCKED if self._pg else q.POOL_ROUTED
        else:
            statement = q.POOL_LOCKED if self._pg else q.POOL
        candidates = connection.execute(statement, {"project": project.id, "annotator": annotator.id}).all()
        if routed:
            overall = max(float(self._book([annotator], self._rules(project)).accuracy()[0]), 1e-3)
            skills = annotator.branch_skills

            def routed_value(c: Row) -> float:
                return c.priority * skills.get(str(c.branch), overall) / overall if c.branch >= 0 else c.priority

            candidates = sorted(candidates, key=lambda c: -routed_value(c))
        for candidate in candidates:
            if connection.execute(q.TAKE, {"item": candidate.id}).rowcount:
                return candidate.id
        return None

    @staticmethod
    def _voting_versions(session: Session, project: ProjectRow) -> dict[int, float]:
        """The newest version of each model of the project -> its temperature (none if the
        project's models do not vote)."""
        if not project.model_votes:
            return {}
        return dict(session.connection().execute(q.VOTING_MODELS, {"project": project.id}).all())

    def _suggestions(self, connection: Connection, project: ProjectRow, item_id: int) -> list[dict] | None:
        """The newest model version's top labels for the item, for the annotator's screen."""
        if project.suggestions <= 0:
            return None
        newest = connection.execute(q.NEWEST_MODEL, {"project": project.id}).scalar()
        if newest is None:
            return None
        row = connection.execute(q.PREDICTION, {"item": item_id, "model": newest}).first()
        if row is None:
            return None
        labels = self._label_space(project)
        top = sorted(zip(row.labels, row.probs, strict=True), key=lambda x: -x[1])[: project.suggestions]
        return [{"label": str(labels.decode([code])[0]), "probability": round(float(p), 4)} for code, p in top]

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
        if duration_ms is not None and not (isinstance(duration_ms, int) and 0 <= duration_ms <= 86_400_000):
            raise InputError(
                f"duration_ms must be an integer in [0, 86400000], got {duration_ms!r}", field="duration_ms"
            )
        if idempotency_key is not None and not (isinstance(idempotency_key, str) and 1 <= len(idempotency_key) <= 200):
            raise InputError("idempotency key must be 1-200 characters", field="idempotency_key")
        if not isinstance(lease_id, str) or not lease_id:
            raise NotFoundError(f"no lease {lease_id!r}")
        try:
            return self._run(lambda s: self._submit(s, annotator.id, lease_id, label, duration_ms, idempotency_key))
        except IntegrityError:
            # a concurrent retry of the same submit won the race: answer as for any retry
            stored = self._run(lambda s: self._stored_answer(s, annotator.id, lease_id, idempotency_key))
            if stored is None:
                raise
            return stored

    def _stored_answer(self, session: Session, annotator_id: int, lease_id: str, key: str | None) -> SubmitOut | None:
        connection = session.connection()
        answer = connection.execute(q.ANSWER_BY_LEASE, {"annotator": annotator_id, "lease": lease_id}).first()
        if answer is None and key is not None:
            answer = connection.execute(q.ANSWER_BY_KEY, {"annotator": annotator_id, "key": key}).first()
        if answer is None:
            return None
        item = connection.execute(q.ITEM, {"item": answer.item_id}).one()
        annotator = connection.execute(q.ANNOTATOR, {"annotator": annotator_id}).one()
        project = self._project(session, annotator.project_id)
        return SubmitOut(
            answer_id=answer.id,
            lease_id=answer.lease_id or lease_id,
            item=item.external_id,
            label=str(self._label_space(project).decode([answer.label])[0]),
            duplicate=True,
            annotator_status=annotator.status,
        )

    def _submit(
        self, session: Session, annotator_id: int, lease_id: str, label: Any, duration_ms: int | None, key: str | None
    ) -> SubmitOut:
        connection = session.connection()
        if key is not None:
            retry = self._stored_answer(session, annotator_id, lease_id, key)
            if retry is not None:
                return retry
        lease = connection.execute(q.LEASE_LOCKED if self._pg else q.LEASE, {"lease": lease_id}).first()
        if lease is None or lease.annotator_id != annotator_id:
            raise NotFoundError(f"no lease {lease_id!r} for this annotator")
        if lease.state == "done":
            return self._stored_answer(session, annotator_id, lease_id, None)
        if lease.state != "open":
            raise ConflictError(f"lease {lease_id} is {lease.state}: ask for the next task")
        self._worker(connection, annotator_id)
        project = self._project(session, lease.project_id)
        labels = self._label_space(project)
        code = self._code(labels, label)
        item = connection.execute(q.ITEM_LOCKED if self._pg else q.ITEM, {"item": lease.item_id}).one()
        if not connection.execute(q.CLOSE_LEASE, {"lease": lease_id, "state": "done"}).rowcount:
            raise ConflictError(f"lease {lease_id} was closed meanwhile")
        answer_id = connection.execute(
            q.NEW_ANSWER,
            {"project_id": project.id, "item_id": item.id, "annotator_id": annotator_id, "lease_id": lease_id,
             "label": code, "duration_ms": duration_ms, "suggestions": lease.suggestions, "idempotency_key": key,
             "is_gold": item.is_gold, "is_review": False, "created_at": utcnow()},
        ).scalar_one()  # fmt: skip
        connection.execute(q.COUNT_ANSWER, {"item": item.id})
        rules = self._rules(project)
        right = 0.0
        if item.is_gold:
            truth = connection.execute(q.GOLD_LABEL, {"item": item.id}).scalar()
            right = float(truth == code)
        timed = duration_ms is not None
        fast = timed and duration_ms < rules.min_seconds * 1000
        annotator = connection.execute(
            q.RECORD,
            {"annotator": annotator_id, "right": right, "gold": float(item.is_gold), "timed": float(timed),
             "fast": float(fast)},
        ).one()  # fmt: skip
        if not item.is_gold and item.status != "reviewed":
            self._redecide(session, project, [item])
        status = self._judge(session, project, annotator, rules)
        return SubmitOut(
            answer_id=answer_id,
            lease_id=lease_id,
            item=item.external_id,
            label=str(labels.decode([code])[0]),
            duplicate=False,
            annotator_status=status,
        )

    def _judge(self, session: Session, project: ProjectRow, annotator: Row, rules: SkillRules) -> str:
        """Ban (their open leases go back to the pool) or promote to reviewer, on the evidence;
        returns the annotator's status."""
        if annotator.gold_total < min(rules.min_gold, rules.min_gold_promote) and annotator.timed < rules.min_timed:
            return annotator.status  # too little evidence for either
        book = self._book([annotator], rules)
        if book.banned()[0] and annotator.status == "active":
            fast = book.timed[0] >= rules.min_timed and book.fast[0] > book.timed[0] / 2
            session.execute(_update(Annotator).where(Annotator.id == annotator.id).values(status="banned"))
            open_leases = session.execute(
                select(Lease.id, Lease.item_id).where(Lease.annotator_id == annotator.id, Lease.state == "open")
            ).all()
            for lease_id, item_id in open_leases:
                session.execute(_update(Lease).where(Lease.id == lease_id).values(state="expired"))
                session.execute(_update(Item).where(Item.id == item_id).values(open_leases=Item.open_leases - 1))
            _, upper = book.gold_bounds()
            self._event(
                session,
                project.id,
                "banned",
                {
                    "reason": "implausibly fast answers" if fast else "gold accuracy clearly below the threshold",
                    "gold_right": annotator.gold_right,
                    "gold_total": annotator.gold_total,
                    "upper_bound": float(upper[0]),
                    "ban_below": rules.ban_below,
                },
                annotator_id=annotator.id,
            )
            return "banned"
        if book.promoted()[0] and annotator.role == "annotator":
            session.execute(_update(Annotator).where(Annotator.id == annotator.id).values(role="reviewer"))
            lower, _ = book.gold_bounds()
            self._event(
                session,
                project.id,
                "promoted",
                {"to": "reviewer", "lower_bound": float(lower[0]), "gold_total": annotator.gold_total},
                annotator_id=annotator.id,
            )
        return annotator.status

    def _redecide(self, session: Session, project: ProjectRow, items: Sequence[Any]) -> int:
        """Decide ``items`` (anything with ``id`` and ``status``: at most a page) again from their
        answers and model rows, a fixed number of statements; returns how many changed status."""
        if not items:
            return 0
        connection = session.connection()
        local = {item.id: i for i, item in enumerate(items)}
        ids = list(local)
        answers = connection.execute(q.ITEM_ANSWERS, {"items": ids}).all()
        skill = self._book(answers, self._rules(project)).accuracy() if answers else np.empty(0)
        versions = self._voting_versions(session, project)
        soft = None
        if versions:
            rows = connection.execute(q.ITEM_PREDICTIONS, {"items": ids, "models": list(versions)}).all()
            soft = _soft_frame([(local[r[0]], r[1], (r[2], r[3])) for r in rows], versions)
        opinions = Opinions.of(len(items), [local[r[0]] for r in answers], [r[1] for r in answers], skill, soft)
        decider = self._decider(project)
        table = decider.decide(opinions)
        now = utcnow()
        changes, events = [], []
        for i, item in enumerate(items):
            status = str(table.status[i])
            values = {
                "item": item.id,
                "status": status,
                "label": _code_or_none(table.label[i]),
                "confidence": _float_or_none(table, i),
                "needed": int(table.next[i]),
                "priority": float(table.priority[i]),
                "branch": int(table.branch[i]),
                "now": now,
            }
            changes.append(values)
            if status != item.status:
                detail = {
                    "from": item.status,
                    "label": None
                    if values["label"] is None
                    else str(self._label_space(project).decode([values["label"]])[0]),
                    "confidence": values["confidence"],
                    "answers": int(table.answers[i]),
                    "target": decider.policy.target,
                    "reason": _reason(status, table, i, decider.policy),
                }
                events.append({"project_id": project.id, "item_id": item.id, "annotator_id": None, "kind": status,
                               "created_at": now, "detail": detail})  # fmt: skip
        connection.execute(q.DECISION, changes)
        if events:
            connection.execute(q.NEW_EVENTS, events)
        return len(events)

    def skip(self, annotator: AnnotatorInfo, lease_id: str) -> None:
        """Give a leased task back; it is not offered to this annotator again."""

        def work(session: Session) -> None:
            lease = session.scalars(self._locked(select(Lease).where(Lease.id == lease_id))).first()
            if lease is None or lease.annotator_id != annotator.id:
                raise NotFoundError(f"no lease {lease_id!r} for this annotator")
            if lease.state != "open":
                raise ConflictError(f"lease {lease_id} is {lease.state}")
            session.execute(_update(Lease).where(Lease.id == lease_id).values(state="skipped"))
            session.execute(_update(Item).where(Item.id == lease.item_id).values(open_leases=Item.open_leases - 1))

        self._run(work)

    # -- review --------------------------------------------------------------------------------

    def review_queue(self, project_id: int, *, limit: int = 50) -> list[ReviewTask]:
        """Escalated items, oldest first, with the crowd's answers."""
        limit = max(1, min(int(limit), 500))

        def work(session: Session) -> list[ReviewTask]:
            project = self._project(session, project_id)
            labels = self._label_space(project)
            items = session.scalars(
                select(Item)
                .where(Item.project_id == project_id, Item.is_gold.is_(False), Item.status == ESCALATED)
                .order_by(Item.updated_at, Item.id)
                .limit(limit)
            ).all()
            out = []
            for item in items:
                answers = session.execute(
                    select(Annotator.name, Answer.label)
                    .join(Annotator, Annotator.id == Answer.annotator_id)
                    .where(Answer.item_id == item.id)
                    .order_by(Answer.id)
                ).all()
                state = self._state(item, labels)
                out.append(
                    ReviewTask(
                        item=item.external_id,
                        payload=item.payload,
                        label=state.label,
                        confidence=item.confidence,
                        answers=[ReviewAnswer(name, str(labels.decode([code])[0])) for name, code in answers],
                        suggestions=[Suggestion(**s) for s in self._suggestions(session, project, item.id) or []],
                    )
                )
            return out

        return self._run(work)

    def review(self, reviewer: AnnotatorInfo, project_id: int, external_id: str, label: Any) -> ItemState:
        """A reviewer's (or owner's) final label for an item (escalated or not)."""

        def work(session: Session) -> ItemState:
            person = self._annotator(session, reviewer.id)
            if person.project_id != project_id:
                raise NotFoundError(f"no project with id {project_id!r}")
            if person.role not in ("reviewer", "owner") or person.status != "active":
                raise ForbiddenError(f"annotator {person.name!r} may not review (role {person.role}, {person.status})")
            project = self._project(session, project_id)
            labels = self._label_space(project)
            code = self._code(labels, label)
            item = self._item(session, project_id, external_id, lock=True)
            if item.is_gold:
                raise ConflictError(f"item {external_id!r} is a gold item: its label is known")
            rules = self._rules(project)
            confidence = float(self._book([person], rules).accuracy()[0])
            own = session.scalars(
                select(Answer).where(Answer.item_id == item.id, Answer.annotator_id == person.id)
            ).first()
            if own is not None:
                own.label, own.is_review = code, True
            else:
                session.add(
                    Answer(
                        project_id=project_id,
                        item_id=item.id,
                        annotator_id=person.id,
                        label=code,
                        is_gold=False,
                        is_review=True,
                        created_at=utcnow(),
                    )
                )
            before = (item.status, item.label)
            item.status, item.label, item.confidence = "reviewed", code, confidence
            item.needed, item.priority, item.updated_at = 0, 0.0, utcnow()
            self._event(
                session,
                project_id,
                "reviewed",
                {"from": before[0], "crowd_label": before[1], "label": code, "confidence": confidence},
                item_id=item.id,
                annotator_id=person.id,
            )
            session.flush()
            return self._state(item, labels)

        return self._run(work)

    # -- models --------------------------------------------------------------------------------

    def _model_version(self, project_id: int, name: str, version: str) -> int:
        """The id of a model version, created when new."""
        if not all(isinstance(x, str) and x.strip() and len(x) <= 200 for x in (name, version)):
            raise ConfigError(f"model name and version must be 1-200 characters, got {name!r}, {version!r}")

        def work(session: Session) -> int:
            self._project(session, project_id)
            found = session.scalar(
                select(ModelVersion.id).where(
                    ModelVersion.project_id == project_id, ModelVersion.name == name, ModelVersion.version == version
                )
            )
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
        _check_batch(batch_size)
        info = self.get_project(project_id)
        if isinstance(probabilities, pd.DataFrame):
            missing = {"task", "label", "probability"} - set(probabilities.columns)
            if missing:
                raise InputError(f"missing column {sorted(missing)[0]!r}", source="probabilities")
            grouped = probabilities.groupby(probabilities["task"].astype(str), sort=False)
            rows: Iterable[tuple[str, Mapping]] = (
                (task, dict(zip(g["label"], g["probability"], strict=True))) for task, g in grouped
            )
        else:
            rows = ((str(k), v) for k, v in probabilities.items())
        version_id = self._model_version(project_id, model, version)
        done = 0
        for batch in _batched(rows, batch_size):
            parsed = [
                _parse_probs(probs, info.labels, row=done + i + 1, top_k=top_k, source="probabilities")
                for i, (_, probs) in enumerate(batch)
            ]
            ids = [task for task, _ in batch]
            self._run(
                lambda s, ids=ids, parsed=parsed, first=done + 1: self._store_predictions(
                    s, project_id, version_id, ids, parsed, first
                )
            )
            done += len(batch)
        return next(v for v in self.model_versions(project_id) if v.id == version_id)

    def _store_predictions(
        self, session: Session, project_id: int, version_id: int, ids: list[str], parsed: list, first: int
    ) -> None:
        project = self._project(session, project_id)
        found = dict(
            session.execute(
                select(Item.external_id, Item.id).where(Item.project_id == project_id, Item.external_id.in_(ids))
            ).all()
        )
        missing = [first + i for i, x in enumerate(ids) if x not in found]
        if missing:
            raise InputError(
                f"prediction for unknown item {ids[missing[0] - first]!r}",
                source="probabilities",
                rows=missing,
                unit="row",
            )
        item_ids = [found[x] for x in ids]
        already = set(
            session.scalars(
                select(Prediction.item_id).where(
                    Prediction.model_version_id == version_id, Prediction.item_id.in_(item_ids)
                )
            )
        )
        fresh = [
            {"model_version_id": version_id, "item_id": i, "labels": p[0], "probs": p[1]}
            for i, p in zip(item_ids, parsed, strict=True)
            if i not in already
        ]
        stale = [
            {"id": pid, "labels": p[1][0], "probs": p[1][1]}
            for pid, p in self._prediction_ids(session, version_id, item_ids, parsed, already)
        ]
        if fresh:
            session.execute(insert(Prediction), fresh)
        if stale:
            session.execute(_update(Prediction), stale)
        session.execute(
            _update(ModelVersion)
            .where(ModelVersion.id == version_id)
            .values(prediction_count=ModelVersion.prediction_count + len(fresh))
        )
        if version_id in self._voting_versions(session, project):
            items = session.scalars(
                self._locked(
                    select(Item).where(
                        Item.id.in_(item_ids), Item.is_gold.is_(False), Item.status.in_((MORE, ESCALATED))
                    )
                )
            ).all()
            self._redecide(session, project, list(items))

    @staticmethod
    def _prediction_ids(session: Session, version_id: int, item_ids: list[int], parsed: list, already: set) -> list:
        if not already:
            return []
        by_item = dict(
            session.execute(
                select(Prediction.item_id, Prediction.id).where(
                    Prediction.model_version_id == version_id, Prediction.item_id.in_(list(already))
                )
            ).all()
        )
        return [(by_item[i], (i, p)) for i, p in zip(item_ids, parsed, strict=True) if i in by_item]

    def model_versions(self, project_id: int) -> list[ModelVersionInfo]:
        def work(session: Session) -> list[ModelVersionInfo]:
            self._project(session, project_id)
            rows = session.scalars(
                select(ModelVersion).where(ModelVersion.project_id == project_id).order_by(ModelVersion.id)
            )
            return [
                ModelVersionInfo(r.id, r.project_id, r.name, r.version, r.prediction_count, r.temperature, r.created_at)
                for r in rows
            ]

        return self._run(work)

    # -- results -------------------------------------------------------------------------------

    def progress(self, project_id: int) -> Progress:
        def work(session: Session) -> Progress:
            project = self._project(session, project_id)
            policy = self._policy(project)
            counts = dict(
                session.execute(
                    select(Item.status, func.count()).where(Item.project_id == project_id).group_by(Item.status)
                ).all()
            )
            real = select(func.count(), func.coalesce(func.sum(Item.answer_count), 0)).where(
                Item.project_id == project_id, Item.is_gold.is_(False)
            )
            n_items, real_answers = session.execute(real).one()
            answer_stats = session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(Answer.is_gold.cast(Integer)), 0),
                    func.coalesce(func.sum(Answer.is_review.cast(Integer)), 0),
                ).where(Answer.project_id == project_id)
            ).one()
            total, gold_answers, reviews = (int(x) for x in answer_stats)
            settled = session.execute(
                select(func.avg(Item.confidence), func.count()).where(
                    Item.project_id == project_id, Item.is_gold.is_(False), Item.status.in_(SETTLED)
                )
            ).one()
            automated = session.scalar(
                select(func.count()).where(
                    Item.project_id == project_id,
                    Item.is_gold.is_(False),
                    Item.status == ACCEPTED,
                    Item.answer_count == 0,
                )
            )
            accepted = counts.get(ACCEPTED, 0)
            versions = self._voting_versions(session, project)
            model_rows = (
                session.scalar(
                    select(func.coalesce(func.sum(ModelVersion.prediction_count), 0)).where(
                        ModelVersion.id.in_(list(versions))
                    )
                )
                if versions
                else 0
            )
            people = session.execute(
                select(func.count(), func.coalesce(func.sum((Annotator.status == "banned").cast(Integer)), 0)).where(
                    Annotator.project_id == project_id, Annotator.kind == "human"
                )
            ).one()
            crowd = total - reviews
            cost = crowd * policy.prices.crowd + reviews * policy.prices.expert + int(model_rows) * policy.prices.model
            return Progress(
                project_id=project_id,
                items=int(n_items),
                gold_items=counts.get("gold", 0),
                status_counts={k: int(v) for k, v in counts.items()},
                answers=crowd,
                gold_answers=gold_answers,
                reviews=reviews,
                answers_per_item=float(real_answers) / n_items if n_items else 0.0,
                cost=float(cost),
                accuracy_estimate=None if settled[1] == 0 or settled[0] is None else float(settled[0]),
                automation_rate=float(automated) / accepted if accepted else 0.0,
                annotators=int(people[0]),
                banned=int(people[1]),
            )

        return self._run(work)

    def results(self, project_id: int, *, batch_size: int = 10000) -> Iterator[ResultRow]:
        """Every non-gold item with its label and calibrated confidence, read in fixed-size pages."""
        _check_batch(batch_size)
        info = self.get_project(project_id)
        last = 0
        while True:
            page = self._run(
                lambda s, last=last: s.execute(
                    select(Item.id, Item.external_id, Item.status, Item.label, Item.confidence, Item.answer_count)
                    .where(Item.project_id == project_id, Item.is_gold.is_(False), Item.id > last)
                    .order_by(Item.id)
                    .limit(batch_size)
                ).all()
            )
            if not page:
                return
            decoded = info.labels.decode([r.label if r.label is not None else 0 for r in page])
            for r, label in zip(page, decoded, strict=True):
                yield ResultRow(
                    r.external_id, r.status, None if r.label is None else str(label), r.confidence, r.answer_count
                )
            last = page[-1].id

    def answers_frame(self, project_id: int) -> pd.DataFrame:
        """The human answers as a crowd-kit frame: ``task, worker, label`` (plus ``duration_ms``,
        ``gold``: whether the item is gold, ``review``: a reviewer's final decision)."""
        info = self.get_project(project_id)
        rows = self._run(
            lambda s: s.execute(
                select(
                    Item.external_id, Annotator.name, Answer.label, Answer.duration_ms, Answer.is_gold, Answer.is_review
                )
                .join(Item, Item.id == Answer.item_id)
                .join(Annotator, Annotator.id == Answer.annotator_id)
                .where(Answer.project_id == project_id)
                .order_by(Answer.id)
            ).all()
        )
        frame = pd.DataFrame(rows, columns=["task", "worker", "label", "duration_ms", "gold", "review"])
        frame["label"] = info.labels.decode(frame["label"].to_numpy(dtype=np.int64)) if len(frame) else []
        return frame

    def events(self, project_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
        """The latest decisions of the append-only event log, newest first."""
        limit = max(1, min(int(limit), 10_000))

        def work(session: Session) -> list[dict[str, Any]]:
            self._project(session, project_id)
            rows = session.execute(
                select(Event, Item.external_id, Annotator.name)
                .outerjoin(Item, Item.id == Event.item_id)
                .outerjoin(Annotator, Annotator.id == Event.annotator_id)
                .where(Event.project_id == project_id)
                .order_by(Event.id.desc())
                .limit(limit)
            ).all()
            return [
                {"id": e.id, "kind": e.kind, "item": item, "annotator": name, "detail": e.detail, "at": e.created_at}
                for e, item, name in rows
            ]

        return self._run(work)

    # -- jobs ----------------------------------------------------------------------------------

    def refit(self, project_id: int) -> RefitReport:
        """Full EM refit (``crowdloop.consensus.DynamicConsensus`` on every answer, gold clamped):
        annotator skills, the model versions' temperatures, the calibrator of the online decision,
        then every open item re-decided. A job (``crowdloop refit``), never inside a request."""
        started = time.perf_counter()
        info = self.get_project(project_id)
        stored, since = self._read_for_refit(project_id)
        result = fit_project(stored, info.labels, info.policy, info.rules)
        if result is None:
            return RefitReport(project_id, "none", 0, False, {}, 0, time.perf_counter() - started)

        def write(session: Session) -> None:
            project = session.get(Project, project_id)
            project.calibrator = pickle.dumps(result.calibrator) if result.calibrator is not None else None
            project.typical_skill = result.typical_skill
            project.refit_at = utcnow()
            for a, n, s in zip(result.annotators, result.answers, result.skill, strict=True):
                before = since[int(a)]
                session.execute(
                    _update(Annotator)
                    .where(Annotator.id == int(a))
                    .values(
                        model_right=float(s * n),
                        model_total=float(n),
                        since_right=Annotator.since_right - before[0],
                        since_total=Annotator.since_total - before[1],
                        branch_skills=result.branch_skills.get(int(a)),
                    )
                )
            for version_id, temperature in result.temperatures.items():
                session.execute(
                    _update(ModelVersion).where(ModelVersion.id == version_id).values(temperature=temperature)
                )
            self._event(
                session,
                project_id,
                "refit",
                {
                    "skill_model": result.skill_model,
                    "annotators": len(result.annotators),
                    "answers": int(result.answers.sum()),
                    "calibrated": result.calibrator is not None,
                    "typical_skill": result.typical_skill,
                    "temperatures": {str(k): v for k, v in result.temperatures.items()},
                },
            )

        self._run(write)
        redecided = self._redecide_open(project_id)
        return RefitReport(
            project_id=project_id,
            skill_model=result.skill_model,
            annotators=len(result.annotators),
            calibrated=result.calibrator is not None,
            temperatures={str(k): v for k, v in result.temperatures.items()},
            items_redecided=redecided,
            seconds=time.perf_counter() - started,
        )

    def _read_for_refit(self, project_id: int) -> tuple[StoredAnswers, dict[int, tuple[float, float]]]:
        """Everything the refit needs, read in fixed-size pages: answers, gold and reviewed
        labels, the voting model rows, and each annotator's gold evidence counted so far."""

        def pages(statement_of: Callable[[int], Any]) -> list:
            out, last = [], 0
            while True:
                page = self._run(lambda s, last=last: s.execute(statement_of(last)).all())
                out.extend(page)
                if len(page) < PAGE * 10:
                    return out
                last = page[-1][0]

        answers = pages(
            lambda last: (
                select(Answer.id, Answer.item_id, Answer.annotator_id, Answer.label, Answer.is_review)
                .where(Answer.project_id == project_id, Answer.id > last)
                .order_by(Answer.id)
                .limit(PAGE * 10)
            )
        )
        gold = pages(
            lambda last: (
                select(Item.id, GoldLabel.label)
                .join(GoldLabel, GoldLabel.item_id == Item.id)
                .where(Item.project_id == project_id, Item.id > last)
                .order_by(Item.id)
                .limit(PAGE * 10)
            )
        )
        since = dict(
            (a, (r, t))
            for a, r, t in self._run(
                lambda s: s.execute(
                    select(Annotator.id, Annotator.since_right, Annotator.since_total).where(
                        Annotator.project_id == project_id
                    )
                ).all()
            )
        )
        versions = self._run(lambda s: self._voting_versions(s, self._project(s, project_id)))
        soft_rows = []
        for version_id in versions:
            soft_rows += [
                (version_id, item, label, prob)
                for _, item, labels, probs in pages(
                    lambda last, v=version_id: (
                        select(Prediction.id, Prediction.item_id, Prediction.labels, Prediction.probs)
                        .where(Prediction.model_version_id == v, Prediction.id > last)
                        .order_by(Prediction.id)
                        .limit(PAGE * 10)
                    )
                )
                for label, prob in zip(labels, probs, strict=True)
            ]
        hard = [a for a in answers if not a[4]]
        reviewed = {a[1]: a[3] for a in answers if a[4]}
        truth = dict(gold) | reviewed
        stored = StoredAnswers(
            item=np.array([a[1] for a in hard], dtype=np.int64),
            annotator=np.array([a[2] for a in hard], dtype=np.int64),
            label=np.array([a[3] for a in hard], dtype=np.int64),
            truth_item=np.array(list(truth), dtype=np.int64),
            truth_label=np.array(list(truth.values()), dtype=np.int64),
            soft=pd.DataFrame(soft_rows, columns=["version", "item", "label", "prob"]),
        )
        return stored, since

    def _redecide_open(self, project_id: int) -> int:
        """Decide every open (more or escalated) item again, a page per transaction."""
        last, changed = 0, 0
        while True:

            def work(session: Session, last: int = last) -> tuple[int, int]:
                project = self._project(session, project_id)
                items = session.scalars(
                    self._locked(
                        select(Item)
                        .where(
                            Item.project_id == project_id,
                            Item.is_gold.is_(False),
                            Item.status.in_((MORE, ESCALATED)),
                            Item.id > last,
                        )
                        .order_by(Item.id)
                        .limit(PAGE)
                    )
                ).all()
                if not items:
                    return -1, 0
                return items[-1].id, self._redecide(session, project, list(items))

            last, n = self._run(work)
            if last < 0:
                return changed
            changed += n

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


# -- parsing helpers ---------------------------------------------------------------------------


def _new_token() -> str:
    return "cl_" + secrets.token_urlsafe(32)


def _check_batch(batch_size: int) -> None:
    if not (isinstance(batch_size, int) and 1 <= batch_size <= MAX_BATCH):
        raise ConfigError(f"batch_size must be an integer in [1, {MAX_BATCH}], got {batch_size!r}")


def _code_or_none(code: Any) -> int | None:
    return None if code is None or int(code) < 0 else int(code)


def _float_or_none(table: Decisions, i: int) -> float | None:
    if int(table.label[i]) < 0:
        return None
    value = float(table.confidence[i])
    return value if math.isfinite(value) else None


def _reason(status: str, table: Decisions, i: int, policy: ConsensusPolicy) -> str:
    answers = int(table.answers[i])
    confidence = float(table.confidence[i])
    if status == ACCEPTED:
        return f"calibrated confidence {confidence:.3f} >= target {policy.target} after {answers} answers"
    if status == ESCALATED:
        if answers >= policy.max_overlap:
            return f"confidence {confidence:.3f} below target {policy.target} at max overlap {policy.max_overlap}"
        return f"target {policy.target} out of reach within max overlap {policy.max_overlap}"
    return f"confidence {confidence:.3f} below target {policy.target}: more answers"


def _encode_column(values: list, labels: LabelSpace, field: str, first_row: int) -> np.ndarray:
    """Label codes of ``values``; an unknown label names its row."""
    bad = [i for i, v in enumerate(values) if v is None or isinstance(v, dict | list | bool)]
    if bad:
        raise UnknownLabelError(
            f"label {values[bad[0]]!r} is not a label",
            source="items",
            rows=[first_row + i for i in bad],
            field=field,
            unit="item",
        )
    return labels.encode(
        np.asarray(values, dtype=object), source="items", field=field, first_row=first_row, unit="item"
    )


def _parse_probs(probs: Any, labels: LabelSpace, *, row: int, top_k: int, source: str) -> tuple[list[int], list[float]]:
    """A model's ``{label: probability}`` as its ``top_k`` (codes, probabilities)."""
    if not isinstance(probs, Mapping) or not probs:
        raise InputError(
            "predictions must be a non-empty mapping label -> probability", source=source, rows=[row], unit="item"
        )
    values = np.array(
        [float(p) if isinstance(p, int | float) and not isinstance(p, bool) else np.nan for p in probs.values()]
    )
    if not np.all(np.isfinite(values)) or (values < 0).any() or (values > 1).any():
        raise InputError("probabilities must be numbers in [0, 1]", source=source, rows=[row], unit="item")
    if values.sum() > 1 + 1e-3:
        raise InputError(f"probabilities sum to {values.sum():.4f} > 1", source=source, rows=[row], unit="item")
    codes = _encode_column(list(probs.keys()), labels, "predictions", row)
    if len(set(codes.tolist())) < len(codes):
        raise InputError("a label appears twice in the predictions", source=source, rows=[row], unit="item")
    order = np.argsort(-values, kind="stable")[:top_k]
    return codes[order].astype(int).tolist(), values[order].round(6).tolist()


def _parse_items(batch: list[ItemIn], labels: LabelSpace, *, first_row: int) -> list[dict]:
    """Validate a batch of items (ids, payloads, gold labels, predictions), naming bad rows."""
    parsed, seen = [], {}
    gold_rows = []
    for i, item in enumerate(batch):
        row = first_row + i
        if not isinstance(item, ItemIn):
            raise InputError(f"expected an ItemIn, got {type(item).__name__}", source="items", rows=[row], unit="item")
        external_id = item.external_id
        if not isinstance(external_id, str) or not external_id.strip() or len(external_id) > 500:
            raise InputError(
                "external id must be 1-500 characters", source="items", rows=[row], field="external_id", unit="item"
            )
        if external_id in seen:
            raise InputError(
                f"item {external_id!r} appears twice",
                source="items",
                rows=[seen[external_id], row],
                field="external_id",
                unit="item",
            )
        seen[external_id] = row
        if not isinstance(item.payload, dict):
            raise InputError("payload must be a JSON object", source="items", rows=[row], field="payload", unit="item")
        try:
            json.dumps(item.payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"payload is not JSON ({exc})", source="items", rows=[row], field="payload", unit="item"
            ) from None
        predictions = None
        if item.predictions is not None:
            predictions = _parse_probs(item.predictions, labels, row=row, top_k=10, source="items")
        if item.gold is not None:
            gold_rows.append(i)
        parsed.append(
            {
                "external_id": external_id,
                "payload": item.payload,
                "gold": None,
                "hint": item.hint,
                "predictions": predictions,
            }
        )
    if gold_rows:
        codes = np.empty(len(gold_rows), dtype=np.int64)
        for j, i in enumerate(gold_rows):
            codes[j] = _encode_column([batch[i].gold], labels, "gold", first_row + i)[0]
            parsed[i]["gold"] = int(codes[j])
    return parsed


def _soft_frame(
    rows: list[tuple[int, int, tuple[list[int], list[float]]]], temperatures: dict[int, float]
) -> pd.DataFrame:
    """Model rows ``(local item, version id, (codes, probabilities))`` as the frame ``Opinions`` takes."""
    records = [
        (n, item, code, prob, temperatures.get(version, 1.0))
        for n, (item, version, (codes, probs)) in enumerate(rows)
        for code, prob in zip(codes, probs, strict=True)
    ]
    return pd.DataFrame(records, columns=["row", "item", "label", "prob", "temperature"])
