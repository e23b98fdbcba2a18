"""The loop itself: leasing the next task, submitting, skipping, and the reviewers' queue."""

from __future__ import annotations

import dataclasses
import random
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdloop.consensus import ESCALATED
from crowdloop.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from crowdloop.service.annotators import judge
from crowdloop.service.database import Database, Executor
from crowdloop.service.item_decisions import ItemDecisions, skill_book
from crowdloop.service.label_errors import disputed_fields
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import Prefixed, ProjectRow, item_row, item_state, project_row
from crowdloop.service.stored_text import json_problem, text_problem
from crowdloop.service.suggestions import shows_suggestions, top_suggestions
from crowdloop.service.types import (
    DISPUTED,
    AnnotatorInfo,
    Clock,
    ItemState,
    ReviewAnswer,
    ReviewTask,
    SubmitOut,
    Suggestion,
    TaskOut,
)
from crowdloop.store import queries as q
from crowdloop.store.direct import DirectConnection
from crowdloop.store.schema import Annotator, Answer, Item, utcnow

REVIEWED = "reviewed"
IDEMPOTENCY_KEY_LENGTH = 200
LEASE_ID_LENGTH = 32
T = TypeVar("T")


def checked_member(session: Session, annotator_id: int, project_id: int) -> Annotator:
    """The annotator, read again: a member of the project (``NotFoundError`` otherwise, as for
    another project) and active (``ForbiddenError``: a banned member reads nothing)."""
    person = session.get(Annotator, annotator_id) if isinstance(annotator_id, int) else None
    if person is None or person.project_id != project_id:
        raise NotFoundError(f"no project with id {project_id!r}")
    if person.status != "active":
        raise ForbiddenError(f"annotator {person.name!r} is {person.status}")
    return person


def hidden_from(person: Annotator, project: Any, item: Item) -> bool:
    """Whether a reviewer may not see the item: without the project's ``reviewers_see_gold`` they
    see the items they review (escalated, disputed or reviewed) only, so that a gold item looks like
    any item not up for review."""
    up_for_review = (ESCALATED, DISPUTED, REVIEWED)
    return person.role == "reviewer" and not project.reviewers_see_gold and item.status not in up_for_review


def aware(moment: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite keeps them naive)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Tasks:
    """The loop itself: leasing the next task, submitting, skipping, and the reviewers' queue.
    ``seed`` fixes the gold draws; ``clock`` (an aware UTC datetime) is the time leases are measured by."""

    def __init__(
        self, db: Database, config: ProjectConfig, decisions: ItemDecisions, *, seed: int | None, clock: Clock
    ) -> None:
        self.db, self.config, self.decisions, self._clock = db, config, decisions, clock
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def _draw(self) -> float:
        with self._rng_lock:
            return self._rng.random()

    def next_task(self, annotator: AnnotatorInfo) -> TaskOut | None:
        """Lease the next task to an active annotator (None: nothing left for them).

        With probability ``gold_rate`` a gold item they have not answered, and always while they sit
        their exam (``SkillRules.exam``: a new annotator answers gold until the ban test can tell),
        while there is real work for them (never gold alone: a task after "nothing left" would be
        gold); otherwise the open item with the highest expected information per cost
        (``crowdloop.consensus.priority``), never one they answered or hold, never beyond the
        answers the item still needs counting open leases; in a taxonomy, weighted by the
        annotator's skill in the item's predicted branch.
        Expired leases return to the pool first. An annotator holds one task at a time (the
        database holds one open lease per annotator): asking again, or many times at once, returns
        the task they hold, unless it expired or they answered its item meanwhile (an import, a
        review): then it is let go and the next one leased."""
        gold_draw = self._draw()
        try:
            return self.db.run_direct(lambda db: self._next_task(db, annotator.id, gold_draw))
        except IntegrityError:  # a concurrent call leased their task first: it is the one they hold
            return self.db.run_direct(lambda db: self._next_task(db, annotator.id, gold_draw))

    def _next_task(self, connection: DirectConnection, annotator_id: int, gold_draw: float) -> TaskOut | None:
        now = self._clock()
        found = connection.execute(q.WORKER, {"annotator": annotator_id, "now": now}).first()
        if found is None:
            raise NotFoundError(f"no annotator with id {annotator_id!r}")
        project = ProjectRow(Prefixed(found, "p_"), connection)
        annotator = self._check_worker(Prefixed(found, "a_"), project)
        if found.any_expired:
            self._reclaim(connection, project.id, now)
        if found.held_id is not None:
            expires = aware(found.held_expires)
            if expires > now and not found.held_answered:
                item = connection.execute(q.TASK_ITEM, {"item": found.held_item}).one()
                held = found.held_suggestions if found.held_shown is not False else None
                return self._task(found.held_id, item, held, expires)
            self._let_go(connection, found.held_id, found.held_item)
        item = None
        model = found.newest_model if project.suggestions > 0 else None  # its suggestions come with the item
        exam = project.gold_rate > 0 and bool(skill_book([annotator], self.config.rules(project)).in_exam()[0])
        if exam or gold_draw < project.gold_rate:
            item = self._pick_gold(connection, project, annotator, model)
        if item is None:
            item = self._pick_pool(connection, project, annotator, model)
        if item is None:
            return None
        lease_id = secrets.token_hex(16)
        suggestions = self._suggestions(project, item.s_labels, item.s_probs)
        shown = None if suggestions is None else shows_suggestions(lease_id, project.hide_rate)
        expires = now + timedelta(seconds=project.lease_seconds)
        task = self._task(lease_id, item, suggestions if shown else None, expires)  # first: no lease stored without it
        connection.execute(
            q.NEW_LEASE,
            {"id": lease_id, "project_id": project.id, "item_id": item.id, "annotator_id": annotator.id,
             "state": "open", "suggestions": suggestions, "suggestions_shown": shown, "created_at": now,
             "expires_at": expires},
        )  # fmt: skip
        return task

    @staticmethod
    def _check_worker(annotator: Any, project: Any) -> Any:
        """``annotator``, if allowed to work on tasks: active, human, an annotator, or a reviewer of
        a project whose reviewers do not see gold (nobody who can read gold answers tasks)."""
        if annotator.status != "active":
            raise ForbiddenError(f"annotator {annotator.name!r} is {annotator.status}")
        if annotator.kind != "human":
            raise ForbiddenError(f"annotator {annotator.name!r} is a model: models add predictions, not answers")
        if annotator.role == "owner" or (annotator.role == "reviewer" and project.reviewers_see_gold):
            raise ForbiddenError(
                f"{annotator.name!r} is a{'n' * (annotator.role == 'owner')} {annotator.role} who may read gold "
                "items: they take no tasks (reviewers do where the project's reviewers_see_gold is off)"
            )
        return annotator

    @staticmethod
    def _task(lease_id: str, item: Row, suggestions: list | None, expires: datetime) -> TaskOut:
        """The task of a lease; ``ConflictError`` for an item whose payload no response can carry
        (stored before imports were checked as they are now: see ``crowdloop.service.stored_text``)."""
        problem = json_problem(item.payload, "payload")
        if problem:
            raise ConflictError(f"item {item.external_id!r} cannot be sent ({problem}): import it again")
        return TaskOut(
            lease_id=lease_id,
            item=item.external_id,
            payload=item.payload,
            suggestions=[Suggestion(**s) for s in suggestions or []],
            expires_at=aware(expires),
        )

    @staticmethod
    def _let_go(connection: Executor, lease_id: str, item_id: int) -> bool:
        """Close an open lease as expired and give its item's place back to the pool (False: it was
        closed already)."""
        if not connection.execute(q.EXPIRE_LEASE, {"lease": lease_id}).rowcount:
            return False
        connection.execute(q.RELEASE_ITEM, {"item": item_id})
        return True

    def _reclaim(self, connection: Executor, project_id: int, now: datetime) -> int:
        """Return up to ``queries.RECLAIM_BATCH`` expired leases of the project to the pool."""
        statement = q.EXPIRED_LOCKED if self.db.pg else q.EXPIRED
        expired = connection.execute(statement, {"now": now, "project": project_id}).all()
        return sum(self._let_go(connection, lease_id, item_id) for lease_id, item_id in expired)

    def _pick_gold(self, connection: Executor, project: ProjectRow, annotator: Any, model: int | None) -> Row | None:
        """A gold item the annotator has not seen, leased (``queries.TAKE``'s row), if the pool holds
        real work for them: gold only goes beside it, or every task after a 204 would be gold (both
        asked in one round trip). A candidate drawn at random; on PostgreSQL one whose row another
        transaction holds is skipped for the next (in the pool's order), not waited for: two
        annotators leasing the same gold item at once deadlocked with the rows they held already."""
        params = {"project": project.id, "annotator": annotator.id}
        real_work = connection.execute(q.REAL_WORK, params)
        gold = connection.execute(q.GOLD_POOL, params)
        if real_work.first() is None:
            return None
        candidates = gold.scalars().all()
        if not candidates:
            return None
        with self._rng_lock:
            drawn = self._rng.choice(candidates)
        take = q.TAKE_GOLD_LOCKED if self.db.pg else q.TAKE_GOLD
        for item_id in (drawn, *(c for c in candidates if c != drawn)):
            taken = connection.execute(take, {"item": item_id, "model": model}).first()
            if taken is not None:
                return taken
        return None

    def _pick_pool(self, connection: Executor, project: ProjectRow, annotator: Any, model: int | None) -> Row | None:
        """The open item that most needs this annotator's answer, leased (``queries.TAKE``'s row)."""
        routed = project.is_taxonomy and bool(annotator.branch_skills)
        if not routed:
            params = {"project": project.id, "annotator": annotator.id, "model": model}
            taken = connection.execute(q.TAKE_BEST_LOCKED if self.db.pg else q.TAKE_BEST, params).first()
            if taken is not None or not self.db.pg:
                return taken  # SQLite holds the write lock: nothing could have taken it meanwhile
            statement = q.POOL_LOCKED
        else:
            statement = q.POOL_ROUTED_LOCKED if self.db.pg else q.POOL_ROUTED
        candidates = connection.execute(statement, {"project": project.id, "annotator": annotator.id}).all()
        if routed:
            overall = max(float(skill_book([annotator], self.config.rules(project)).accuracy()[0]), 1e-3)
            skills = annotator.branch_skills

            def routed_value(c: Row) -> float:
                return c.priority * skills.get(str(c.branch), overall) / overall if c.branch >= 0 else c.priority

            candidates = sorted(candidates, key=lambda c: -routed_value(c))
        for candidate in candidates:
            taken = connection.execute(q.TAKE, {"item": candidate.id, "model": model}).first()
            if taken is not None:
                return taken
        return None

    def _suggestions(self, project: ProjectRow, labels: list | None, probs: list | None) -> list[dict] | None:
        """The top labels of a model version's prediction (``labels``, ``probs``; None: no
        prediction) for the annotator's screen."""
        if project.suggestions <= 0 or labels is None:
            return None
        return top_suggestions(labels, probs, self.config.labels(project), project.suggestions)

    def submit(
        self,
        annotator: AnnotatorInfo,
        lease_id: str,
        label: Any,
        *,
        duration_ms: int | None = None,
        idempotency_key: str | None = None,
        then_next: bool = False,
    ) -> SubmitOut:
        """Store the answer to a leased task and, in the same transaction, update the item's
        posterior and status (accept / more / escalate) or, for gold, the annotator's skill and a
        possible ban. A retry with the same lease (or the same ``idempotency_key``) returns the
        stored answer with ``duplicate=True``. Raises ``UnknownLabelError`` for a label outside the
        label space (taxonomy inner nodes are fine), ``ConflictError`` for an expired, skipped or
        foreign lease. ``then_next``: the same transaction also leases the annotator's next task
        (``next_task`` of the result; none for a banned annotator): both or neither, so a retry
        after a failure finds the answer and the lease it acknowledged, or neither."""
        if duration_ms is not None and not (isinstance(duration_ms, int) and 0 <= duration_ms <= 86_400_000):
            raise InputError(
                f"duration_ms must be an integer in [0, 86400000], got {duration_ms!r}", field="duration_ms"
            )
        key = idempotency_key
        if key is not None and (problem := text_problem(key, IDEMPOTENCY_KEY_LENGTH)):
            raise InputError(f"idempotency key {problem}: {key!r}", field="idempotency_key")
        self._check_lease_id(lease_id)
        gold_draw = self._draw() if then_next else 1.0

        def and_next(db: DirectConnection, out: T) -> T:
            if not isinstance(out, SubmitOut) or not then_next or out.annotator_status != "active":
                return out
            try:
                task = self._next_task(db, annotator.id, gold_draw)
            except ForbiddenError:  # now a reviewer who may read gold: no more tasks (nothing written yet)
                return out
            return dataclasses.replace(out, next_task=task)

        def attempt() -> SubmitOut | ConflictError:
            return self.db.run_direct(
                lambda db: and_next(db, self._submit(db, annotator.id, lease_id, label, duration_ms, key))
            )

        try:
            out = attempt()
        except IntegrityError:
            # a concurrent retry of the same submit won the race: answer as for any retry
            stored = self.db.run_direct(lambda db: and_next(db, self._stored_answer(db, annotator.id, lease_id, key)))
            # else a concurrent ``next`` leased the task the chained one wanted to: once more
            out = stored if stored is not None else attempt()
        if isinstance(out, ConflictError):
            raise out  # its lease was let go in the transaction, committed
        return out

    def _stored_answer(
        self, connection: Executor, annotator_id: int, lease_id: str, key: str | None
    ) -> SubmitOut | None:
        by_lease = connection.execute(q.ANSWER_BY_LEASE, {"annotator": annotator_id, "lease": lease_id})
        by_key = None if key is None else connection.execute(q.ANSWER_BY_KEY, {"annotator": annotator_id, "key": key})
        answer = by_lease.first() or (by_key and by_key.first())
        if answer is None:
            return None
        item = connection.execute(q.ITEM, {"item": answer.item_id}).one()
        annotator = connection.execute(q.ANNOTATOR, {"annotator": annotator_id}).one()
        project = project_row(connection, annotator.project_id)
        return SubmitOut(
            answer_id=answer.id,
            lease_id=answer.lease_id or lease_id,
            item=item.external_id,
            label=self.config.labels(project).name(answer.label),
            duplicate=True,
            annotator_status=annotator.status,
        )

    def _submit(
        self,
        connection: DirectConnection,
        annotator_id: int,
        lease_id: str,
        label: Any,
        duration_ms: int | None,
        key: str | None,
    ) -> SubmitOut | ConflictError:
        """The answer stored, or the refusal to raise once the transaction has let the lease go
        (it expired, or the annotator answered its item meanwhile)."""
        submitted = connection.execute(q.SUBMITTED_LOCKED if self.db.pg else q.SUBMITTED, {"lease": lease_id})
        if key is not None:  # asked with the lease, in one round trip
            retry = self._stored_answer(connection, annotator_id, lease_id, key)
            if retry is not None:
                return retry
        lease = submitted.first()
        if lease is None or lease.annotator_id != annotator_id:
            raise NotFoundError(f"no lease {lease_id!r} for this annotator")
        if lease.state == "done":
            return self._stored_answer(connection, annotator_id, lease_id, None)
        if lease.state != "open":
            raise ConflictError(f"lease {lease_id} is {lease.state}: ask for the next task")
        project = ProjectRow(Prefixed(lease, "p_"), connection)
        self._check_worker(Prefixed(lease, "a_"), project)
        item = Prefixed(lease, "i_")
        if aware(lease.expires_at) <= self._clock():
            self._let_go(connection, lease_id, item.id)
            return ConflictError(f"lease {lease_id} expired at {aware(lease.expires_at):%Y-%m-%d %H:%M:%S} UTC: "
                                 "its item went back to the pool; ask for the next task")  # fmt: skip
        if lease.answered:
            self._let_go(connection, lease_id, item.id)
            return ConflictError(f"you answered item {item.external_id!r} already (an answer imported or a review "
                                 "since the task was given): the lease is let go; ask for the next task")  # fmt: skip
        labels = self.config.labels(project)
        code = self.config.code(labels, label)
        rules = self.config.rules(project)
        right = float(labels.credit([code], [lease.truth])[0]) if item.is_gold else 0.0
        timed = duration_ms is not None
        fast = timed and duration_ms < rules.min_seconds * 1000
        # the writes, then the reads of the decision, in one round trip (PostgreSQL's pipeline);
        # the writes' results are read after them
        closed = connection.execute(q.CLOSE_LEASE, {"lease": lease_id, "state": "done"})
        answer = connection.execute(
            q.NEW_ANSWER,
            {"project_id": project.id, "item_id": item.id, "annotator_id": annotator_id, "lease_id": lease_id,
             "label": code, "duration_ms": duration_ms, "suggestions": lease.suggestions,
             "suggestions_shown": lease.suggestions_shown, "idempotency_key": key,
             "is_gold": item.is_gold, "is_review": False, "created_at": utcnow()},
        )  # fmt: skip
        recorded = connection.execute(
            q.RECORD,
            {"annotator": annotator_id, "right": right, "gold": float(item.is_gold), "timed": float(timed),
             "fast": float(fast)},
        )  # fmt: skip
        if not item.is_gold and item.status not in ("reviewed", DISPUTED):  # a reviewer's to settle
            self.decisions.redecide(connection, project, [item], answered=True, models=bool(lease.has_models))
        else:
            connection.execute(q.COUNT_ANSWER, {"item": item.id})
            if item.is_gold:  # decided like any item, the decision unused (its label is known): a gold
                # submit takes as long
                self.decisions.decide(connection, project, [item], models=bool(lease.has_models))
        if not closed.rowcount:  # the transaction rolls back what it wrote
            raise ConflictError(f"lease {lease_id} was closed meanwhile")
        answer_id = answer.scalar_one()
        # judged after every answer (only gold and timed ones move the evidence): the same path for all
        status = judge(connection, project, recorded.one(), rules, self.decisions)
        return SubmitOut(
            answer_id=answer_id,
            lease_id=lease_id,
            item=item.external_id,
            label=labels.name(code),
            duplicate=False,
            annotator_status=status,
        )

    @staticmethod
    def _check_lease_id(lease_id: Any) -> None:
        """``NotFoundError`` for what cannot be a lease id (leases are 32 hex digits)."""
        if not isinstance(lease_id, str) or text_problem(lease_id, LEASE_ID_LENGTH):
            raise NotFoundError(f"no lease {lease_id!r}")

    def skip(self, annotator: AnnotatorInfo, lease_id: str) -> None:
        """Give a leased task back; it is not offered to this annotator again."""
        self._check_lease_id(lease_id)

        def work(session: Session) -> None:
            lease = session.execute(q.LEASE_LOCKED if self.db.pg else q.LEASE, {"lease": lease_id}).first()
            if lease is None or lease.annotator_id != annotator.id:
                raise NotFoundError(f"no lease {lease_id!r} for this annotator")
            if lease.state != "open":
                raise ConflictError(f"lease {lease_id} is {lease.state}")
            session.execute(q.CLOSE_LEASE, {"lease": lease_id, "state": "skipped"})
            session.execute(q.RELEASE_ITEM, {"item": lease.item_id})

        self.db.run(work)

    def review_queue(
        self, project_id: int, *, limit: int = 50, viewer: AnnotatorInfo | None = None
    ) -> list[ReviewTask]:
        """Escalated and disputed items (``check_labels``), oldest first, with the crowd's answers.
        ``viewer``: the member who asks (read again: a banned one is refused)."""
        limit = max(1, min(int(limit), 500))

        def work(session: Session) -> list[ReviewTask]:
            project = project_row(session, project_id)
            if viewer is not None:
                checked_member(session, viewer.id, project_id)
            labels = self.config.labels(project)
            connection = session.connection()
            newest = connection.execute(q.NEWEST_MODEL, {"project": project_id}).scalar()
            items = session.scalars(q.REVIEW_QUEUE, {"project": project_id, "size": limit}).all()
            out = []
            for item in items:
                answers = session.execute(q.NAMED_ANSWERS, {"item": item.id}).all()
                state = item_state(item, labels)
                prediction = connection.execute(q.PREDICTION, {"item": item.id, "model": newest}).first()
                shown = self._suggestions(project, *(prediction or (None, None))) or []
                out.append(
                    ReviewTask(
                        item=item.external_id,
                        payload=item.payload,
                        label=state.label,
                        confidence=item.confidence,
                        answers=[ReviewAnswer(name, labels.name(code)) for name, code in answers],
                        suggestions=[Suggestion(**s) for s in shown],
                        **disputed_fields(item, labels),
                    )
                )
            return out

        return self.db.read(work)

    def review(self, reviewer: AnnotatorInfo, project_id: int, external_id: str, label: Any) -> ItemState:
        """A reviewer's (or owner's) final label for an item: an owner's for any item, a
        reviewer's for the escalated and reviewed ones (any, with the project's
        ``reviewers_see_gold``); not a gold item (``ConflictError``)."""

        def work(session: Session) -> ItemState:
            person = checked_member(session, reviewer.id, project_id)
            if person.role not in ("reviewer", "owner"):
                raise ForbiddenError(f"annotator {person.name!r} may not review (role {person.role})")
            project = project_row(session, project_id)
            labels = self.config.labels(project)
            code = self.config.code(labels, label)
            item = item_row(session, project_id, external_id, self.db.locked(q.ITEM_BY_EXTERNAL_ID))
            if hidden_from(person, project, item):
                raise NotFoundError(f"no item {external_id!r} in project {project_id}")
            if item.is_gold:
                raise ConflictError(f"item {external_id!r} is a gold item: its label is known")
            own = session.scalars(q.OWN_ANSWER, {"item": item.id, "annotator": person.id}).first()
            if own is not None:
                own.label, own.is_review = code, True
            else:
                session.add(
                    Answer(
                        project_id=project_id,
                        item_id=item.id,
                        annotator_id=person.id,
                        label=code,
                        is_gold=False,
                        is_review=True,
                        created_at=utcnow(),
                    )
                )
            session.flush()
            self.decisions.settle(session, project, [(item, person, code)])
            session.expire(item)  # read back as settled
            return item_state(item, labels)

        return self.db.run(work)
