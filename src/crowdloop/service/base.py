"""The shared core of the labeling service: transactions, caches, and deciding items again."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdloop.consensus import SkillRules
from crowdloop.labels import LabelSpace
from crowdloop.service.database import Database
from crowdloop.service.item_decisions import Executor, ItemDecisions, skill_book
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import ProjectRow, annotator_row, item_row, item_state, log_event, project_row
from crowdloop.service.stored_text import checked_name
from crowdloop.service.types import AnnotatorInfo, ItemState, ProjectInfo
from crowdloop.store import db
from crowdloop.store import model_queries as mq
from crowdloop.store import queries as q
from crowdloop.store.direct import DirectConnection
from crowdloop.store.schema import Annotator, Item, ModelVersion, Project, utcnow

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
        log_event(db, project_id, kind, detail, **who)

    def _annotator(self, session: Session, annotator_id: int) -> Annotator:
        return annotator_row(session, annotator_id)

    def _item(self, session: Session, project_id: int, external_id: str, *, lock: bool = False) -> Item:
        return item_row(
            session, project_id, external_id, self._locked(q.ITEM_BY_EXTERNAL_ID) if lock else q.ITEM_BY_EXTERNAL_ID
        )

    @staticmethod
    def _state(item: Item, labels: LabelSpace) -> ItemState:
        return item_state(item, labels)

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
        self.db.close()
