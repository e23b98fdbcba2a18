"""Hypothesis drives the loop with any sequence of takes, answers (and retries), skips, bad labels,
waits past lease expiry and reviews; the stored state keeps its invariants after every step."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from crowdloop.consensus import ConsensusPolicy
from crowdloop.errors import ConflictError, UnknownLabelError
from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, open_service
from crowdloop.store.schema import Answer, Item, Lease

POLICY = ConsensusPolicy(target=0.95, min_overlap=1, max_overlap=3)
LABELS = ["x", "y", "z"]
N_ANNOTATORS = 3
_projects = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def service(database_url: str, clock: Clock):
    svc = open_service(database_url, seed=11, clock=clock)
    yield svc
    svc.close()


def test_the_loop_keeps_its_invariants(service, clock: Clock) -> None:
    class Loop(RuleBasedStateMachine):
        @initialize()
        def project(self) -> None:
            info = service.create_project(
                f"prop-{next(_projects)}", LabelSpace(LABELS), POLICY, gold_rate=0.25, lease_seconds=300
            )
            self.project_id = info.id
            items = [ItemIn(f"i{i}", {"n": i}) for i in range(5)] + [ItemIn("g0", {}, gold="x")]
            service.import_items(self.project_id, items, batch_size=4)
            self.annotators = [service.add_annotator(info.id, f"w{i}")[0] for i in range(N_ANNOTATORS)]
            self.reviewer, _ = service.add_annotator(info.id, "reviewer", role="reviewer")
            self.held: dict[int, tuple[str, bool]] = {}  # annotator -> (lease, may have expired)
            self.stored = 0

        @rule(who=st.integers(0, N_ANNOTATORS - 1))
        def take(self, who: int) -> None:
            task = service.next_task(self.annotators[who])
            if task is None:
                self.held.pop(who, None)
            elif who in self.held and self.held[who][0] == task.lease_id:
                pass  # asking again returns the task held
            else:
                self.held[who] = (task.lease_id, False)

        @rule(who=st.integers(0, N_ANNOTATORS - 1), label=st.sampled_from(LABELS), retry=st.booleans())
        def answer(self, who: int, label: str, retry: bool) -> None:
            if who not in self.held:
                return
            lease, maybe_expired = self.held.pop(who)
            try:
                out = service.submit(self.annotators[who], lease, label, idempotency_key=f"{lease}-k")
            except ConflictError:
                assert maybe_expired
                return
            assert not out.duplicate
            self.stored += 1
            if retry:
                assert service.submit(self.annotators[who], lease, label, idempotency_key=f"{lease}-k").duplicate

        @rule(who=st.integers(0, N_ANNOTATORS - 1))
        def bad_label(self, who: int) -> None:
            if who in self.held:
                lease, maybe_expired = self.held[who]
                with pytest.raises((UnknownLabelError, ConflictError) if maybe_expired else UnknownLabelError):
                    service.submit(self.annotators[who], lease, "not a label")

        @rule(who=st.integers(0, N_ANNOTATORS - 1))
        def skip(self, who: int) -> None:
            if who not in self.held:
                return
            lease, maybe_expired = self.held.pop(who)
            try:
                service.skip(self.annotators[who], lease)
            except ConflictError:
                assert maybe_expired

        @rule(seconds=st.sampled_from([30, 400]))
        def wait(self, seconds: int) -> None:
            clock.now += timedelta(seconds=seconds)
            if seconds > 300:
                self.held = {who: (lease, True) for who, (lease, _) in self.held.items()}

        @rule(label=st.sampled_from(LABELS))
        def review(self, label: str) -> None:
            for task in service.review_queue(self.project_id, limit=1):
                assert service.review(self.reviewer, self.project_id, task.item, label).status == "reviewed"

        @invariant()
        def stored_state_is_consistent(self) -> None:
            with service._sessions() as session:
                items = session.execute(
                    select(Item.id, Item.is_gold, Item.status, Item.label, Item.answer_count, Item.open_leases).where(
                        Item.project_id == self.project_id
                    )
                ).all()
                answers = dict(
                    session.execute(
                        select(Answer.item_id, func.count())
                        .where(Answer.project_id == self.project_id, Answer.is_review.is_(False))
                        .group_by(Answer.item_id)
                    ).all()
                )
                leases = dict(
                    session.execute(
                        select(Lease.item_id, func.count())
                        .where(Lease.project_id == self.project_id, Lease.state == "open")
                        .group_by(Lease.item_id)
                    ).all()
                )
                per_annotator = session.execute(
                    select(func.count())
                    .where(Lease.project_id == self.project_id, Lease.state == "open")
                    .group_by(Lease.annotator_id)
                ).scalars()
                assert all(n <= 1 for n in per_annotator)  # one task at a time
            assert sum(answers.values()) == self.stored  # nothing lost, nothing counted twice
            for item_id, is_gold, status, label, answer_count, open_leases in items:
                assert answer_count == answers.get(item_id, 0)
                assert open_leases == leases.get(item_id, 0)
                if not is_gold:
                    assert answer_count + open_leases <= POLICY.max_overlap
                    assert status in ("more", "accepted", "escalated", "reviewed")
                    assert status not in ("accepted", "reviewed") or label is not None

    run_state_machine_as_test(
        Loop,
        settings=settings(
            max_examples=8, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )
