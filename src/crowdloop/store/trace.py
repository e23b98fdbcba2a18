"""Counting what the service asks of its database, for the tests and the benchmarks that keep the
hot path short: on SQLite the SQL statements run (its trace callback: each is a call into the
library), on PostgreSQL the round trips (libpq's trace of the protocol: each Sync or simple Query
the client sends makes it wait for the server once, and so does a Flush that does not come right
after a Sync; statements sent together in pipeline mode share one)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

WAITS = ("Sync", "Query", "Flush")
"""The client's messages after which it waits for the server (a Flush right after a Sync excepted)."""


class DatabaseCalls:
    """The calls counted so far (``total``): statements on SQLite, round trips on PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._statements = 0
        self._traced: list[Any] = []
        self._copies: list[int] = []  # the descriptors libpq writes through (its streams are never closed)
        self._log_path = ""
        self._log_fd = -1
        self._read_at, self._waits, self._last = 0, 0, ""
        if engine.dialect.name == "postgresql":
            fd, self._log_path = tempfile.mkstemp(prefix="crowdloop-trace-")
            os.close(fd)
            self._log_fd = os.open(self._log_path, os.O_WRONLY | os.O_APPEND)

    def trace(self, dbapi_connection: Any, *_: Any) -> None:
        """Start counting on a connection checked out of the pool (once per connection)."""
        if any(traced is dbapi_connection for traced in self._traced):
            return
        self._traced.append(dbapi_connection)
        if self._log_fd < 0:
            dbapi_connection.set_trace_callback(self._count_statement)
            return
        from psycopg import pq

        # libpq writes through a stream of its own on a copy of the descriptor, flushed whenever it sends
        self._copies.append(os.dup(self._log_fd))
        dbapi_connection.pgconn.trace(self._copies[-1])
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def _count_statement(self, _sql: str) -> None:
        self._statements += 1

    @property
    def total(self) -> int:
        if self._log_fd < 0:
            return self._statements
        with open(self._log_path, "rb") as log:
            log.seek(self._read_at)
            text = log.read()
        complete = text.rfind(b"\n") + 1  # a line still being written is read next time
        self._read_at += complete
        for line in text[:complete].splitlines():
            fields = line.split(b"\t")  # direction, length, message, its contents
            if fields[0] != b"F" or len(fields) < 3:
                continue
            message = fields[2].decode("ascii", errors="replace")
            if message in WAITS and not (message == "Flush" and self._last == "Sync"):
                self._waits += 1
            self._last = message
        return self._waits

    def stop(self) -> None:
        for connection in self._traced:
            if self._log_fd < 0:
                connection.set_trace_callback(None)
            elif not connection.closed:
                connection.pgconn.untrace()
        for fd in self._copies:
            os.close(fd)
        if self._log_fd >= 0:
            os.close(self._log_fd)
            os.unlink(self._log_path)


@contextmanager
def database_calls(engine: Engine) -> Iterator[DatabaseCalls]:
    """Count the calls of every connection ``engine`` checks out inside the block (see the module)."""
    calls = DatabaseCalls(engine)
    event.listen(engine, "checkout", calls.trace)
    try:
        yield calls
    finally:
        event.remove(engine, "checkout", calls.trace)
        calls.stop()
