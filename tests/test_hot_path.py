"""The loop's hot path in few calls to the database: SQL statements on SQLite, round trips on
PostgreSQL (whose statements go in pipeline mode, the independent ones together), counted by
``crowdloop.store.trace``; and a gold pick that skips a gold row another transaction holds."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from crowdloop.consensus import ConsensusPolicy
from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, open_service
from crowdloop.store import queries as q
from crowdloop.store.trace import database_calls

LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def service(database_url: str):
    svc = open_service(database_url, seed=0)
    yield svc
    svc.close()


def calls_of(service, work) -> int:
    """The database calls ``work()`` makes."""
    with database_calls(service.engine) as calls:
        work()
        return calls.total


def test_next_and_submit_take_a_fixed_number_of_calls(service, database_url: str) -> None:
    """next: the annotator with their project and held lease; the lease take, which returns the
    model's suggestions; the new lease. submit: the lease with annotator, project and item; the
    answer, the lease closed, the annotator's evidence, with the item's answers and the model's
    votes; the decision. On PostgreSQL each group is one round trip (BEGIN with the first, COMMIT
    with the last); ``?next=true`` sends the decision with the next task's first read."""
    policy = ConsensusPolicy(target=0.99, max_overlap=5, escalate_early=False)  # stays open: no event
    project = service.create_project("calls", LabelSpace(LABELS), policy, gold_rate=0.0)
    service.import_items(project.id, [ItemIn(f"i{k}", {}) for k in range(8)])
    service.add_model_predictions(project.id, "m", "v1", {f"i{k}": {"a": 0.5, "b": 0.3, "c": 0.2} for k in range(8)})
    annotator = service.authenticate(service.add_annotator(project.id, "w")[1])
    service.submit(annotator, service.next_task(annotator).lease_id, "a")  # the project's settings read once

    tasks = []
    next_calls = calls_of(service, lambda: tasks.append(service.next_task(annotator)))
    submit_calls = calls_of(service, lambda: service.submit(annotator, tasks[0].lease_id, "a"))
    tasks.append(service.next_task(annotator))
    chained_calls = calls_of(service, lambda: tasks.append(service.submit(annotator, tasks[1].lease_id, "b",
                                                                          then_next=True).next_task))  # fmt: skip
    assert tasks[2] is not None
    with service.engine.connect() as connection:
        stored = connection.execute(select(q.leases.c.suggestions).where(q.leases.c.id == tasks[0].lease_id))
        assert stored.scalar_one()[0]["label"] == "a"  # the suggestions came with the lease take
    if database_url.startswith("postgresql"):
        assert (next_calls, submit_calls, chained_calls) == (3, 3, 5)
    else:  # BEGIN and COMMIT included
        assert (next_calls, submit_calls, chained_calls) == (5, 9, 12)


def test_a_gold_pick_asks_for_real_work_and_gold_in_one_call(service, database_url: str) -> None:
    project = service.create_project("gold-calls", LabelSpace(LABELS), gold_rate=1.0)
    rows = [ItemIn(f"i{k}", {}) for k in range(3)] + [ItemIn(f"g{k}", {}, gold="a") for k in range(3)]
    service.import_items(project.id, rows)
    annotator = service.authenticate(service.add_annotator(project.id, "w")[1])
    service.submit(annotator, service.next_task(annotator).lease_id, "a")  # the project's settings read once
    tasks = []
    gold_calls = calls_of(service, lambda: tasks.append(service.next_task(annotator)))
    assert tasks[0].item.startswith("g")
    # the annotator and project; real work and gold candidates; the gold take; the lease
    assert gold_calls == (4 if database_url.startswith("postgresql") else 7)


def test_a_gold_pick_skips_a_gold_row_another_transaction_holds(service, database_url: str) -> None:
    """PostgreSQL: a gold item whose row is locked is passed over for another gold item, and with
    every gold row locked the task is real work, without waiting for the locks."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers never meet: one holds the database's write lock")
    project = service.create_project("gold-locked", LabelSpace(LABELS), gold_rate=1.0)
    rows = [ItemIn(f"i{k}", {}) for k in range(3)] + [ItemIn(f"g{k}", {}, gold="a") for k in range(2)]
    service.import_items(project.id, rows)
    gold = select(q.items.c.id).where(q.items.c.project_id == project.id, q.items.c.is_gold.is_(True))
    first, second = (service.authenticate(service.add_annotator(project.id, f"w{k}")[1]) for k in range(2))
    holder = service.engine.connect()
    try:
        # another transaction holds the rows of all gold items but the last
        ids = holder.execute(gold.order_by(q.items.c.id)).scalars().all()
        holder.execute(gold.where(q.items.c.id < ids[-1]).with_for_update()).all()
        task = leased_without_waiting(service, first)
        assert task.item == "g1"
        holder.execute(gold.with_for_update()).all()  # now every gold row
        task = leased_without_waiting(service, second)
        assert task.item.startswith("i")
    finally:
        holder.rollback()
        holder.close()


def leased_without_waiting(service, annotator):
    """``next_task`` of the annotator, which must return within 10 s (it would wait for the locks
    until the test released them, that is forever)."""
    out = []
    thread = threading.Thread(target=lambda: out.append(service.next_task(annotator)), daemon=True)
    thread.start()
    thread.join(10)
    assert out, "next_task waited for a locked gold row"
    return out[0]


def _plan_nodes(plan: dict) -> list[dict]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _plan_nodes(child))]


def test_the_pool_probes_each_candidate_once_whatever_the_plan_cache_holds(service, database_url: str) -> None:
    """Whether the annotator answered or holds a candidate is one index probe on (item, annotator)
    per candidate. PostgreSQL turned the two ``NOT EXISTS`` into anti-joins planned by the
    statistics of the moment: the plan a connection cached while the tables were small scanned
    all of the annotator's answers again for every candidate (20-28 ms per next task late in a
    run), and kept doing so for the connection's life."""
    import re

    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite asks an EXISTS per row as written")
    project = service.create_project("probed", LabelSpace(LABELS), ConsensusPolicy(target=0.99), gold_rate=0.0)
    service.import_items(project.id, [ItemIn(f"i{k}", {}) for k in range(300)])
    annotator = service.authenticate(service.add_annotator(project.id, "w")[1])
    for _ in range(120):  # the annotator's answers: many rows on their id
        service.submit(annotator, service.next_task(annotator).lease_id, "a")
    compiled = q.POOL_ROUTED_LOCKED.compile(dialect=service.engine.dialect)
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", compiled.string)))
    sql = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", compiled.string)
    values = {**compiled.params, "project": project.id, "annotator": annotator.id}
    with service.engine.connect() as connection:
        connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")  # the plan a connection keeps
        connection.exec_driver_sql(f"PREPARE pool AS {sql}")
        arguments = ", ".join(f"'{values[name]}'" for name in names)
        (plan,) = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE pool({arguments})").scalar()
        connection.rollback()
    scans = [n for n in _plan_nodes(plan["Plan"]) if n.get("Relation Name") in ("answers", "leases")]
    assert scans and all("item_id" in n.get("Index Cond", "") for n in scans), scans
    assert all(n["Actual Rows"] <= n["Actual Loops"] for n in scans)  # at most one row per probe
