"""Storage: migrations from an empty database, SQLite settings, and bulk import in fixed-size
statements (no statement grows with the number of items)."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect

from crowdloop.consensus import ConsensusPolicy
from crowdloop.errors import ConfigError
from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, LabelingService
from crowdloop.store import db
from crowdloop.store.schema import Base

TABLES = {
    "projects", "items", "gold_labels", "annotators", "api_tokens", "leases", "answers", "model_versions",
    "predictions", "events", "job_claims", "model_artifacts", "audits",
}  # fmt: skip


def test_migrations_build_the_schema_from_empty(database_url: str) -> None:
    engine = db.make_engine(database_url)
    assert not TABLES & set(inspect(engine).get_table_names())
    db.upgrade(engine, "0001")  # the first schema, then every migration after it
    assert "ix_items_page" not in {ix["name"] for ix in inspect(engine).get_indexes("items")}
    db.upgrade(engine, "0003")
    with engine.begin() as connection:  # a project as 0003 stored it, before settings had a version
        connection.exec_driver_sql(
            "insert into projects (name, is_taxonomy, labels, policy, rules, gold_rate, lease_seconds, model_votes,"
            ' suggestions, created_at) values (\'made-at-0003\', false, \'{"kind": "labels", "labels": ["a"]}\','
            " '{}', '{}', 0.1, 600, true, 3, '2026-01-01 00:00:00')"
        )
    db.upgrade(engine)
    made = LabelingService(engine).get_project("made-at-0003")
    assert made.policy == ConsensusPolicy() and made.gold_rate == 0.1
    with engine.connect() as connection:
        assert connection.exec_driver_sql("select settings_version from projects").scalar() == 0
    assert {"ix_items_page", "ix_items_progress", "ix_items_gold_pool"} <= {
        ix["name"] for ix in inspect(engine).get_indexes("items")
    }
    assert set(inspect(engine).get_table_names()) >= TABLES | {"alembic_version"}
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        version = connection.exec_driver_sql("select version_num from alembic_version").scalar()
    assert version == ScriptDirectory(str(db.migrations_path())).get_current_head()  # one head, reached
    db.upgrade(engine)  # running again is a no-op
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        pragma = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": db.BUSY_TIMEOUT_MS}
    engine.dispose()


def test_both_databases_keep_what_a_killed_server_acknowledged_without_waiting_for_the_disk(database_url: str) -> None:
    """SQLite's WAL at ``synchronous=NORMAL`` and PostgreSQL at ``synchronous_commit=off``: the same
    durability (module docstring of ``store.db``); a PostgreSQL URL that names the setting keeps it."""
    engine = db.make_engine(database_url)
    setting = "PRAGMA synchronous" if engine.dialect.name == "sqlite" else "SHOW synchronous_commit"
    with engine.connect() as connection:
        assert str(connection.exec_driver_sql(setting).scalar()) in ("1", "off")  # 1: NORMAL
    engine.dispose()
    if engine.dialect.name == "postgresql":
        strict = db.make_engine(database_url.replace("options=", "options=-csynchronous_commit%3Don%20"))
        with strict.connect() as connection:
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        strict.dispose()


def test_database_urls(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(db.URL_VARIABLE, raising=False)
    assert db.database_url() == "sqlite:///crowdloop.db"
    assert db.database_url("labels.db") == "sqlite:///labels.db"
    monkeypatch.setenv(db.URL_VARIABLE, "postgresql+psycopg://u@h/d")
    assert db.database_url() == "postgresql+psycopg://u@h/d"
    with pytest.raises(ConfigError, match="in-memory"):
        db.make_engine("sqlite://")
    with pytest.raises(ConfigError, match="unsupported"):
        db.make_engine("mysql://u@h/d")


@contextmanager
def statements(engine):
    """Record (SQL text, number of bound values) of every statement sent to the database."""
    seen: list[tuple[str, int]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        nested = isinstance(parameters, list | tuple) and parameters and isinstance(parameters[0], list | tuple | dict)
        rows = parameters if nested else [parameters or ()]
        seen.append((statement, max(len(r) for r in rows)))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _shape(statement: str) -> str:
    """The statement with its placeholder lists collapsed (to compare kinds of statements)."""
    return re.sub(r"(\(\s*(\?|%\(\w+\)s)(\s*,\s*(\?|%\(\w+\)s))*\s*\)\s*,?\s*)+", "(...)", statement)


def test_bulk_import_uses_statements_of_a_fixed_size(database_url: str, monkeypatch) -> None:
    """Importing 5x more items sends 5x more statements, none of them longer or with more values
    (the pool's weighing after an import, a page at a time, is left out here)."""
    monkeypatch.setattr("crowdloop.service.projects.PRIORITIZE_IN_CALL", -1)
    service = LabelingService(_migrated(database_url))
    sizes = {}
    for n in (300, 1500):
        project = service.create_project(f"bulk-{n}", LabelSpace(["x", "y"]), ConsensusPolicy(), gold_rate=0)
        rows = (ItemIn(f"i{i}", {"title": f"item {i}"}, gold="x" if i % 10 == 0 else None) for i in range(n))
        progress: list[int] = []
        with statements(service.engine) as seen:
            assert service.import_items(project.id, rows, batch_size=100, progress=progress.append) == n
        with statements(service.engine) as read:
            results = list(service.results(project.id, batch_size=250))
            service.progress(project.id)
            service.answers_frame(project.id)
        assert progress == list(range(100, n + 1, 100))
        assert len(results) == n - n // 10
        everything = seen + read
        sizes[n] = (
            len(seen),
            max(len(s) for s, _ in everything),
            max(w for _, w in everything),
            {_shape(s) for s, _ in everything},
        )
    small, large = sizes[300], sizes[1500]
    assert large[1] == small[1] and large[2] == small[2]  # the longest statement and the most values: the same
    assert large[2] <= 101  # at most a batch of values (100 ids and the project) in any statement
    assert large[3] == small[3]  # the same kinds of statements
    assert 4 * small[0] <= large[0] <= 6 * small[0]  # their number grows with the batches
    service.close()


def _migrated(url: str):
    engine = db.make_engine(url)
    db.upgrade(engine)
    return engine
