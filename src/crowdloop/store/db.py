"""Database engines and transactions: SQLite (one file, WAL) by default, PostgreSQL by URL.

SQLite serializes writers: every transaction starts with ``BEGIN IMMEDIATE`` (the write lock up
front, so two transactions never both read and then fail to upgrade), waits up to
``busy_timeout`` for it, and runs with foreign keys on. PostgreSQL runs at READ COMMITTED; the
loop takes row locks with ``FOR UPDATE SKIP LOCKED`` and guards every counter with a conditional
``UPDATE``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from crowdloop.errors import ConfigError

DEFAULT_URL = "sqlite:///crowdloop.db"
URL_VARIABLE = "CROWDLOOP_DATABASE_URL"
BUSY_TIMEOUT_MS = 30_000


def database_url(url: str | None = None) -> str:
    """``url``, else ``$CROWDLOOP_DATABASE_URL``, else ``sqlite:///crowdloop.db``; a bare path
    (``labels.db``) means an SQLite file."""
    url = url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
    return url if "://" in url else f"sqlite:///{url}"


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (see ``database_url``) set up for the labeling loop."""
    url = database_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"not a database URL: {url!r} ({exc})") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql+psycopg://...")


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ConfigError("an in-memory SQLite database cannot be shared: give a file, e.g. sqlite:///crowdloop.db")
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: the driver leaves transactions to us (it would otherwise BEGIN lazily
    # and DEFERRED), so that the "begin" hook below can take the write lock at once.
    engine = create_engine(url, connect_args={"isolation_level": None, "timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any error."""
    with factory() as session, session.begin():
        yield session


def migrations_path() -> Path:
    return Path(str(resources.files("crowdloop.store") / "migrations"))


_UPGRADE_LOCK = threading.Lock()  # Alembic's migration context is global to the process
_MIGRATION_LOCK_KEY = 7_262_077_383  # PostgreSQL advisory lock: one process migrates at a time


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations shipped with crowdloop up to ``revision`` (safe to call from many
    threads and processes at once: on SQLite the migration's ``BEGIN IMMEDIATE`` serializes them,
    on PostgreSQL an advisory lock)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_path()))
    with _UPGRADE_LOCK, engine.connect() as connection:
        if is_postgresql(engine):
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK_KEY})")
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
        finally:
            if is_postgresql(engine):
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK_KEY})")
                connection.commit()
