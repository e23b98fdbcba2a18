"""Where a project stands: progress, results, the answers frame, export pages and the event log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from crowdloop.consensus import ACCEPTED
from crowdloop.labels import LabelSpace
from crowdloop.service.database import Database
from crowdloop.service.intake import check_batch
from crowdloop.service.item_decisions import ItemDecisions
from crowdloop.service.label_errors import label_error_counts
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import PAGE, SETTLED, project_row
from crowdloop.service.types import Progress, ResultRow, SuggestionMeasure
from crowdloop.store import report_queries as rq

if TYPE_CHECKING:
    from crowdloop.service.automation import Automation
    from crowdloop.service.projects import Projects


def label_source(status: str, model_version: str | None) -> str:
    """Where an item's label came from (``ResultRow.source``)."""
    if status in ("reviewed", "gold"):
        return "review" if status == "reviewed" else "gold"
    return "model" if model_version is not None else "crowd"


def sourced(row: Any) -> tuple[str, str | None]:
    """``ResultRow.source`` and ``model_version`` of an item row of ``report_queries.RESULTS_PAGE``."""
    source = label_source(row.status, row.version)
    return source, row.version if source == "model" else None


class ExportPage(NamedTuple):
    """A page of the export: frames in the shapes of ``crowdloop.io.exports``."""

    results: pd.DataFrame
    answers: pd.DataFrame
    predictions: pd.DataFrame


class Reports:
    """Where a project stands: progress, results, the answers frame and the event log."""

    def __init__(
        self, db: Database, config: ProjectConfig, decisions: ItemDecisions, projects: Projects, automation: Automation
    ) -> None:
        self.db, self.config, self.decisions, self.projects = db, config, decisions, projects
        self.automation = automation

    def progress(self, project_id: int) -> Progress:
        def work(session: Session) -> Progress:
            project = project_row(session, project_id)
            policy = self.config.policy(project)
            # one pass over a covering index of items, one over answers: no table scan
            by_status = session.execute(rq.ITEM_PROGRESS, {"project": project_id}).all()
            counts = {row[0]: int(row[1]) for row in by_status}
            real = [row for row in by_status if row[0] != "gold"]
            n_items = sum(int(row[1]) for row in real)
            real_answers = sum(int(row[2]) for row in real)
            settled = [row for row in real if row[0] in SETTLED]
            confident = sum(int(row[4]) for row in settled)
            mean_confidence = sum(float(row[3]) for row in settled) / confident if confident else None
            automated = sum(int(row[5]) for row in real if row[0] == ACCEPTED)
            kinds = session.execute(rq.ANSWER_KINDS, {"project": project_id}).all()
            total = sum(int(n) for _, _, n in kinds)
            gold_answers = sum(int(n) for gold, review, n in kinds if gold and not review)
            reviews = sum(int(n) for _, review, n in kinds if review)
            accepted = counts.get(ACCEPTED, 0)
            versions = self.decisions.voting_versions(session, project)
            model_rows = session.scalar(rq.MODEL_ROWS, {"versions": list(versions)}) if versions else 0
            people = session.execute(rq.PEOPLE, {"project": project_id}).one()
            crowd = total - reviews
            cost = crowd * policy.prices.crowd + reviews * policy.prices.expert + int(model_rows) * policy.prices.model
            model_labelled, audit, model_versions = self.automation.model_progress(session, project, n_items)
            return Progress(
                project_id=project_id,
                items=n_items,
                gold_items=counts.get("gold", 0),
                status_counts={k: int(v) for k, v in counts.items()},
                answers=crowd,
                gold_answers=gold_answers,
                reviews=reviews,
                answers_per_item=float(real_answers) / n_items if n_items else 0.0,
                cost=float(cost),
                accuracy_estimate=mean_confidence,
                automation_rate=float(automated) / accepted if accepted else 0.0,
                annotators=int(people[0]),
                banned=int(people[1]),
                automated=model_labelled,
                automated_share=model_labelled / n_items if n_items else 0.0,
                paid_answers_per_item=crowd / n_items if n_items else 0.0,
                cost_per_item=float(cost) / n_items if n_items else 0.0,
                audit=audit,
                model_versions=model_versions,
                suggestions=[SuggestionMeasure(**m) for m in project.suggestion_effect or []],  # the last refit's
                label_errors=label_error_counts(session, project_id),
            )

        return self.db.read(work)

    def results(self, project_id: int, *, batch_size: int = 10000) -> Iterator[ResultRow]:
        """Every non-gold item with its label and calibrated confidence, read in fixed-size pages."""
        check_batch(batch_size)
        info = self.projects.get_project(project_id)
        last = 0
        while True:
            page = self.db.read(
                lambda s, last=last: s.execute(
                    rq.RESULTS_PAGE, {"project": project_id, "last": last, "size": batch_size}
                ).all()
            )
            if not page:
                return
            decoded = info.labels.decode([r.label if r.label is not None else 0 for r in page])
            for r, label in zip(page, decoded, strict=True):
                yield ResultRow(
                    r.external_id, r.status, None if r.label is None else str(label), r.confidence, r.answer_count,
                    *sourced(r),
                )  # fmt: skip
            last = page[-1].id

    def export_pages(self, project_id: int, *, batch_size: int = PAGE, details: bool = True) -> Iterator[ExportPage]:
        """Every item, gold items too (status ``gold``, their true label at confidence 1 and their
        ``hint``), in pages of ``batch_size`` frames, as ``crowdloop.io.exports`` takes them:
        ``results`` (with the payload under ``data``), its human ``answers`` (``review``: a
        reviewer's final decision) and the top label of each stored model version's prediction
        (``model`` ``name:version``, ``score`` its probability); without ``details``, the answers
        and predictions frames are empty. At most three statements per page, each a range of item
        ids, whatever the project's size."""
        check_batch(batch_size)
        labels = self.projects.get_project(project_id).labels
        return self._export_pages(project_id, labels, batch_size, details)

    def export_frame(self, project_id: int) -> pd.DataFrame:
        """The ``results`` frames of every page of ``export_pages`` as one (what the item exports write)."""
        frames = [page.results for page in self.export_pages(project_id, details=False)]
        return pd.concat(frames, ignore_index=True) if frames else _results_frame([], [])

    def _export_pages(
        self, project_id: int, labels: LabelSpace, batch_size: int, details: bool
    ) -> Iterator[ExportPage]:
        last = 0
        while True:
            page = self.db.read(lambda s, last=last: self._export_page(s, project_id, last, batch_size, details))
            if page is None:
                return
            last, items, answers, predictions = page
            decode = labels.decode
            results = _results_frame(items, decode([0 if r.label is None else r.label for r in items]))
            task = {r.id: r.external_id for r in items}
            answer_frame = pd.DataFrame(
                {
                    "task": [task[a.item_id] for a in answers],
                    "worker": [a.name for a in answers],
                    "label": decode([a.label for a in answers]).tolist(),
                    "review": [bool(a.is_review) for a in answers],
                }
            )
            tops = [(p, max(range(len(p.probs)), key=p.probs.__getitem__)) for p in predictions if p.item_id in task]
            prediction_frame = pd.DataFrame(
                {
                    "task": [task[p.item_id] for p, _ in tops],
                    "model": [f"{p.name}:{p.version}" for p, _ in tops],
                    "label": decode([p.labels[i] for p, i in tops]).tolist(),
                    "score": [float(p.probs[i]) for p, i in tops],
                }
            )
            yield ExportPage(results, answer_frame, prediction_frame)

    @staticmethod
    def _export_page(session: Session, project_id: int, last: int, size: int, details: bool) -> tuple | None:
        items = session.execute(rq.EXPORT_PAGE, {"project": project_id, "last": last, "size": size}).all()
        if not items:
            return None
        first, end = items[0].id, items[-1].id
        if not details:
            return end, items, [], []
        span = {"project": project_id, "first": first, "end": end}
        answers = session.execute(rq.EXPORT_ANSWERS, span).all()
        predictions = session.execute(rq.EXPORT_PREDICTIONS, span).all()
        return end, items, answers, predictions

    def answers_frame(self, project_id: int) -> pd.DataFrame:
        """The human answers as a crowd-kit frame: ``task, worker, label`` (plus ``duration_ms``,
        ``gold``: whether the item is gold, ``review``: a reviewer's final decision)."""
        info = self.projects.get_project(project_id)
        rows = self.db.read(lambda s: s.execute(rq.ANSWERS_FRAME, {"project": project_id}).all())
        frame = pd.DataFrame(rows, columns=["task", "worker", "label", "duration_ms", "gold", "review"])
        frame["label"] = info.labels.decode(frame["label"].to_numpy(dtype=np.int64)) if len(frame) else []
        return frame

    def events(self, project_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
        """The latest decisions of the append-only event log, newest first."""
        limit = max(1, min(int(limit), 10_000))

        def work(session: Session) -> list[dict[str, Any]]:
            project_row(session, project_id)
            rows = session.execute(rq.EVENTS, {"project": project_id, "size": limit}).all()
            return [
                {"id": e.id, "kind": e.kind, "item": item, "annotator": name, "detail": e.detail, "at": e.created_at}
                for e, item, name in rows
            ]

        return self.db.read(work)


def _results_frame(items: list, labels: list) -> pd.DataFrame:
    """The ``results`` frame of ``crowdloop.io.exports`` for item rows and their decoded labels,
    with where each label came from (``label_source``)."""
    sourced_rows = [sourced(r) for r in items]
    return pd.DataFrame(
        {
            "task": [r.external_id for r in items],
            "status": [r.status for r in items],
            "label": [None if r.label is None else str(x) for r, x in zip(items, labels, strict=True)],
            "confidence": [r.confidence for r in items],
            "answers": [r.answer_count for r in items],
            "data": [r.payload for r in items],
            "hint": [r.hint for r in items],
            "source": [source for source, _ in sourced_rows],
            "model_version": [version for _, version in sourced_rows],
        },
        columns=["task", "status", "label", "confidence", "answers", "data", "hint", "source", "model_version"],
    )
