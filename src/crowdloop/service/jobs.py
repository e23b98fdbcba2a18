"""The periodic full refit as a job over the database, never inside a request."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from crowdloop.consensus import ESCALATED, MORE
from crowdloop.service.base import PAGE, ServiceBase, update_rows
from crowdloop.service.priorities import prioritize
from crowdloop.service.refit import StoredAnswers
from crowdloop.service.refit import refit as fit_project
from crowdloop.service.types import RefitReport
from crowdloop.store.schema import Annotator, Answer, GoldLabel, Item, ModelVersion, Prediction, Project, utcnow


class Jobs(ServiceBase):
    """The periodic full refit as a job over the database, never inside a request."""

    def refit(self, project_id: int) -> RefitReport:
        """Full EM refit (``crowdloop.consensus.DynamicConsensus`` on every answer, gold clamped):
        annotator skills, the model versions' temperatures, the calibrator of the online decision,
        then every open item re-decided and weighed (``service.priorities``). A job (``crowdloop
        refit``), never inside a request."""
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
                    update_rows(Annotator)
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
                    update_rows(ModelVersion).where(ModelVersion.id == version_id).values(temperature=temperature)
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
        prioritize(self, project_id)
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
                .where(Item.project_id == project_id, Item.is_gold.is_(True), Item.id > last)
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
        """Decide every open (more or escalated) item again, a page per transaction; returns how
        many were decided."""
        last, decided = 0, 0
        while True:

            def work(session: Session, last: int = last) -> tuple[int, int]:
                project = self._project(session, project_id)
                # a page of all the project's items in id order (an index range), the open ones decided
                page = session.execute(
                    self._locked(
                        select(Item.id, Item.status)
                        .where(Item.project_id == project_id, Item.is_gold.is_(False), Item.id > last)
                        .order_by(Item.id)
                        .limit(PAGE)
                    )
                ).all()
                if not page:
                    return -1, 0
                open_items = [row for row in page if row.status in (MORE, ESCALATED)]
                self._redecide(session, project, open_items)
                return page[-1].id, len(open_items)

            last, n = self._run(work)
            if last < 0:
                return decided
            decided += n
