"""The hot path on the driver's connection (``store.direct``) reads and writes what SQLAlchemy
would, raises SQLAlchemy's errors, and commits all or nothing; SQLite's log checkpoints can run
beside the requests. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, open_service
from crowdloop.store import db
from crowdloop.store import queries as q
from crowdloop.store.direct import DirectConnection, direct_transaction


@pytest.fixture(scope="module")
def service(database_url: str):
    svc = open_service(database_url, seed=1)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def rows(service):
    """A project with one item and one annotator: the ids a lease needs."""
    project = service.create_project("direct", LabelSpace(["a", "b"]), gold_rate=0.0)
    service.import_items(project.id, [ItemIn("one", {"title": "naïve ☃", "tags": [1, 2]})])
    annotator, _ = service.add_annotator(project.id, "worker")
    with service.engine.connect() as connection:
        item = connection.execute(select(q.items.c.id).where(q.items.c.project_id == project.id)).scalar_one()
    return {"project_id": project.id, "item_id": item, "annotator_id": annotator.id}


def lease(rows: dict, lease_id: str, expires: datetime) -> dict:
    return {"id": lease_id, **rows, "state": "open", "suggestions": [{"label": "a", "probability": 0.75}],
            "created_at": expires - timedelta(minutes=10), "expires_at": expires}  # fmt: skip


def test_rows_match_what_sqlalchemy_reads(service, rows) -> None:
    expires = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    cache: dict = {}
    with direct_transaction(service.engine, cache) as connection:
        connection.execute(q.NEW_LEASE, lease(rows, "f" * 32, expires))
        fast = connection.execute(q.SUBMITTED, {"lease": "f" * 32}).one()
        payload = connection.execute(q.TASK_ITEM, {"item": rows["item_id"]}).one()
    with service.engine.connect() as connection:
        slow = connection.execute(q.SUBMITTED, {"lease": "f" * 32}).one()
        slow_payload = connection.execute(q.TASK_ITEM, {"item": rows["item_id"]}).one()
    assert tuple(fast) == tuple(slow) and fast._fields == tuple(slow._mapping.keys())
    assert fast.suggestions == [{"label": "a", "probability": 0.75}]  # JSON decoded
    assert fast.i_is_gold is False and fast.has_models is not None  # booleans as booleans
    assert tuple(payload) == tuple(slow_payload) and payload.payload == {"title": "naïve ☃", "tags": [1, 2]}
    with service.engine.connect() as connection:
        stored = connection.execute(select(q.leases.c.expires_at).where(q.leases.c.id == "f" * 32)).scalar_one()
    assert stored == expires  # the same timestamp, timezone-aware, through either path
    assert len(cache) == 3  # each statement compiled once for its parameter names


def test_errors_are_sqlalchemys_and_roll_back_the_whole_transaction(service, rows) -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(IntegrityError), direct_transaction(service.engine, {}) as connection:
        connection.execute(q.NEW_LEASE, lease(rows, "a" * 32, expires))
        connection.execute(q.NEW_LEASE, lease(rows, "a" * 32, expires))  # the same primary key
    with service.engine.connect() as connection:
        assert connection.execute(select(q.leases.c.id).where(q.leases.c.id == "a" * 32)).first() is None


def test_the_connection_goes_back_to_the_pool_as_it_came(service, rows) -> None:
    """PostgreSQL's pipelined transactions run in autocommit mode: the pool gets the connection
    back out of it, with no transaction open, after a commit and after an error."""
    if service.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's transactions are opened by hand on every connection")
    service.engine.dispose()  # one pooled connection from here on
    done = {**lease(rows, "c" * 32, datetime(2030, 3, 3, tzinfo=UTC)), "state": "done"}  # beside the open one
    with direct_transaction(service.engine, {}) as connection:
        connection.execute(q.NEW_LEASE, done)
    with pytest.raises(IntegrityError), direct_transaction(service.engine, {}) as connection:
        connection.execute(q.NEW_LEASE, done)  # the same primary key
    raw = service.engine.raw_connection()
    try:
        assert raw.driver_connection.autocommit is False
        assert raw.driver_connection.info.transaction_status == 0  # idle
        assert raw.driver_connection.pgconn.pipeline_status == 0  # out of pipeline mode
    finally:
        raw.close()


def test_refuses_what_it_cannot_run_exactly(service, rows) -> None:
    with direct_transaction(service.engine, {}) as connection:
        with pytest.raises(ValueError, match="expanding"):
            connection.execute(q.ITEM_ANSWERS, {"items": [rows["item_id"]]})
        with pytest.raises(ValueError, match="no value"):
            connection.execute(q.TASK_ITEM, {})
        # ``created_at`` has a Python-side default, which only SQLAlchemy's execution computes
        without_time = {k: v for k, v in lease(rows, "b" * 32, datetime(2030, 1, 1, tzinfo=UTC)).items()
                        if k != "created_at"}  # fmt: skip
        with pytest.raises(ValueError, match="created_at"):
            connection.execute(q.NEW_LEASE, without_time)


def test_many_rows_in_one_call_update_each(service, rows) -> None:
    now = datetime(2030, 2, 2, tzinfo=UTC)
    change = {"status": "more", "label": None, "confidence": None, "needed": 2, "priority": 0.5, "branch": -1,
              "now": now}  # fmt: skip
    with direct_transaction(service.engine, {}) as connection:
        done = connection.execute(q.DECISION, [{**change, "item": rows["item_id"]}, {**change, "item": -1}])
    assert done.rowcount == 1
    with service.engine.connect() as connection:
        needed = connection.execute(select(q.items.c.needed).where(q.items.c.id == rows["item_id"])).scalar_one()
    assert needed == 2


def test_background_checkpoints_move_the_log_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "checkpointed.db"
    service = open_service(f"sqlite:///{path}", background_checkpoints=True)
    try:
        assert service.checkpointer is not None
        before = path.stat().st_size
        project = service.create_project("wal", LabelSpace(["a", "b"]), gold_rate=0.0)
        service.import_items(project.id, [ItemIn(f"i{k}", {"text": "x" * 200}) for k in range(3000)])
        deadline = time.monotonic() + 10
        while path.stat().st_size <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert path.stat().st_size > before  # pages copied from the log by the checkpointer thread
    finally:
        service.close()
    assert not service.checkpointer._thread.is_alive()


def test_without_background_checkpoints_the_engine_checkpoints_itself(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    engine.dispose()
    engine = db.make_engine(f"sqlite:///{tmp_path / 'server.db'}", background_checkpoints=True)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    engine.dispose()


def _serve_after_the_backend_is_ended(database_url: str, project_name: str) -> None:
    """A task served, and answered, on a service whose one pooled connection's backend was ended."""
    service = open_service(database_url, seed=2)
    try:
        project = service.create_project(project_name, LabelSpace(["a", "b"]), gold_rate=0.0)
        service.import_items(project.id, [ItemIn(f"i{k}", {}) for k in range(3)])
        worker, _ = service.add_annotator(project.id, "worker")
        service.engine.dispose()  # one pooled connection from here on
        raw = service.engine.raw_connection()
        pid = raw.driver_connection.info.backend_pid
        raw.close()
        admin = db.make_engine(database_url)  # another engine's connection ends that backend
        with admin.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        admin.dispose()
        task = service.next_task(worker)  # fails on the dead connection, retried on a new one
        assert task is not None and service.submit(worker, task.lease_id, "a").label == "a"
    finally:
        service.close()


def test_a_lost_connection_is_replaced_and_the_transaction_retried(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("only a database server can drop a connection")
    _serve_after_the_backend_is_ended(database_url, "lost")


def test_a_connection_lost_before_the_driver_knows_it_is_replaced_all_the_same(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In pipeline mode the statement's error can arrive before psycopg marks the connection
    broken, so the error does not look like a lost connection; the rollback on it then fails. The
    connection is dropped and the transaction retried on a new one, as for a loss seen at once."""
    if not database_url.startswith("postgresql"):
        pytest.skip("only a database server can drop a connection")
    monkeypatch.setattr(DirectConnection, "_lost", lambda self, exc: False)
    _serve_after_the_backend_is_ended(database_url, "lost unseen")


def test_a_session_the_server_shut_down_counts_as_a_lost_connection(database_url: str) -> None:
    """PostgreSQL's "terminating connection due to administrator command" (57P01) arrives before the
    driver marks the connection closed: it is a lost connection all the same (retried on a new one),
    not an error to roll back on the dead one."""
    if not database_url.startswith("postgresql"):
        pytest.skip("only a database server can shut a session down")
    from psycopg import errors

    engine = db.make_engine(database_url)
    proxied = engine.raw_connection()
    try:
        connection = DirectConnection(proxied.driver_connection, engine.dialect, {})

        def shut_down() -> None:
            raise errors.AdminShutdown("terminating connection due to administrator command")

        with pytest.raises(DBAPIError) as caught:
            connection._guard("SELECT 1", (), shut_down)
        assert caught.value.connection_invalidated
        with pytest.raises(DBAPIError) as caught:
            connection._guard("SELECT 1", (), lambda: (_ for _ in ()).throw(errors.UniqueViolation("duplicate")))
        assert not caught.value.connection_invalidated
    finally:
        proxied.close()
        engine.dispose()


def test_postgresql_connections_are_bounded_by_the_cores(database_url: str) -> None:
    """A process keeps one PostgreSQL connection per core (at least two) and no overflow: a
    transaction beyond them waits in the process instead of inside PostgreSQL (``store.db``)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers queue on its write lock")
    engine = db.make_engine(database_url)
    try:
        assert engine.pool.size() == db.postgres_connections() >= 2
        held = [engine.raw_connection() for _ in range(db.postgres_connections())]
        engine.pool._timeout = 0.2  # the next checkout waits, then fails: no connection beyond the bound
        with pytest.raises(Exception, match="QueuePool limit"):
            engine.raw_connection()
        for connection in held:
            connection.close()
    finally:
        engine.dispose()
