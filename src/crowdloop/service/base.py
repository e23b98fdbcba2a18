"""The shared core of the labeling service: transactions, caches, and deciding items again."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from crowdloop.labels import LabelSpace
from crowdloop.service.database import Database, Executor
from crowdloop.service.item_decisions import ItemDecisions
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import ProjectRow, item_row, item_state, log_event, project_row
from crowdloop.service.types import ItemState
from crowdloop.store import db
from crowdloop.store import queries as q
from crowdloop.store.direct import DirectConnection
from crowdloop.store.schema import Item, utcnow

T = TypeVar("T")


class ServiceBase:
    """What every part of the labeling service shares: the engine, transactions with retries,
    the projects' cached configuration (``config``: ``ProjectConfig``) and the decisions of their
    items (``decisions``: ``ItemDecisions``)."""

    def __init__(self, engine: Engine, *, seed: int | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.db = Database(engine)
        self.engine = engine
        self._clock = clock or utcnow
        self._sessions = self.db.sessions
        self._pg = self.db.pg
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.config = ProjectConfig()
        self.decisions = ItemDecisions(self.config)
        self.checkpointer: db.WalCheckpointer | None = None

    def _run(self, work: Callable[[Session], T]) -> T:
        return self.db.run(work)

    def _read(self, work: Callable[[Session], T]) -> T:
        return self.db.read(work)

    def _run_direct(self, work: Callable[[DirectConnection], T], *, write: bool = True) -> T:
        return self.db.run_direct(work, write=write)

    def _draw(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def _locked(self, statement: Any, *, skip: bool = False, of: Any = None) -> Any:
        return self.db.locked(statement, skip=skip, of=of)

    def _project(self, db: Executor, project_id: int) -> ProjectRow:
        return project_row(db, project_id)

    def _event(self, db: Executor, project_id: int, kind: str, detail: dict, **who: int | None) -> None:
        log_event(db, project_id, kind, detail, **who)

    def _item(self, session: Session, project_id: int, external_id: str, *, lock: bool = False) -> Item:
        return item_row(
            session, project_id, external_id, self._locked(q.ITEM_BY_EXTERNAL_ID) if lock else q.ITEM_BY_EXTERNAL_ID
        )

    @staticmethod
    def _state(item: Item, labels: LabelSpace) -> ItemState:
        return item_state(item, labels)

    def close(self) -> None:
        """Stop the log checkpoints (if any) and release the database connections."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.db.close()
