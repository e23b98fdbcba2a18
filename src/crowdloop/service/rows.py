"""The rows every part of the service reads and writes alike: a project's row (``project_row``), an
item by its external id, an item's state as the service answers it, and the event log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from crowdloop.consensus import ESCALATED, MORE
from crowdloop.errors import NotFoundError
from crowdloop.labels import LabelSpace
from crowdloop.service.database import Executor
from crowdloop.service.stored_text import EXTERNAL_ID_LENGTH, text_problem
from crowdloop.service.types import ItemState
from crowdloop.store import project_queries as pq
from crowdloop.store import queries as q
from crowdloop.store.schema import Item, utcnow

PAGE = 2_000
"""Rows a job reads in one transaction."""
WRITE_PAGE = 50
"""Items a background job (the model worker's predictions, decisions and priorities) writes in one
transaction: SQLite's write lock is the whole database's, so a page is the longest an answer waits
behind a job. A write of 2,000 items held every answer up for 50-120 ms. In the loop through the
API (Flipkart sample, 1,000 items, 20 annotators) the slowest 2% of submits all came while the worker
wrote a model version or a refit; pages of 200 put the server's submit p99 at 80 ms, pages of 50 at
55 ms (39 ms without the worker)."""
SETTLED = ("accepted", "reviewed")


class Prefixed:
    """The columns of one table inside a joined row, by their plain names (``a_status`` -> ``status``)."""

    __slots__ = ("_prefix", "_row")

    def __init__(self, row: Row, prefix: str) -> None:
        self._row, self._prefix = row, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._prefix + name)


class ProjectRow:
    """A project's light columns (``queries.PROJECT``); its label space, policy, rules and
    calibrator are read from the same transaction on first use (``ProjectConfig`` caches what they
    give, so most requests never read them)."""

    def __init__(self, row: Row, db: Executor) -> None:
        self._row, self._db, self._heavy = row, db, None

    def __getattr__(self, name: str) -> Any:
        if name in q.PROJECT_HEAVY_COLUMNS:
            if self._heavy is None:
                self._heavy = self._db.execute(q.PROJECT_HEAVY, {"project": self._row.id}).one()
            return getattr(self._heavy, name)
        return getattr(self._row, name)


def project_row(db: Executor, project_id: int) -> ProjectRow:
    """The project ``project_id`` (``NotFoundError``)."""
    row = None
    if isinstance(project_id, int):
        row = db.execute(q.PROJECT, {"project": project_id}).first()
    if row is None:
        raise NotFoundError(f"no project with id {project_id!r}")
    return ProjectRow(row, db)


def open_and_all(db: Executor, project_id: int) -> tuple[int, int]:
    """The project's open items (more or escalated) and all its items but gold, counted on the
    progress index."""
    rows = db.execute(pq.STATUS_COUNTS, {"project": project_id}).all()
    counts = dict(rows)
    return sum(counts.get(s, 0) for s in (MORE, ESCALATED)), sum(n for s, n in rows if s != "gold")


def item_row(session: Session, project_id: int, external_id: str, statement: Any = q.ITEM_BY_EXTERNAL_ID) -> Item:
    """The project's item ``external_id`` (``NotFoundError``), read by ``statement`` (a locking
    form of ``queries.ITEM_BY_EXTERNAL_ID``, or that one)."""
    item = None
    if not text_problem(str(external_id), EXTERNAL_ID_LENGTH):  # no stored id could match
        item = session.scalars(statement, {"project": project_id, "external_id": str(external_id)}).first()
    if item is None:
        raise NotFoundError(f"no item {external_id!r} in project {project_id}")
    return item


def item_state(item: Item, labels: LabelSpace) -> ItemState:
    """The consensus state of an item row."""
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


def log_event(db: Executor, project_id: int, kind: str, detail: dict, **who: int | None) -> None:
    """One event of the project's append-only log (``who``: its ``item_id``, ``annotator_id``)."""
    row = {"project_id": project_id, "item_id": None, "annotator_id": None, **who}
    db.execute(q.NEW_EVENTS, [{**row, "kind": kind, "detail": detail, "created_at": utcnow()}])
