"""The service's database: one short transaction per unit of work, retried on deadlocks, serialization
failures, a busy SQLite file and lost connections (``Database.run``); reads that wait for no writer
(``read``); and the hot path on the driver's own connection (``run_direct``, ``store.direct``).

SQLite has one writer at a time: this process's threads queue on a lock of their own instead of in
SQLite's busy handler, which sleeps up to 100 ms between tries; first come, first served
(``FifoLock``): a plain lock lets a thread that just arrived, or just let go, take it again before
the ones waiting, and under load some requests waited ten times as long as the queue was. The
processes on one file (the server's and the model worker's) queue on an exclusive ``flock`` of a
file beside it (``LockFile``), which the kernel hands on the moment it is let go. A retry waits 10 ms times the
attempt, times a random factor in [1, 2) so that two transactions that collided do not collide again.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from crowdloop.store import db
from crowdloop.store.direct import CompiledStatement, DirectConnection, direct_transaction

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy handler alone queues the processes
    fcntl = None

T = TypeVar("T")
RETRIES = 8
PAGE_PAUSE = 0.025  # seconds a job leaves SQLite's write lock to the requests after each page it writes


class Executor(Protocol):
    """Where the service runs a Core statement: a ``Session``, a ``Connection`` or the hot path's
    ``store.direct.DirectConnection``."""

    def execute(self, statement: Any, params: Any = ..., /) -> Any: ...


def retryable(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure (PostgreSQL), a busy database (SQLite) or a lost
    connection (the pool has dropped it): try again."""
    code = getattr(exc.orig, "sqlstate", None)
    return exc.connection_invalidated or code in ("40P01", "40001") or "database is locked" in str(exc.orig)


class LockFile:
    """An exclusive ``flock`` of the file ``path``: the queue of every process writing to one SQLite
    file. A process waiting in SQLite's busy handler for another's write lock sleeps 1, 2, 5, 10,
    15, 20, then 25 ms and more between tries, so a request of the server that met a page of the
    model worker waited for the page and then for the handler's next try, and every request queued
    behind it waited too (``bench/bench_write_queue.py``, 15 ms pages: 19.7 ms at p90 against 15.1);
    a process blocked in ``flock`` is woken when the lock is let go. The kernel lets the lock
    go with the process that held it, whatever killed it. Each process opens the file itself
    (``os.getpid``): a descriptor inherited through ``fork`` would share the lock instead of
    queueing on it. One thread of a process at a time takes it (``FifoLock``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    def lock(self) -> None:
        """Wait for the file's lock and take it."""
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        """Let the file's lock go."""
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the file (opened again by the next ``lock``)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd, self._pid = None, 0


class FifoLock:
    """A reentrant lock that its waiters get in the order they asked for it, and, with a ``file``,
    that holds the file's lock from its first acquire to its last release (the other processes).

    ``threading.RLock`` is not fair: whoever runs when it is released takes it, often a thread that
    has just arrived or the one that released it, while the ones waiting for longest wait on. Each
    waiter here blocks on a lock of its own, which the releasing thread hands over to the first."""

    def __init__(self, file: LockFile | None = None) -> None:
        self.file = file
        self._guard = threading.Lock()
        self._waiters: collections.deque[tuple[int, threading.Lock]] = collections.deque()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1
                return
            turn = None
            if self._owner is None:
                self._owner, self._depth = me, 1
            else:
                turn = threading.Lock()
                turn.acquire()
                self._waiters.append((me, turn))
        if turn is not None:
            try:
                turn.acquire()  # released by the thread that hands the lock over, to this thread already
            except BaseException:  # interrupted while waiting (Ctrl-C): out of the queue, or pass it on
                with self._guard:
                    if self._owner != me:
                        self._waiters.remove((me, turn))
                        raise
                self._hand_on()
                raise
        if self.file is not None:
            try:
                self.file.lock()
            except BaseException:
                self._hand_on()
                raise

    def release(self) -> None:
        with self._guard:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a FifoLock this thread does not hold")
            self._depth -= 1
            if self._depth:
                return
            if self.file is not None:
                self.file.unlock()
            self._pass()

    def _hand_on(self) -> None:
        """Give up the lock this thread was just handed, without the file's lock."""
        with self._guard:
            self._pass()

    def _pass(self) -> None:
        """To the first waiter, or to no one (under ``_guard``)."""
        if not self._waiters:
            self._owner, self._depth = None, 0
            return
        self._owner, turn = self._waiters.popleft()
        self._depth = 1
        turn.release()

    def __enter__(self) -> FifoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def writer_lock(engine: Engine) -> FifoLock | contextlib.nullcontext:
    """The lock the writers of ``engine`` queue on: none on PostgreSQL (row locks), on a SQLite
    file a ``FifoLock`` with the ``LockFile`` ``<file>-writer`` (where ``flock`` exists)."""
    if db.is_postgresql(engine):
        return contextlib.nullcontext()
    return FifoLock(LockFile(Path(f"{engine.url.database}-writer")) if fcntl is not None else None)


class Database:
    """Transactions on ``engine`` (module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = db.session_factory(engine)
        self._readers = db.session_factory(db.reader(engine))
        self.pg = db.is_postgresql(engine)
        self._writer = writer_lock(engine)
        self._direct: dict[tuple, CompiledStatement] = {}  # the hot path's statements, compiled
        self._jitter = random.Random()
        self._jitter_lock = threading.Lock()

    def run(self, work: Callable[[Session], T]) -> T:
        """``work`` in one transaction, retried on deadlocks and serialization failures."""
        return self._retried(lambda: db.transaction(self.sessions), work, self._writer)

    def run_page(self, work: Callable[[Session], T]) -> T:
        """A background job's write of one page (``rows.WRITE_PAGE`` items), as ``run``; on SQLite
        followed by a pause as long as the write held the lock, at least ``PAGE_PAUSE`` seconds, so
        that the requests waiting for the write lock get it before the job's next page: a job that
        wrote page after page with a millisecond between them kept one request waiting for all of
        them (180 ms for the refit's re-decisions of 5,000 items, the queue of requests behind it)."""
        if self.pg:
            return self.run(work)
        started = time.perf_counter()
        out = self.run(work)
        time.sleep(max(PAGE_PAUSE, time.perf_counter() - started))
        return out

    def read(self, work: Callable[[Session], T]) -> T:
        """``work`` that only reads, in one transaction that waits for no writer (SQLite: deferred,
        a snapshot beside the write lock)."""
        return self._retried(lambda: db.transaction(self._readers), work, contextlib.nullcontext())

    def run_direct(self, work: Callable[[DirectConnection], T], *, write: bool = True) -> T:
        """``work`` in one transaction on the driver's connection (``store.direct``: the hot path);
        ``write=False`` for one that only reads (see ``read``)."""
        return self._retried(
            lambda: direct_transaction(self.engine, self._direct, write=write),
            work,
            self._writer if write else contextlib.nullcontext(),
        )

    def locked(self, statement: Any, *, skip: bool = False, of: Any = None) -> Any:
        """``SELECT ... FOR UPDATE [SKIP LOCKED]`` on PostgreSQL; SQLite's transaction already
        holds the write lock."""
        return statement.with_for_update(skip_locked=skip, of=of) if self.pg else statement

    def _retried(
        self,
        transaction: Callable[[], contextlib.AbstractContextManager],
        work: Callable[[Any], T],
        writer: contextlib.AbstractContextManager,
    ) -> T:
        for attempt in range(RETRIES):
            try:
                with writer, transaction() as session:
                    return work(session)
            except DBAPIError as exc:
                if isinstance(exc, IntegrityError) or not retryable(exc) or attempt == RETRIES - 1:
                    raise
                with self._jitter_lock:
                    factor = 1 + self._jitter.random()
                time.sleep(0.01 * (attempt + 1) * factor)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Release the database connections (and the writer lock's file)."""
        self.engine.dispose()
        if isinstance(self._writer, FifoLock) and self._writer.file is not None:
            self._writer.file.close()
