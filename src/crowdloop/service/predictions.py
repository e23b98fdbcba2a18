"""Model versions and their predictions, which vote and suggest."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from crowdloop.errors import InputError
from crowdloop.service.intake import batched, check_batch, parse_probs
from crowdloop.service.label_errors import LabelErrors
from crowdloop.service.priorities import prioritize
from crowdloop.service.stored_text import EXTERNAL_ID_LENGTH, check_text
from crowdloop.service.types import ModelVersionInfo
from crowdloop.store import learning as sql
from crowdloop.store import model_queries as mq
from crowdloop.store import project_queries as pq


class Predictions(LabelErrors):
    """Model versions and their predictions, which vote and suggest."""

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
        for batch in batched(rows, batch_size):
            parsed = [
                parse_probs(probs, info.labels, row=done + i + 1, top_k=top_k, source="probabilities")
                for i, (_, probs) in enumerate(batch)
            ]
            ids = [task for task, _ in batch]
            for row, task in enumerate(ids, start=done + 1):
                check_text(task, EXTERNAL_ID_LENGTH, source="probabilities", row=row, field="item", unit="row")
            self._run(
                lambda s, ids=ids, parsed=parsed, first=done + 1: self._store_predictions(
                    s, project_id, version_id, ids, parsed, first
                )
            )
            done += len(batch)
        prioritize(self, project_id)
        self.check_labels(project_id)
        return next(v for v in self.model_versions(project_id) if v.id == version_id)

    def _store_predictions(
        self, session: Session, project_id: int, version_id: int, ids: list[str], parsed: list, first: int
    ) -> None:
        project = self._project(session, project_id)
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
            statement = mq.OPEN_AMONG_LOCKED if self._pg else mq.OPEN_AMONG
            self.decisions.redecide(session, project, session.execute(statement, {"items": item_ids}).all())

    def model_versions(self, project_id: int) -> list[ModelVersionInfo]:
        def work(session: Session) -> list[ModelVersionInfo]:
            self._project(session, project_id)
            rows = session.execute(sql.MODEL_VERSIONS, {"project": project_id})
            return [
                ModelVersionInfo(r.id, r.project_id, r.name, r.version, r.prediction_count, r.temperature, r.created_at)
                for r in rows
            ]

        return self._read(work)
