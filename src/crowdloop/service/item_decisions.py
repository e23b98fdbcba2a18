"""Deciding a project's items and writing what was decided: the decision from their answers and
model rows (``ItemDecisions.decide``), its write-back with an event for each change of status
(``redecide``; every open item of a project, a page per transaction: ``redecide_open``), and
reviewers' final labels (``settle``). The decision itself is the consensus
layer's (``Decider``, read from the project's configuration)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crowdloop.consensus import ACCEPTED, ESCALATED, MORE, ConsensusPolicy, SkillBook, SkillRules
from crowdloop.consensus.decider import Decisions, Opinions
from crowdloop.consensus.priority import ahead_of_all
from crowdloop.service.database import Database, Executor
from crowdloop.service.intake import soft_columns
from crowdloop.service.project_config import ProjectColumns, ProjectConfig
from crowdloop.service.rows import PAGE, WRITE_PAGE, project_row
from crowdloop.store import model_queries as mq
from crowdloop.store import queries as q
from crowdloop.store import refit_queries as rf
from crowdloop.store.schema import utcnow

_UNREAD = object()


def code_or_none(code: Any) -> int | None:
    return None if code is None or int(code) < 0 else int(code)


def confidence_or_none(table: Decisions, i: int) -> float | None:
    if int(table.label[i]) < 0:
        return None
    value = float(table.confidence[i])
    return value if math.isfinite(value) else None


def audit_labels(db: Executor, items: Sequence[Any]) -> dict[int, int]:
    """The model's label of each of ``items`` that it was sure of and sent to people as its audit
    (``service.automation``): item id -> label code. Items read with it (``audit_label``: submit's
    one read) are not read again."""
    known = [getattr(item, "audit_label", _UNREAD) for item in items]
    if all(label is not _UNREAD for label in known):
        return {item.id: int(label) for item, label in zip(items, known, strict=True) if label is not None}
    if len(items) == 1:
        rows = db.execute(mq.AUDIT_LABEL, {"item": items[0].id}).all()
    else:
        rows = db.execute(mq.AUDIT_LABELS, {"items": [item.id for item in items]}).all()
    return {int(item): int(label) for item, label in rows}


def audit_disputes(items: Sequence[Any], table: Decisions, labels: Any, model: dict[int, int]) -> dict[int, str]:
    """Items of ``table`` the crowd would accept on another label than the model's, among those of
    its audit (``model``: ``audit_labels``) -> why they go to a reviewer instead. The audit measures
    the model's labels: against the crowd's, whose own errors (up to 1 - target) it would count as
    the model's, no model could pass it; a reviewer settles the disagreements, and agreement of the
    model and the crowd, wrong together, is rare."""
    return {
        items[i].id: f"audit: the crowd's {labels.name(int(table.label[i]))!r} against the model's "
        f"{labels.name(model[items[i].id])!r}: a reviewer decides"
        for i in np.flatnonzero(table.status == ACCEPTED)
        if items[i].id in model and model[items[i].id] != int(table.label[i])
    }


def decision_reason(status: str, table: Decisions, i: int, policy: ConsensusPolicy) -> str:
    answers = int(table.answers[i])
    confidence = float(table.confidence[i])
    if status == ACCEPTED:
        return f"calibrated confidence {confidence:.3f} >= target {policy.target} after {answers} answers"
    if status == ESCALATED:
        if answers >= policy.max_overlap:
            return f"confidence {confidence:.3f} below target {policy.target} at max overlap {policy.max_overlap}"
        return (
            f"an expert ({policy.prices.expert:g}) costs less than the crowd's expected answers to reach target "
            f"{policy.target} within max overlap {policy.max_overlap}"
        )
    return (
        f"confidence {confidence:.3f} below target {policy.target}: more answers "
        f"(about {float(table.expected[i]):.1f} expected)"
    )


def skill_book(annotators: Sequence[Any], rules: SkillRules) -> SkillBook:
    """A ``SkillBook`` holding the stored evidence of ``annotators`` (in that order)."""
    book = SkillBook(len(annotators), rules)
    for name in ("gold_right", "gold_total", "since_right", "since_total", "model_right", "model_total"):
        setattr(book, name, np.array([getattr(a, name) for a in annotators], dtype=np.float64))
    book.timed = np.array([a.timed for a in annotators], dtype=np.float64)
    book.fast = np.array([a.fast for a in annotators], dtype=np.float64)
    return book


class ItemDecisions:
    """The decisions of the items of the projects ``config`` holds (module docstring)."""

    def __init__(self, config: ProjectConfig) -> None:
        self.config = config

    @staticmethod
    def voting_versions(db: Executor, project: ProjectColumns) -> dict[int, float]:
        """The newest version of each model of the project -> its temperature (none if the
        project's models do not vote)."""
        if not project.model_votes:
            return {}
        return dict(db.execute(q.VOTING_MODELS, {"project": project.id}).all())

    def decide(self, db: Executor, project: ProjectColumns, items: Sequence[Any], *, models: bool = True) -> Decisions:
        """The decision for ``items`` (anything with ``id``: at most a page) from their answers and
        model rows, nothing written (``redecide`` writes it)."""
        local = {item.id: i for i, item in enumerate(items)}
        ids = list(local)
        one = len(ids) == 1
        rows, versions, votes = [], {}, None
        if one:
            answered = db.execute(q.ONE_ITEM_ANSWERS, {"item": ids[0]})
            if models and project.model_votes:  # the votes with their versions' temperatures, asked
                # with the answers (one round trip in PostgreSQL's pipeline)
                votes = db.execute(q.ONE_ITEM_VOTES, {"item": ids[0], "project": project.id})
        else:
            answered = db.execute(q.ITEM_ANSWERS, {"items": ids})
        answers = answered.all()
        skill = skill_book(answers, self.config.skill_rules(project)).accuracy() if answers else np.empty(0)
        if votes is not None:
            rows = votes.all()
            versions = {r.model_version_id: r.temperature for r in rows}
        elif models and not one:
            versions = self.voting_versions(db, project)
            if versions:
                rows = db.execute(q.ITEM_PREDICTIONS, {"items": ids, "models": list(versions)}).all()
        soft = soft_columns([(local[r[0]], r[1], (r[2], r[3])) for r in rows], versions) if rows else None
        opinions = Opinions.of(len(items), [local[r[0]] for r in answers], [r[1] for r in answers], skill, soft)
        return self.config.decider(project).decide(opinions)

    def redecide(
        self,
        db: Executor,
        project: ProjectColumns,
        items: Sequence[Any],
        *,
        answered: bool = False,
        models: bool = True,
    ) -> int:
        """Decide ``items`` (anything with ``id`` and ``status``: at most a page) again from their
        answers and model rows, a fixed number of statements; returns how many changed status.
        ``answered``: an answer to each item just came in (counted by the same UPDATE);
        ``models=False``: the project has no model versions (not asked again). One item (the
        loop's case) takes statements of a fixed size, which the direct path runs."""
        if not items:
            return 0
        table = self.decide(db, project, items, models=models)
        return self.record(db, project, items, table, answered=answered, audited=models)

    def record(
        self,
        db: Executor,
        project: ProjectColumns,
        items: Sequence[Any],
        table: Decisions,
        *,
        answered: bool = False,
        audited: bool = True,
    ) -> int:
        """Write ``table``, the decisions of ``items`` (from ``decide``), with an event for each
        change of status; returns how many changed. ``answered`` as in ``redecide``; an audited
        item the crowd would settle against the model goes to a reviewer (``audit_disputes``;
        ``audited=False``: the project has no model versions, so no audits), and one still open is
        served before every other item (``consensus.priority.ahead_of_all``: its answers keep or
        take back every label of a version; served in the pool's order, an audit took a median of
        15 s and up to a minute to settle on the Flipkart sample through the API, while the labels
        of a version its audit later took back stood)."""
        decider = self.config.decider(project)
        labels = self.config.labels(project)
        model = audit_labels(db, items) if audited else {}
        disputes = audit_disputes(items, table, labels, model) if model else {}
        first = ahead_of_all(table.priority, decider.policy.prices.crowd) if model else table.priority
        now = utcnow()
        changes, events = [], []
        for i, item in enumerate(items):
            status = ESCALATED if item.id in disputes else str(table.status[i])
            values = {
                "item": item.id,
                "status": status,
                "label": code_or_none(table.label[i]),
                "confidence": confidence_or_none(table, i),
                "needed": int(table.next[i]),
                "priority": float(first[i] if item.id in model and status == MORE else table.priority[i]),
                "branch": int(table.branch[i]),
                "now": now,
            }
            changes.append(values)
            if status != item.status:
                detail = {
                    "from": item.status,
                    "label": None if values["label"] is None else labels.name(values["label"]),
                    "confidence": values["confidence"],
                    "answers": int(table.answers[i]),
                    "target": decider.policy.target,
                    "reason": disputes.get(item.id) or decision_reason(status, table, i, decider.policy),
                }
                events.append({"project_id": project.id, "item_id": item.id, "annotator_id": None, "kind": status,
                               "created_at": now, "detail": detail})  # fmt: skip
        db.execute(q.DECISION_ANSWERED if answered else q.REDECISION, changes)
        if events:
            db.execute(q.NEW_EVENTS, events)
        return len(events)

    def settle(
        self, db: Executor, project: ProjectColumns, reviews: Sequence[tuple[Any, Any, int]], **detail: Any
    ) -> None:
        """Reviewers' final labels: each ``(item, reviewer, code)`` (item with ``id``, ``status`` and
        ``label``; reviewer with ``id``) settles the item as reviewed, with confidence 1: a review is
        the project's decision, final, and the refit takes it as the item's truth, like gold. Logs a
        "reviewed" event (``detail`` added to it)."""
        if not reviews:
            return
        now = utcnow()
        confidence = 1.0
        changes, events = [], []
        for item, reviewer, code in reviews:
            changes.append({"item": item.id, "label": code, "confidence": confidence, "now": now})
            events.append({"project_id": project.id, "item_id": item.id, "annotator_id": reviewer.id,
                           "kind": "reviewed", "created_at": now,
                           "detail": {"from": item.status, "crowd_label": item.label, "label": code,
                                      "confidence": confidence, **detail}})  # fmt: skip
        db.execute(q.SETTLE, changes)
        db.execute(q.NEW_EVENTS, events)


def redecide_open(
    db: Database,
    decisions: ItemDecisions,
    project_id: int,
    fence: Callable[[Executor], None] | None = None,
    *,
    job: bool = False,
) -> int:
    """Decide every open (more or escalated) item of the project again, a page at a time; returns
    how many were decided. A page is decided in a read transaction and written in short ones (which
    first run ``fence``, if any: a job's check that it still holds its claim), so that answers keep
    coming in meanwhile: an item whose decision was written in between (an answer, a review) keeps
    that newer one. ``job`` (a background job, not a call someone waits for): each page written
    leaves the write lock to the requests for a while (``Database.run_page``)."""
    write_page = db.run_page if job else db.run
    last, decided = 0, 0
    while True:

        def read(session: Executor, last: int = last) -> tuple[int, list, Decisions | None]:
            project = project_row(session, project_id)
            # a page of all the project's items in id order (an index range), the open ones decided
            page = session.execute(rf.ITEMS_PAGE, {"project": project_id, "last": last, "size": PAGE}).all()
            if not page:
                return -1, [], None
            open_items = [row for row in page if row.status in (MORE, ESCALATED)]
            return page[-1].id, open_items, decisions.decide(session, project, open_items) if open_items else None

        last, open_items, table = db.read(read)
        if last < 0:
            return decided
        if table is None:
            continue

        def write(session: Executor, open_items: list, table: Decisions) -> int:
            if fence is not None:
                fence(session)
            now = {r.id: (r.status, r.updated_at) for r in session.execute(
                rf.ITEM_VERSIONS, {"items": [row.id for row in open_items]})}  # fmt: skip
            kept = np.array([now.get(row.id) == (row.status, row.updated_at) for row in open_items])
            if not kept.any():
                return 0
            rows = [row for row, keep in zip(open_items, kept, strict=True) if keep]
            decisions.record(session, project_row(session, project_id), rows, table.take(kept))
            return len(rows)

        for start in range(0, len(open_items), WRITE_PAGE):  # short writes: answers keep coming in
            chunk = np.arange(start, min(start + WRITE_PAGE, len(open_items)))
            part = ([open_items[i] for i in chunk], table.take(chunk))
            decided += write_page(lambda s, part=part: write(s, *part))
