"""The loop itself: leasing the next task, submitting, skipping, and the reviewers' queue."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdloop.consensus import ESCALATED, SkillRules
from crowdloop.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from crowdloop.service.base import Executor, Prefixed, ProjectRow, ServiceBase, update_rows
from crowdloop.service.label_errors import disputed_fields
from crowdloop.service.suggestions import shows_suggestions, top_suggestions
from crowdloop.service.text import text_problem
from crowdloop.service.types import (
    DISPUTED,
    AnnotatorInfo,
    ItemState,
    ReviewAnswer,
    ReviewTask,
    SubmitOut,
    Suggestion,
    TaskOut,
)
from crowdloop.store import queries as q
from crowdloop.store.direct import DirectConnection
from crowdloop.store.schema import Annotator, Answer, Item, Lease, utcnow

IDEMPOTENCY_KEY_LENGTH = 200
LEASE_ID_LENGTH = 32


class Loop(ServiceBase):
    """The loop itself: leasing the next task, submitting, skipping, and the reviewers' queue."""

    def next_task(self, annotator: AnnotatorInfo) -> TaskOut | None:
        """Lease the next task to an active annotator (None: nothing left for them).

        With probability ``gold_rate`` a gold item they have not answered; otherwise the open item
        with the highest expected information per cost (``crowdloop.consensus.priority``), never
        one they answered or hold, never beyond the answers the item still needs counting open
        leases; in a taxonomy, weighted by the annotator's skill in the item's predicted branch.
        Expired leases return to the pool first. An annotator holds one task at a time: asking
        again returns the task they hold."""
        gold_draw = self._draw()
        return self._run_direct(lambda db: self._next_task(db, annotator.id, gold_draw))

    def _next_task(self, connection: DirectConnection, annotator_id: int, gold_draw: float) -> TaskOut | None:
        now = self._clock()
        found = connection.execute(q.WORKER, {"annotator": annotator_id, "now": now}).first()
        if found is None:
            raise NotFoundError(f"no annotator with id {annotator_id!r}")
        annotator = self._check_worker(Prefixed(found, "a_"))
        project = ProjectRow(Prefixed(found, "p_"), connection)
        if found.any_expired:
            self._reclaim(connection, project.id, now)
        if found.held_id is not None:
            item = connection.execute(q.TASK_ITEM, {"item": found.held_item}).one()
            held = found.held_suggestions if found.held_shown is not False else None
            return self._task(found.held_id, item, held, found.held_expires)
        item = self._pick_gold(connection, project, annotator) if gold_draw < project.gold_rate else None
        if item is None:
            item = self._pick_pool(connection, project, annotator)
        if item is None:
            return None
        lease_id = secrets.token_hex(16)
        suggestions = self._suggestions(connection, project, item.id, found.newest_model)
        shown = None if suggestions is None else shows_suggestions(lease_id, project.hide_rate)
        expires = now + timedelta(seconds=project.lease_seconds)
        connection.execute(
            q.NEW_LEASE,
            {"id": lease_id, "project_id": project.id, "item_id": item.id, "annotator_id": annotator.id,
             "state": "open", "suggestions": suggestions, "suggestions_shown": shown, "created_at": now,
             "expires_at": expires},
        )  # fmt: skip
        return self._task(lease_id, item, suggestions if shown else None, expires)

    @staticmethod
    def _check_worker(annotator: Any) -> Any:
        """``annotator``, if allowed to work on tasks (active and human)."""
        if annotator.status != "active":
            raise ForbiddenError(f"annotator {annotator.name!r} is {annotator.status}")
        if annotator.kind != "human":
            raise ForbiddenError(f"annotator {annotator.name!r} is a model: models add predictions, not answers")
        return annotator

    @staticmethod
    def _task(lease_id: str, item: Row, suggestions: list | None, expires: datetime) -> TaskOut:
        return TaskOut(
            lease_id=lease_id,
            item=item.external_id,
            payload=item.payload,
            suggestions=[Suggestion(**s) for s in suggestions or []],
            expires_at=expires if expires.tzinfo else expires.replace(tzinfo=UTC),
        )

    def _reclaim(self, connection: Executor, project_id: int, now: datetime) -> int:
        """Return up to ``queries.RECLAIM_BATCH`` expired leases of the project to the pool."""
        statement = q.EXPIRED_LOCKED if self._pg else q.EXPIRED
        expired = connection.execute(statement, {"now": now, "project": project_id}).all()
        reclaimed = 0
        for lease_id, item_id in expired:
            if connection.execute(q.EXPIRE_LEASE, {"lease": lease_id}).rowcount:
                connection.execute(q.RELEASE_ITEM, {"item": item_id})
                reclaimed += 1
        return reclaimed

    def _pick_gold(self, connection: Executor, project: ProjectRow, annotator: Any) -> Row | None:
        """A gold item the annotator has not seen, leased (its id, external id and payload)."""
        candidates = connection.execute(q.GOLD_POOL, {"project": project.id, "annotator": annotator.id}).scalars().all()
        if not candidates:
            return None
        with self._rng_lock:
            item_id = self._rng.choice(candidates)
        return connection.execute(q.TAKE_GOLD, {"item": item_id}).first()

    def _pick_pool(self, connection: Executor, project: ProjectRow, annotator: Any) -> Row | None:
        """The open item that most needs this annotator's answer, leased (id, external id, payload)."""
        routed = project.is_taxonomy and bool(annotator.branch_skills)
        if not routed:
            params = {"project": project.id, "annotator": annotator.id}
            taken = connection.execute(q.TAKE_BEST_LOCKED if self._pg else q.TAKE_BEST, params).first()
            if taken is not None or not self._pg:
                return taken  # SQLite holds the write lock: nothing could have taken it meanwhile
            statement = q.POOL_LOCKED
        else:
            statement = q.POOL_ROUTED_LOCKED if self._pg else q.POOL_ROUTED
        candidates = connection.execute(statement, {"project": project.id, "annotator": annotator.id}).all()
        if routed:
            overall = max(float(self._book([annotator], self._rules(project)).accuracy()[0]), 1e-3)
            skills = annotator.branch_skills

            def routed_value(c: Row) -> float:
                return c.priority * skills.get(str(c.branch), overall) / overall if c.branch >= 0 else c.priority

            candidates = sorted(candidates, key=lambda c: -routed_value(c))
        for candidate in candidates:
            taken = connection.execute(q.TAKE, {"item": candidate.id}).first()
            if taken is not None:
                return taken
        return None

    def _suggestions(
        self, connection: Executor, project: ProjectRow, item_id: int, newest: int | None
    ) -> list[dict] | None:
        """The newest model version's (``newest``) top labels for the item, for the annotator's screen."""
        if project.suggestions <= 0 or newest is None:
            return None
        row = connection.execute(q.PREDICTION, {"item": item_id, "model": newest}).first()
        if row is None:
            return None
        return top_suggestions(row.labels, row.probs, self._label_space(project), project.suggestions)

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

        def and_next(db: DirectConnection, out: SubmitOut | None) -> SubmitOut | None:
            if out is None or not then_next or out.annotator_status != "active":
                return out
            return dataclasses.replace(out, next_task=self._next_task(db, annotator.id, gold_draw))

        try:
            return self._run_direct(
                lambda db: and_next(db, self._submit(db, annotator.id, lease_id, label, duration_ms, key))
            )
        except IntegrityError:
            # a concurrent retry of the same submit won the race: answer as for any retry
            stored = self._run_direct(lambda db: and_next(db, self._stored_answer(db, annotator.id, lease_id, key)))
            if stored is None:
                raise
            return stored

    def _stored_answer(
        self, connection: Executor, annotator_id: int, lease_id: str, key: str | None
    ) -> SubmitOut | None:
        answer = connection.execute(q.ANSWER_BY_LEASE, {"annotator": annotator_id, "lease": lease_id}).first()
        if answer is None and key is not None:
            answer = connection.execute(q.ANSWER_BY_KEY, {"annotator": annotator_id, "key": key}).first()
        if answer is None:
            return None
        item = connection.execute(q.ITEM, {"item": answer.item_id}).one()
        annotator = connection.execute(q.ANNOTATOR, {"annotator": annotator_id}).one()
        project = self._project(connection, annotator.project_id)
        return SubmitOut(
            answer_id=answer.id,
            lease_id=answer.lease_id or lease_id,
            item=item.external_id,
            label=self._label_space(project).name(answer.label),
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
    ) -> SubmitOut:
        if key is not None:
            retry = self._stored_answer(connection, annotator_id, lease_id, key)
            if retry is not None:
                return retry
        lease = connection.execute(q.SUBMITTED_LOCKED if self._pg else q.SUBMITTED, {"lease": lease_id}).first()
        if lease is None or lease.annotator_id != annotator_id:
            raise NotFoundError(f"no lease {lease_id!r} for this annotator")
        if lease.state == "done":
            return self._stored_answer(connection, annotator_id, lease_id, None)
        if lease.state != "open":
            raise ConflictError(f"lease {lease_id} is {lease.state}: ask for the next task")
        self._check_worker(Prefixed(lease, "a_"))
        project = ProjectRow(Prefixed(lease, "p_"), connection)
        item = Prefixed(lease, "i_")
        labels = self._label_space(project)
        code = self._code(labels, label)
        if not connection.execute(q.CLOSE_LEASE, {"lease": lease_id, "state": "done"}).rowcount:
            raise ConflictError(f"lease {lease_id} was closed meanwhile")
        answer_id = connection.execute(
            q.NEW_ANSWER,
            {"project_id": project.id, "item_id": item.id, "annotator_id": annotator_id, "lease_id": lease_id,
             "label": code, "duration_ms": duration_ms, "suggestions": lease.suggestions,
             "suggestions_shown": lease.suggestions_shown, "idempotency_key": key,
             "is_gold": item.is_gold, "is_review": False, "created_at": utcnow()},
        ).scalar_one()  # fmt: skip
        rules = self._rules(project)
        right = float(labels.credit([code], [lease.truth])[0]) if item.is_gold else 0.0
        timed = duration_ms is not None
        fast = timed and duration_ms < rules.min_seconds * 1000
        annotator = connection.execute(
            q.RECORD,
            {"annotator": annotator_id, "right": right, "gold": float(item.is_gold), "timed": float(timed),
             "fast": float(fast)},
        ).one()  # fmt: skip
        if not item.is_gold and item.status not in ("reviewed", DISPUTED):  # a reviewer's to settle
            self._redecide(connection, project, [item], answered=True, models=bool(lease.has_models))
        else:
            connection.execute(q.COUNT_ANSWER, {"item": item.id})
        # only gold and timed answers change the evidence for a ban or a promotion
        status = self._judge(connection, project, annotator, rules) if item.is_gold or timed else annotator.status
        return SubmitOut(
            answer_id=answer_id,
            lease_id=lease_id,
            item=item.external_id,
            label=labels.name(code),
            duplicate=False,
            annotator_status=status,
        )

    def _judge(self, connection: Executor, project: ProjectRow, annotator: Row, rules: SkillRules) -> str:
        """Ban (their open leases go back to the pool) or promote to reviewer, on the evidence;
        returns the annotator's status."""
        if annotator.gold_total < min(rules.min_gold, rules.min_gold_promote) and annotator.timed < rules.min_timed:
            return annotator.status  # too little evidence for either
        book = self._book([annotator], rules)
        if book.banned()[0] and annotator.status == "active":
            fast = book.timed[0] >= rules.min_timed and book.fast[0] > book.timed[0] / 2
            connection.execute(q.SET_STATUS, {"annotator": annotator.id, "status": "banned"})
            for lease_id, item_id in connection.execute(q.OPEN_LEASES_OF, {"annotator": annotator.id}).all():
                if connection.execute(q.EXPIRE_LEASE, {"lease": lease_id}).rowcount:
                    connection.execute(q.RELEASE_ITEM, {"item": item_id})
            _, upper = book.gold_bounds()
            self._event(
                connection,
                project.id,
                "banned",
                {
                    "reason": "implausibly fast answers" if fast else "gold accuracy clearly below the threshold",
                    "gold_right": annotator.gold_right,
                    "gold_total": annotator.gold_total,
                    "upper_bound": float(upper[0]),
                    "ban_below": rules.ban_below,
                },
                annotator_id=annotator.id,
            )
            return "banned"
        if book.promoted()[0] and annotator.role == "annotator":
            connection.execute(q.SET_ROLE, {"annotator": annotator.id, "role": "reviewer"})
            lower, _ = book.gold_bounds()
            self._event(
                connection,
                project.id,
                "promoted",
                {"to": "reviewer", "lower_bound": float(lower[0]), "gold_total": annotator.gold_total},
                annotator_id=annotator.id,
            )
        return annotator.status

    @staticmethod
    def _check_lease_id(lease_id: Any) -> None:
        """``NotFoundError`` for what cannot be a lease id (leases are 32 hex digits)."""
        if not isinstance(lease_id, str) or text_problem(lease_id, LEASE_ID_LENGTH):
            raise NotFoundError(f"no lease {lease_id!r}")

    def skip(self, annotator: AnnotatorInfo, lease_id: str) -> None:
        """Give a leased task back; it is not offered to this annotator again."""
        self._check_lease_id(lease_id)

        def work(session: Session) -> None:
            lease = session.scalars(self._locked(select(Lease).where(Lease.id == lease_id))).first()
            if lease is None or lease.annotator_id != annotator.id:
                raise NotFoundError(f"no lease {lease_id!r} for this annotator")
            if lease.state != "open":
                raise ConflictError(f"lease {lease_id} is {lease.state}")
            session.execute(update_rows(Lease).where(Lease.id == lease_id).values(state="skipped"))
            session.execute(update_rows(Item).where(Item.id == lease.item_id).values(open_leases=Item.open_leases - 1))

        self._run(work)

    def review_queue(self, project_id: int, *, limit: int = 50) -> list[ReviewTask]:
        """Escalated and disputed items (``check_labels``), oldest first, with the crowd's answers."""
        limit = max(1, min(int(limit), 500))

        def work(session: Session) -> list[ReviewTask]:
            project = self._project(session, project_id)
            labels = self._label_space(project)
            connection = session.connection()
            newest = connection.execute(q.NEWEST_MODEL, {"project": project_id}).scalar()
            items = session.scalars(
                select(Item)
                .where(Item.project_id == project_id, Item.is_gold.is_(False), Item.status.in_((ESCALATED, DISPUTED)))
                .order_by(Item.updated_at, Item.id)
                .limit(limit)
            ).all()
            out = []
            for item in items:
                answers = session.execute(
                    select(Annotator.name, Answer.label)
                    .join(Annotator, Annotator.id == Answer.annotator_id)
                    .where(Answer.item_id == item.id)
                    .order_by(Answer.id)
                ).all()
                state = self._state(item, labels)
                shown = self._suggestions(connection, project, item.id, newest) or []
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

        return self._run(work)

    def review(self, reviewer: AnnotatorInfo, project_id: int, external_id: str, label: Any) -> ItemState:
        """A reviewer's (or owner's) final label for an item (escalated or not)."""

        def work(session: Session) -> ItemState:
            person = self._annotator(session, reviewer.id)
            if person.project_id != project_id:
                raise NotFoundError(f"no project with id {project_id!r}")
            if person.role not in ("reviewer", "owner") or person.status != "active":
                raise ForbiddenError(f"annotator {person.name!r} may not review (role {person.role}, {person.status})")
            project = self._project(session, project_id)
            labels = self._label_space(project)
            code = self._code(labels, label)
            item = self._item(session, project_id, external_id, lock=True)
            if item.is_gold:
                raise ConflictError(f"item {external_id!r} is a gold item: its label is known")
            own = session.scalars(
                select(Answer).where(Answer.item_id == item.id, Answer.annotator_id == person.id)
            ).first()
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
            self._settle(session, project, [(item, person, code)])
            session.expire(item)  # read back as settled
            return self._state(item, labels)

        return self._run(work)
