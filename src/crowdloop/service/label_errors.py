"""Label errors: accepted labels the newest model version disputes strongly go to the review queue.

Confident learning (Northcutt, Jiang & Chuang, JAIR 2021; ``crowdloop.quality.find_label_errors``,
pruning by noise rate) on the accepted items' labels against the newest version's stored
probabilities: per-class thresholds, the confident joint, and the items off its diagonal with the
largest margins, never one the model predicts as its label. The rows are the stored top labels
with the rest of each row's mass shared by the labels it does not list, over the labels that
occur (``service.priorities.stored_probs``). An item flagged becomes ``disputed`` (it waits for a
reviewer with both labels and the reason); the reviewer's label settles it as any review does,
and ``progress`` counts the fixed and the kept labels. The check is worth as much as the model's
probabilities are out-of-sample for the accepted items: a model trained on an accepted label
tends to agree with it (too few flags, never false ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crowdloop.labels import LabelSpace
from crowdloop.quality import find_label_errors
from crowdloop.service.database import Database
from crowdloop.service.priorities import stored_probs
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import PAGE, project_row
from crowdloop.service.types import DISPUTED, DisputedItem, LabelCheck, LabelErrorCounts
from crowdloop.store import learning as sql
from crowdloop.store import queries as q
from crowdloop.store.schema import utcnow


class LabelErrors:
    """Accepted labels the newest model disputes, sent to the review queue (module docstring)."""

    def __init__(self, db: Database, config: ProjectConfig) -> None:
        self.db, self.config = db, config

    def check_labels(self, project_id: int) -> LabelCheck:
        """Run confident learning on the accepted labels against the newest model version (see the
        module docstring) and send the items it flags to the review queue (status ``disputed``,
        with a ``disputed`` event); returns what it checked and flagged. Called when a model
        version's predictions are stored, and by ``crowdloop errors --project`` and
        ``POST /projects/{id}/label-errors``."""
        n_labels, newest, model = self.db.read(lambda s: self._newest(s, project_id))
        if newest is None:
            return LabelCheck(project_id, None, 0, [])
        pages, last = [], 0
        while page := self.db.read(lambda s, last=last: _accepted_page(s, project_id, last, newest)):
            pages.append(page)
            last = int(page[0][-1].id)
        items = [r for rows, _ in pages for r in rows]
        local = {int(r.id): i for i, r in enumerate(items)}
        predicted = [(local[int(p.item_id)], p.labels, p.probs) for _, rows in pages for p in rows]
        has = np.zeros(len(items), dtype=bool)
        has[[i for i, _, _ in predicted]] = True
        items = [r for r, h in zip(items, has, strict=True) if h]
        if len(items) < 2:
            return LabelCheck(project_id, model, len(items), [])
        keep = np.cumsum(has) - 1
        predicted = [(int(keep[i]), codes, probs) for i, codes, probs in predicted]
        given = np.array([r.label for r in items], dtype=np.int64)
        probs, columns = stored_probs(predicted, len(items), n_labels, given)
        if len(columns) < 2:
            return LabelCheck(project_id, model, len(items), [])
        probs /= probs.sum(axis=1, keepdims=True)
        codes = np.searchsorted(columns, given)
        flagged = np.flatnonzero(find_label_errors(codes, probs))
        best = probs.argmax(axis=1)
        disputed = self.db.run(
            lambda s: self._dispute(s, project_id, model, items, columns, codes, best, probs, flagged)
        )
        return LabelCheck(project_id, model, len(items), disputed)

    def _newest(self, db: Any, project_id: int) -> tuple[int, int | None, str | None]:
        project = project_row(db, project_id)
        newest = db.execute(q.NEWEST_MODEL, {"project": project_id}).scalar()
        model = None if newest is None else ":".join(db.execute(sql.MODEL_NAME, {"model": newest}).one())
        return len(self.config.labels(project)), newest, model

    def _dispute(
        self,
        db: Any,
        project_id: int,
        model: str | None,
        items: list,
        columns: np.ndarray,
        codes: np.ndarray,
        best: np.ndarray,
        probs: np.ndarray,
        flagged: np.ndarray,
    ) -> list[DisputedItem]:
        """Mark the flagged items disputed (those still accepted with the label read) and log why."""
        labels = self.config.labels(project_row(db, project_id))
        now, out, events = utcnow(), [], []
        for i in flagged.tolist():
            given, said = int(columns[codes[i]]), int(columns[best[i]])
            if not db.execute(
                sql.DISPUTE, {"item": items[i].id, "given": given, "model_label": said, "now": now}
            ).rowcount:
                continue  # changed since it was read
            found = DisputedItem(items[i].external_id, labels.name(given), labels.name(said),
                                 round(float(probs[i, codes[i]]), 4), round(float(probs[i, best[i]]), 4))  # fmt: skip
            out.append(found)
            events.append({"project_id": project_id, "item_id": items[i].id, "annotator_id": None,
                           "kind": "disputed", "created_at": now,
                           "detail": {"from": "accepted", "label": found.label, "model_label": found.model_label,
                                      "model": model, "reason": dispute_reason(found)}})  # fmt: skip
        if events:
            db.execute(q.NEW_EVENTS, events)
        return out


def label_error_counts(db: Any, project_id: int) -> LabelErrorCounts:
    """The disputed labels and what became of them (``Progress.label_errors``)."""
    counts = {"flagged": 0, "pending": 0, "fixed": 0, "kept": 0}
    for status, kept, n in db.execute(sql.DISPUTE_COUNTS, {"project": project_id}).all():
        counts["flagged"] += int(n)
        if status == "disputed":
            counts["pending"] += int(n)
        elif status == "reviewed":
            counts["kept" if kept else "fixed"] += int(n)
    return LabelErrorCounts(**counts)


def disputed_fields(item: Any, labels: LabelSpace) -> dict[str, str]:
    """``model_label`` and ``reason`` of a disputed item (``Item`` row) for the review queue."""
    if item.status != DISPUTED or item.disputed_label is None:
        return {}
    model, accepted = labels.name(item.disputed_label), labels.name(item.disputed_from)
    reason = f"the newest model disputes the accepted label {accepted}: it gives {model}"
    return {"model_label": model, "reason": reason}


def dispute_reason(item: DisputedItem) -> str:
    """Why a label is disputed, in words."""
    return (
        f"confident learning: the model gives the accepted label {item.label} {item.label_probability:.2f} "
        f"and {item.model_label} {item.model_probability:.2f}"
    )


def _accepted_page(db: Any, project_id: int, last: int, newest: int) -> tuple[list, list] | None:
    """A page of accepted items after id ``last`` and the newest version's predictions for them."""
    items = db.execute(sql.ACCEPTED_ITEMS, {"project": project_id, "last": last, "size": PAGE}).all()
    if not items:
        return None
    return items, db.execute(q.ITEM_PREDICTIONS, {"items": [r.id for r in items], "models": [newest]}).all()
