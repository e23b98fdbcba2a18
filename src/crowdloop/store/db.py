"""Database engines and transactions: SQLite (one file, WAL) by default, PostgreSQL by URL.

SQLite serializes writers: every transaction that may write starts with ``BEGIN IMMEDIATE`` (the
write lock up front, so two transactions never both read and then fail to upgrade), waits up to
``busy_timeout`` for it, and runs with foreign keys on. Reads run in deferred transactions
(``reader``): in WAL mode they read a snapshot beside the writer, never waiting for it.
PostgreSQL runs at READ COMMITTED; the loop takes row locks with ``FOR UPDATE SKIP LOCKED`` and
guards every counter with a conditional ``UPDATE``.

A process keeps at most ``postgres_connections()`` PostgreSQL connections (one per core, at least
two) and never more: a transaction beyond them waits for a free connection in the process, holding
nothing. A server process runs Python on one core at a time (the interpreter lock), so transactions
in flight beyond the cores do not run sooner; they wait for the interpreter while holding row locks
inside PostgreSQL, and the transactions behind those locks wait for them (a lock convoy). On two
cores, two server processes (``bench/bench_service.py``, 150 answers/s offered) answered submits at
p99 0.95-1.18 s with up to 30 connections each and 0.18-0.44 s with 2 or 3; saturated, they served
186-231 answers/s with 30 and 228-350 with 3.

Both keep what SQLite's WAL with ``synchronous=NORMAL`` keeps: every acknowledged transaction
through a killed server process, the last ones before a crash of the database's machine not
always. PostgreSQL's connections commit with ``synchronous_commit=off`` for it (the WAL writer
flushes within a few hundred milliseconds; a crash loses at most those, never consistency): a
commit waiting for its own disk flush made the loop's throughput the disk's. A URL that names
``synchronous_commit`` in its ``options`` keeps its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from crowdloop.errors import ConfigError

DEFAULT_URL = "sqlite:///crowdloop.db"
URL_VARIABLE = "CROWDLOOP_DATABASE_URL"
READ_ONLY = "crowdloop_read_only"  # execution option of the engine ``reader`` gives
POOL_WAIT_SECONDS = 60
"""How long a transaction waits for a free PostgreSQL connection of its process before it fails."""
BUSY_TIMEOUT_MS = 30_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of write-ahead log kept on disk after a checkpoint


def database_url(url: str | None = None) -> str:
    """``url``, else ``$CROWDLOOP_DATABASE_URL``, else ``sqlite:///crowdloop.db``; a bare path
    (``labels.db``) means an SQLite file."""
    url = url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
    return url if "://" in url else f"sqlite:///{url}"


def postgres_connections() -> int:
    """The PostgreSQL connections a process keeps (module docstring): one per core, at least two."""
    return max(2, os.cpu_count() or 2)


def make_engine(url: str | None = None, *, background_checkpoints: bool = False) -> Engine:
    """An engine for ``url`` (see ``database_url``) set up for the labeling loop.

    ``background_checkpoints`` (SQLite, for a long-running server): the engine's connections never
    checkpoint the write-ahead log themselves; a ``WalCheckpointer`` must (``engine.checkpointer``)."""
    url = database_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"not a database URL: {url!r} ({exc})") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, background_checkpoints)
    if backend == "postgresql":
        # no ping before each checkout (a round trip per transaction): a connection found dead
        # is invalidated when it fails, and the service retries the transaction on a new one
        engine = create_engine(url, pool_size=postgres_connections(), max_overflow=0, pool_timeout=POOL_WAIT_SECONDS)
        if "synchronous_commit" not in parsed.query.get("options", ""):
            event.listen(engine, "connect", _commit_without_waiting_for_the_disk)
        return engine
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql+psycopg://...")


def _commit_without_waiting_for_the_disk(connection: Any, _record: Any) -> None:
    """PostgreSQL: the durability of SQLite's ``synchronous=NORMAL`` (module docstring)."""
    cursor = connection.cursor()
    cursor.execute("SET synchronous_commit TO off")
    cursor.close()
    connection.commit()


def _sqlite_engine(url: str, background_checkpoints: bool) -> Engine:
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
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        if background_checkpoints:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def reader(engine: Engine) -> Engine:
    """``engine`` (the same pool) for transactions that only read: SQLite begins them deferred,
    without the write lock."""
    return engine.execution_options(**{READ_ONLY: True})


class WalCheckpointer:
    """Checkpoints an SQLite database's write-ahead log every ``seconds`` from a thread of its own.

    By default the transaction whose commit fills the log past 1,000 pages copies it into the
    database (and syncs it) before its commit returns: every few dozen answers one request pays
    for it. Here a passive checkpoint (it waits for no reader or writer) runs beside the requests
    instead; the driver releases the GIL while SQLite works, so it takes the other core. WAL mode
    with ``synchronous=NORMAL`` keeps every committed transaction through a killed process either
    way: only a power cut can lose the last ones before a checkpoint."""

    def __init__(self, path: str, seconds: float = 1.0) -> None:
        self._path, self._seconds = path, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crowdloop-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        try:
            while not self._stop.wait(self._seconds):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start_checkpointer(engine: Engine) -> WalCheckpointer | None:
    """A ``WalCheckpointer`` for an SQLite engine made with ``background_checkpoints`` (None otherwise)."""
    if engine.dialect.name != "sqlite":
        return None
    return WalCheckpointer(str(make_url(str(engine.url)).database))


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
