"""The shared core of the labeling service: transactions, caches, and deciding items again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from crowdloop.service.database import Database, Executor
from crowdloop.service.item_decisions import ItemDecisions
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import ProjectRow, log_event, project_row
from crowdloop.store import db
from crowdloop.store.schema import utcnow

T = TypeVar("T")


class ServiceBase:
    """What every part of the labeling service shares: the engine, transactions with retries,
    the projects' cached configuration (``config``: ``ProjectConfig``) and the decisions of their
    items (``decisions``: ``ItemDecisions``)."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self.db = Database(engine)
        self.engine = engine
        self._clock = clock or utcnow
        self._sessions = self.db.sessions
        self.config = ProjectConfig()
        self.decisions = ItemDecisions(self.config)
        self.checkpointer: db.WalCheckpointer | None = None

    def _run(self, work: Callable[[Session], T]) -> T:
        return self.db.run(work)

    def _locked(self, statement: Any, *, skip: bool = False, of: Any = None) -> Any:
        return self.db.locked(statement, skip=skip, of=of)

    def _project(self, db: Executor, project_id: int) -> ProjectRow:
        return project_row(db, project_id)

    def _event(self, db: Executor, project_id: int, kind: str, detail: dict, **who: int | None) -> None:
        log_event(db, project_id, kind, detail, **who)

    def close(self) -> None:
        """Stop the log checkpoints (if any) and release the database connections."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.db.close()
