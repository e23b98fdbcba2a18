"""Answers given before the project came to the service (another tool's export, a crowd-kit frame):
stored as they are, by annotator name, then the items they touch decided again.

An imported answer counts like a submitted one: the item's answer count, the annotator's answers
and, on a gold item, their gold record (the evidence a ban or a promotion rests on); a reviewer's
decision (``review``) settles its item as ``review`` does. Annotators named for the first time are
created as human annotators without a token (they never log in; ``new_token`` gives them one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdloop.errors import InputError
from crowdloop.labels import LabelSpace
from crowdloop.service.annotators import judge
from crowdloop.service.database import Database
from crowdloop.service.intake import batched, check_batch
from crowdloop.service.item_decisions import ItemDecisions
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import PAGE, ProjectRow, project_row
from crowdloop.service.stored_text import EXTERNAL_ID_LENGTH, NAME_LENGTH, check_text
from crowdloop.service.types import DISPUTED
from crowdloop.store import project_queries as pq
from crowdloop.store import queries as q
from crowdloop.store.schema import utcnow

if TYPE_CHECKING:
    from crowdloop.service.projects import Projects


@dataclass(frozen=True)
class AnswerIn:
    """An answer to import: the item's external id, the annotator's name, the label, and whether
    it is a reviewer's final decision."""

    item: str
    annotator: str
    label: Any
    review: bool = False


@dataclass(frozen=True)
class AnswersImported:
    """What ``import_answers`` did: answers stored, the rows not stored because their annotator
    had answered that item already (the first answer is kept), the annotators it created and the
    items whose status changed."""

    stored: int = 0
    duplicates: list[int] = field(
        default_factory=list,
        metadata={"description": "Rows not stored: their annotator had answered the item already."},
    )
    annotators_created: list[str] = field(
        default_factory=list, metadata={"description": "Annotators named for the first time (no token yet)."}
    )
    items_changed: int = field(default=0, metadata={"description": "Items whose status the imported answers changed."})


@dataclass(frozen=True)
class _Batch:
    rows: list[AnswerIn]
    codes: np.ndarray
    first_row: int
    source: str


class AnswerImport:
    """Answers given before import, stored by annotator name (module docstring)."""

    def __init__(self, db: Database, config: ProjectConfig, decisions: ItemDecisions, projects: Projects) -> None:
        self.db, self.config, self.decisions, self.projects = db, config, decisions, projects

    def check_answers(self, project_id: int, rows: list[AnswerIn], *, source: str = "answers") -> None:
        """Raise what ``import_answers`` would raise for a bad item id, annotator name or label,
        without reading or storing anything (check a file's answers before storing its items)."""
        labels = self.projects.get_project(project_id).labels
        for first in range(0, len(rows), PAGE):
            _parse(rows[first : first + PAGE], labels, first + 1, source)

    def import_answers(
        self, project_id: int, rows: Iterable[AnswerIn], *, batch_size: int = 5000, source: str = "answers"
    ) -> AnswersImported:
        """Store answers in batches of ``batch_size`` rows (numbered from 1), each batch one
        transaction that also re-decides the items it touches. An unknown item, an empty
        annotator name or a label outside the label space raises ``InputError`` naming the row
        and the field; nothing of that batch is stored (the batches before it stay). An annotator
        answering an item twice (in the rows, or already in the project) keeps the first answer;
        the later rows are reported in ``duplicates``."""
        check_batch(batch_size)
        labels = self.projects.get_project(project_id).labels
        total = AnswersImported()
        seen = 0
        for chunk in batched(rows, batch_size):
            batch = _parse(chunk, labels, seen + 1, source)
            try:
                done = self.db.run(lambda s, batch=batch: self._store_answers(s, project_id, batch))
            except IntegrityError:  # an annotator of the batch was created meanwhile: read it this time
                done = self.db.run(lambda s, batch=batch: self._store_answers(s, project_id, batch))
            total = AnswersImported(
                total.stored + done.stored,
                total.duplicates + done.duplicates,
                total.annotators_created + done.annotators_created,
                total.items_changed + done.items_changed,
            )
            seen += len(chunk)
        return total

    def _store_answers(self, session: Session, project_id: int, batch: _Batch) -> AnswersImported:
        project = project_row(session, project_id)
        items = self._answered_items(session, project_id, batch)
        annotators, created = self._annotators_by_name(session, project_id, sorted({r.annotator for r in batch.rows}))
        pairs = [(items[r.item].id, annotators[r.annotator].id) for r in batch.rows]
        asked = {"items": sorted({i for i, _ in pairs}), "annotators": sorted({a for _, a in pairs})}
        stored = set(session.execute(pq.ANSWER_PAIRS, asked).all())
        fresh, duplicates = [], []
        for i, pair in enumerate(pairs):
            if pair in stored:
                duplicates.append(batch.first_row + i)
            else:
                stored.add(pair)
                fresh.append(i)
        if not fresh:
            return AnswersImported(0, duplicates, created, 0)
        now = utcnow()
        rows = [(batch.rows[i], items[batch.rows[i].item], annotators[batch.rows[i].annotator], int(batch.codes[i]))
                for i in fresh]  # fmt: skip
        session.execute(
            pq.NEW_ANSWERS,
            [{"project_id": project_id, "item_id": item.id, "annotator_id": who.id, "label": code,
              "is_gold": item.is_gold, "is_review": row.review, "created_at": now}
             for row, item, who, code in rows],
        )  # fmt: skip
        answers = [(row, item, who, code) for row, item, who, code in rows if not row.review]
        counts = Counter(item.id for _, item, _, _ in answers)
        if counts:
            session.execute(pq.COUNT_ANSWERS, [{"item": i, "n": n} for i, n in counts.items()])
        self._record(session, project, answers)
        reviews = {item.id: (item, who, code) for row, item, who, code in rows if row.review}  # the last one wins
        self.decisions.settle(session, project, list(reviews.values()), imported=True)
        settled = set(reviews)
        open_items = list({item.id: item for _, item, _, _ in answers if not item.is_gold}.values())
        final = ("reviewed", DISPUTED)  # a reviewer's to settle
        open_items = [item for item in open_items if item.id not in settled and item.status not in final]
        changed = sum(
            self.decisions.redecide(session, project, open_items[first : first + PAGE])
            for first in range(0, len(open_items), PAGE)
        )
        return AnswersImported(len(fresh), duplicates, created, changed + len(settled))

    def _answered_items(self, session: Session, project_id: int, batch: _Batch) -> dict[str, Any]:
        """The batch's items (locked on PostgreSQL, as ``submit`` locks them) with their true label."""
        ids = list(dict.fromkeys(r.item for r in batch.rows))
        statement = pq.IMPORTED_ITEMS_LOCKED if self.db.pg else pq.IMPORTED_ITEMS
        items = {r.external_id: r for r in session.execute(statement, {"project": project_id, "ids": ids}).all()}
        missing = [batch.first_row + i for i, r in enumerate(batch.rows) if r.item not in items]
        if missing:
            raise InputError(
                f"answer to unknown item {batch.rows[missing[0] - batch.first_row].item!r}",
                source=batch.source,
                rows=missing,
                field="item",
                unit="row",
                hint="Import the items first.",
            )
        gold_reviews = [batch.first_row + i for i, r in enumerate(batch.rows) if r.review and items[r.item].is_gold]
        if gold_reviews:
            raise InputError(
                "a review of a gold item (its label is known)",
                source=batch.source,
                rows=gold_reviews,
                field="review",
                unit="row",
            )
        return items

    @staticmethod
    def _annotators_by_name(session: Session, project_id: int, names: list[str]) -> tuple[dict[str, Any], list[str]]:
        """The project's annotators of ``names``; the missing ones created (humans, no token)."""
        params = {"project": project_id, "names": names}
        found = {r.name: r for r in session.execute(pq.ANNOTATORS_NAMED, params).all()}
        created = [name for name in names if name not in found]
        if created:
            zero = dict.fromkeys(("answer_count", *q.SKILL_COLUMNS), 0)
            session.execute(
                pq.NEW_ANNOTATORS,
                [{"project_id": project_id, "name": name, "role": "annotator", "kind": "human", "status": "active",
                  "created_at": utcnow(), **zero} for name in created],
            )  # fmt: skip
            found = {r.name: r for r in session.execute(pq.ANNOTATORS_NAMED, params).all()}
        return found, created

    def _record(self, session: Session, project: ProjectRow, answers: list[tuple]) -> None:
        """Count the answers of each annotator, and their gold record (as ``submit`` does), then
        ban or promote on the new evidence."""
        if not answers:
            return
        who = np.array([w.id for _, _, w, _ in answers], dtype=np.int64)
        on_gold = np.array([item.is_gold for _, item, _, _ in answers], dtype=bool)
        code = np.array([c for _, _, _, c in answers], dtype=np.int64)
        truth = np.array([item.truth if item.is_gold else c for _, item, _, c in answers], dtype=np.int64)
        credit = np.where(on_gold, self.config.labels(project).credit(code, truth), 0.0)
        annotators, slot = np.unique(who, return_inverse=True)
        n = np.bincount(slot, minlength=len(annotators))
        gold = np.bincount(slot, weights=on_gold, minlength=len(annotators))
        right = np.bincount(slot, weights=credit, minlength=len(annotators))
        session.execute(
            pq.RECORD_MANY,
            [{"annotator": int(a), "n": int(c), "gold": float(g), "right": float(r)}
             for a, c, g, r in zip(annotators, n, gold, right, strict=True)],
        )  # fmt: skip
        graded = [int(a) for a, g in zip(annotators, gold, strict=True) if g]
        if graded:
            rules = self.config.rules(project)
            rows = session.execute(pq.ANNOTATORS_BY_ID, {"annotators": graded}).all()
            for row in rows:
                judge(session, project, row, rules, self.decisions)


def _parse(rows: list[AnswerIn], labels: LabelSpace, first_row: int, source: str) -> _Batch:
    """Check the rows' item ids, annotator names and labels (no database), naming bad rows."""
    checked = []
    for i, row in enumerate(rows):
        number = first_row + i
        if not isinstance(row, AnswerIn):
            raise InputError(
                f"expected an AnswerIn, got {type(row).__name__}", source=source, rows=[number], unit="row"
            )
        check_text(row.item, EXTERNAL_ID_LENGTH, source=source, row=number, field="item", unit="row")
        check_text(row.annotator, NAME_LENGTH, source=source, row=number, field="annotator", unit="row")
        item, name = row.item.strip(), row.annotator.strip()
        checked.append(AnswerIn(item, name, row.label, bool(row.review)))
    values = [r.label for r in checked]
    bad = [first_row + i for i, v in enumerate(values) if v is None or isinstance(v, dict | list | bool)]
    if bad:
        raise InputError(
            f"label {values[bad[0] - first_row]!r} is not a label", source=source, rows=bad, field="label", unit="row"
        )
    codes = labels.encode(
        np.asarray(values, dtype=object), source=source, field="label", first_row=first_row, unit="row"
    )
    return _Batch(checked, codes, first_row, source)
