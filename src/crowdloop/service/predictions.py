"""Model versions and their predictions, which vote and suggest."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdloop.errors import InputError
from crowdloop.service.database import Database
from crowdloop.service.intake import batched, check_batch, parse_probs
from crowdloop.service.item_decisions import ItemDecisions
from crowdloop.service.label_errors import LabelErrors
from crowdloop.service.priorities import prioritize
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import project_row
from crowdloop.service.stored_text import EXTERNAL_ID_LENGTH, check_text, checked_name
from crowdloop.service.types import ModelVersionInfo
from crowdloop.store import learning as sql
from crowdloop.store import model_queries as mq
from crowdloop.store import project_queries as pq
from crowdloop.store.schema import ModelVersion, utcnow

if TYPE_CHECKING:
    from crowdloop.service.projects import Projects


def model_version_id(db: Database, project_id: int, name: str, version: str) -> int:
    """The id of a model version, created when new."""
    name, version = checked_name(name, "model"), checked_name(version, "model version")

    def work(session: Session) -> int:
        project_row(session, project_id)
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
        return db.run(work)
    except IntegrityError:  # created concurrently
        return db.run(work)


class Predictions:
    """Model versions and their predictions, which vote and suggest."""

    def __init__(
        self,
        db: Database,
        config: ProjectConfig,
        decisions: ItemDecisions,
        projects: Projects,
        label_errors: LabelErrors,
    ) -> None:
        self.db, self.config, self.decisions = db, config, decisions
        self.projects, self.label_errors = projects, label_errors

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
        items it covers are re-decided in the same batches, then the open items weighed again
        (``service.priorities``) and the accepted labels checked against the newest version
        (``check_labels``)."""
        check_batch(batch_size)
        info = self.projects.get_project(project_id)
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
        version_id = model_version_id(self.db, project_id, model, version)
        done = 0
        for batch in batched(rows, batch_size):
            parsed = [
                parse_probs(probs, info.labels, row=done + i + 1, top_k=top_k, source="probabilities")
                for i, (_, probs) in enumerate(batch)
            ]
            ids = [task for task, _ in batch]
            for row, task in enumerate(ids, start=done + 1):
                check_text(task, EXTERNAL_ID_LENGTH, source="probabilities", row=row, field="item", unit="row")
            self.db.run(
                lambda s, ids=ids, parsed=parsed, first=done + 1: self._store_predictions(
                    s, project_id, version_id, ids, parsed, first
                )
            )
            done += len(batch)
        prioritize(self.db, self.config, project_id)
        self.label_errors.check_labels(project_id)
        return next(v for v in self.model_versions(project_id) if v.id == version_id)

    def _store_predictions(
        self, session: Session, project_id: int, version_id: int, ids: list[str], parsed: list, first: int
    ) -> None:
        project = project_row(session, project_id)
        found = dict(session.execute(pq.ITEM_IDS, {"project": project_id, "ids": ids}).all())
        missing = [first + i for i, x in enumerate(ids) if x not in found]
        if missing:
            raise InputError(
                f"prediction for unknown item {ids[missing[0] - first]!r}",
                source="probabilities",
                rows=missing,
                unit="row",
            )
        item_ids = [found[x] for x in ids]
        stored = dict(session.execute(mq.PREDICTION_IDS, {"version": version_id, "items": item_ids}).all())
        fresh = [
            {"model_version_id": version_id, "item_id": i, "labels": p[0], "probs": p[1]}
            for i, p in zip(item_ids, parsed, strict=True)
            if i not in stored
        ]
        stale = [
            {"prediction": stored[i], "labels": p[0], "probs": p[1]}
            for i, p in zip(item_ids, parsed, strict=True)
            if i in stored
        ]
        if fresh:
            session.execute(mq.NEW_PREDICTIONS, fresh)
        if stale:
            session.execute(mq.SET_PREDICTION, stale)
        session.execute(mq.COUNT_PREDICTIONS, {"version_id": version_id, "added": len(fresh)})
        if version_id in self.decisions.voting_versions(session, project):
            statement = mq.OPEN_AMONG_LOCKED if self.db.pg else mq.OPEN_AMONG
            self.decisions.redecide(session, project, session.execute(statement, {"items": item_ids}).all())

    def model_versions(self, project_id: int) -> list[ModelVersionInfo]:
        def work(session: Session) -> list[ModelVersionInfo]:
            project_row(session, project_id)
            rows = session.execute(sql.MODEL_VERSIONS, {"project": project_id})
            return [
                ModelVersionInfo(r.id, r.project_id, r.name, r.version, r.prediction_count, r.temperature, r.created_at)
                for r in rows
            ]

        return self.db.read(work)
