"""Many annotators at once, in threads and in separate processes, on SQLite and PostgreSQL: no item
gets more answers than its policy allows, no answer is lost or counted twice, no lease is shared."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
import time

import pytest
from sqlalchemy import func, select

from crowdloop.consensus import ConsensusPolicy
from crowdloop.errors import NotFoundError
from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, open_service
from crowdloop.store.schema import Answer, Item, Lease

LABELS = ["a", "b", "c"]
POLICY = ConsensusPolicy(target=0.99, min_overlap=1, max_overlap=3, escalate_early=False)
N_ITEMS = 24
N_GOLD = 4


@pytest.fixture(scope="module")
def service(database_url: str):
    svc = open_service(database_url, seed=3)
    yield svc
    svc.close()


def _project(service, name: str, n_annotators: int) -> tuple[int, list[str]]:
    project = service.create_project(name, LabelSpace(LABELS), POLICY, gold_rate=0.1, lease_seconds=300)
    items = [ItemIn(f"i{i}", {"n": i}) for i in range(N_ITEMS)]
    items += [ItemIn(f"g{i}", {"n": i}, gold="a") for i in range(N_GOLD)]
    service.import_items(project.id, items, batch_size=10)
    tokens = [service.add_annotator(project.id, f"w{i}")[1] for i in range(n_annotators)]
    return project.id, tokens


def _next_or_wait(service, me):
    """The next task; when there is none now but the project is not done (leases are held, whose
    answers may call for more, or an item still calls for more that others may answer), ask again
    shortly, as a client polling for work does; None once every item is settled and no lease is
    open (a minute of waiting fails: another annotator died holding a lease). Asking while a lease
    was open and checking after it closed would miss the answers its submit called for."""
    deadline = time.monotonic() + 60
    while (task := service.next_task(me)) is None:
        assert time.monotonic() < deadline, "leases held for a minute: did another annotator fail?"
        with service._sessions() as session:
            held = session.scalar(select(func.count()).where(Lease.project_id == me.project_id, Lease.state == "open"))
            open_items = session.scalar(
                select(func.count()).where(
                    Item.project_id == me.project_id, Item.is_gold.is_(False),
                    Item.status.not_in(("accepted", "escalated")),
                )
            )  # fmt: skip
        if not held and not open_items:
            return None
        time.sleep(0.005)
    return task


def annotate(url: str, token: str, seed: int, leases: list | None = None) -> int:
    """One annotator's session: take tasks and answer until none is left (each submit sent twice,
    as a client retrying on a lost response would; odd seeds take their next task with the
    answer, ``then_next``); returns the answers stored."""
    service = open_service(url, seed=seed)
    try:
        me = service.authenticate(token)
        rng = random.Random(seed)
        stored, chained = 0, seed % 2 == 1
        task = _next_or_wait(service, me)
        while task is not None:
            if leases is not None:
                leases.append((me.id, task.lease_id))
                foreign = [lease for owner, lease in leases if owner != me.id]
                if foreign:  # another annotator's lease is not ours to answer
                    with pytest.raises(NotFoundError):
                        service.submit(me, rng.choice(foreign), "a")
            label = rng.choice(LABELS)
            key = f"{me.id}-{task.lease_id}"
            first = service.submit(me, task.lease_id, label, idempotency_key=key, then_next=chained)
            retry = service.submit(me, task.lease_id, label, idempotency_key=key, then_next=chained)
            assert retry.duplicate and retry.answer_id == first.answer_id
            if first.next_task is not None:  # the same next lease, not a second one
                assert retry.next_task == first.next_task
            stored += not first.duplicate
            task = first.next_task or retry.next_task or _next_or_wait(service, me)
        return stored
    finally:
        service.close()


def _check_invariants(service, project_id: int, submitted: int) -> None:
    with service._sessions() as session:
        items = session.execute(
            select(Item.id, Item.is_gold, Item.answer_count, Item.open_leases, Item.status).where(
                Item.project_id == project_id
            )
        ).all()
        counted = dict(
            session.execute(
                select(Answer.item_id, func.count()).where(Answer.project_id == project_id).group_by(Answer.item_id)
            ).all()
        )
        open_leases = session.scalar(select(func.count()).where(Lease.project_id == project_id, Lease.state == "open"))
        answers = session.execute(
            select(Answer.item_id, Answer.annotator_id, Answer.lease_id, Lease.annotator_id, Lease.item_id)
            .join(Lease, Lease.id == Answer.lease_id)
            .where(Answer.project_id == project_id)
        ).all()
    assert sum(counted.values()) == submitted  # nothing lost, nothing counted twice
    assert len(answers) == submitted
    for item_id, is_gold, answer_count, leased, status in items:
        assert answer_count == counted.get(item_id, 0)
        assert leased == 0
        if not is_gold:
            assert answer_count <= POLICY.max_overlap
            assert status in ("accepted", "escalated")
    assert open_leases == 0
    assert len({(a[0], a[1]) for a in answers}) == len(answers)  # an annotator answers an item once
    assert len({a[2] for a in answers}) == len(answers)  # a lease yields one answer
    assert all(a[1] == a[3] and a[0] == a[4] for a in answers)  # ... by the annotator who held it


def test_many_annotators_in_threads(service, database_url: str) -> None:
    project_id, tokens = _project(service, "threads", 6)
    leases: list[str] = []
    counts: list[int] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            counts.append(annotate(database_url, tokens[i], seed=i, leases=leases))
        except BaseException as exc:  # surfaced below: a thread's failure fails the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tokens))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(counts) >= N_ITEMS  # every item was answered at least once
    _check_invariants(service, project_id, sum(counts))


def test_many_annotators_in_processes(service, database_url: str) -> None:
    project_id, tokens = _project(service, "processes", 4)
    service.engine.dispose()  # no connection crosses the fork
    with multiprocessing.get_context("fork").Pool(len(tokens)) as pool:
        counts = pool.starmap(annotate, [(database_url, token, 100 + i) for i, token in enumerate(tokens)])
    assert sum(counts) >= N_ITEMS
    _check_invariants(service, project_id, sum(counts))


def _answer_until_killed(url: str, token: str, acknowledged) -> None:
    """Answer tasks, reporting each acknowledged answer, until the parent kills the process."""
    service = open_service(url, seed=9)
    me = service.authenticate(token)
    while (task := service.next_task(me)) is not None:
        acknowledged.put(service.submit(me, task.lease_id, "a").answer_id)
    acknowledged.put(None)


def test_a_killed_process_loses_no_acknowledged_answer(service, database_url: str) -> None:
    project_id, tokens = _project(service, "killed", 1)
    service.engine.dispose()
    context = multiprocessing.get_context("fork")
    acknowledged = context.Queue()
    worker = context.Process(target=_answer_until_killed, args=(database_url, tokens[0], acknowledged))
    worker.start()
    seen = [acknowledged.get(timeout=60) for _ in range(5)]
    os.kill(worker.pid, signal.SIGKILL)  # mid-request, without any chance to clean up
    worker.join()
    while not acknowledged.empty():
        seen.append(acknowledged.get())
    seen = [s for s in seen if s is not None]
    with service._sessions() as session:
        stored = set(session.scalars(select(Answer.id).where(Answer.project_id == project_id)))
    assert set(seen) <= stored and len(stored) - len(seen) <= 1  # at most the unacknowledged one in flight


def test_an_annotator_holds_one_lease_however_many_ask_at_once(service) -> None:
    """Ten parallel ``next`` calls of one annotator return one lease (PostgreSQL read the held lease
    without a lock and handed out several)."""
    for trial in range(3):
        project_id, (token,) = _project(service, f"one-lease-{trial}", 1)
        me = service.authenticate(token)
        barrier = threading.Barrier(10)
        leases: list[str] = []

        def ask(barrier=barrier, me=me, leases=leases) -> None:
            barrier.wait()
            leases.append(service.next_task(me).lease_id)

        threads = [threading.Thread(target=ask) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(leases) == 10 and len(set(leases)) == 1, sorted(set(leases))
        with service._sessions() as session:
            held = session.scalar(select(func.count()).where(Lease.project_id == project_id, Lease.state == "open"))
        assert held == 1
