"""The labeling loop's hot path on the driver's own connection, below SQLAlchemy's execution layer.

The statements stay SQLAlchemy Core (``store.queries``): each is compiled once per dialect and
set of parameter names into its SQL text, its parameter order and the dialect's own bind and
result processors (dates as text on SQLite, JSON, booleans), then run straight on the DBAPI
cursor. The rows and the errors are the ones SQLAlchemy gives (named rows; ``DBAPIError``
subclasses such as ``IntegrityError``), so the service code reads the same either way; what it
saves is SQLAlchemy's per-statement bookkeeping, several times the database's own work for the
loop's one-row statements. Statements with expanding ``IN`` parameters are refused: the hot path
only runs statements of a fixed size; so are writes that leave out a column whose default is
computed in Python (SQLAlchemy's execution would fill it; here it would be NULL).

On PostgreSQL the transaction runs in psycopg's pipeline mode: ``execute`` sends the statement and
returns at once, and the round trip to the server is made when a result is first read (its rows or
its row count), for every statement sent until then, or by the commit. Statements whose results
are read later share one round trip: send the independent ones first, then read. An error is
raised by a later call (the read of a result, a statement sent, or the commit): in any case
inside the transaction, which it rolls back.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

IDLE = 0  # libpq's PQTRANS_IDLE: no transaction open


class CompiledStatement:
    """One statement compiled for one dialect and one set of parameter names."""

    __slots__ = ("_convert", "_defaults", "_dialect", "_named", "_names", "_positional", "_results", "_types", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("statements with expanding IN parameters do not run on the direct path")
        self.sql = compiled.string
        self._positional = dialect.paramstyle in ("qmark", "numeric", "format")
        self._names = list(compiled.positiontup) if self._positional else list(compiled.binds)
        missing = [name for name, bind in compiled.binds.items() if bind.required and name not in keys]
        if missing:
            raise ValueError(f"parameters {missing} have no value")
        computed = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch) if c.key not in keys]
        if computed:  # SQLAlchemy's execution would compute them; here they would be stored as NULL
            raise ValueError(f"columns {computed} take a Python-side default: pass their values")
        self._defaults = {name: bind.value for name, bind in compiled.binds.items() if name not in keys}
        self._convert = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        columns = list(getattr(statement, "exported_columns", ()))
        self._named = namedtuple("Row", [c.key for c in columns]) if columns else None
        self._types = [c.type.dialect_impl(dialect) for c in columns]
        self._dialect = dialect
        self._results: list[tuple[int, Callable]] | None = None  # set from the first result's description

    def parameters(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The driver's parameters (positional or named) of one row of ``params``."""
        values = {**self._defaults, **params}
        for name, convert in self._convert.items():
            values[name] = convert(values[name])
        return [values[name] for name in self._names] if self._positional else values

    @property
    def returns_rows(self) -> bool:
        return self._named is not None

    def rows(self, cursor: Any) -> list[Any]:
        """The cursor's rows as named rows, each value through the dialect's result processor
        (chosen once, by the driver's column types; the description is read only then, as some
        drivers build it anew on every read)."""
        if self._results is None:
            self._results = [
                (i, f)
                for i, (kind, column) in enumerate(zip(self._types, cursor.description, strict=True))
                if (f := kind.result_processor(self._dialect, column[1])) is not None
            ]
        return [self._one_row(raw) for raw in cursor.fetchall()]

    def _one_row(self, raw: Sequence[Any]) -> Any:
        if not self._results:
            return self._named._make(raw)
        values = list(raw)
        for i, convert in self._results:
            values[i] = convert(values[i])
        return self._named._make(values)


class DirectResult:
    """The rows of one statement, read like SQLAlchemy's ``Result`` (``first``, ``one``, ``all``,
    ``scalar``, ``scalar_one``, ``scalars``, ``rowcount``); ``pending`` (pipeline mode) gives them
    when first read."""

    __slots__ = ("_pending", "_rowcount", "_rows")

    def __init__(
        self, rows: list[Any], rowcount: int, pending: Callable[[], tuple[list[Any], int]] | None = None
    ) -> None:
        self._rows, self._rowcount, self._pending = rows, rowcount, pending

    def _ready(self) -> list[Any]:
        if self._pending is not None:
            self._rows, self._rowcount = self._pending()
            self._pending = None
        return self._rows

    @property
    def rowcount(self) -> int:
        self._ready()
        return self._rowcount

    def all(self) -> list[Any]:
        return self._ready()

    def first(self) -> Any:
        rows = self._ready()
        return rows[0] if rows else None

    def one(self) -> Any:
        rows = self._ready()
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0]

    def scalar(self) -> Any:
        rows = self._ready()
        return rows[0][0] if rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> DirectResult:
        rows = self._ready()
        return DirectResult([row[0] for row in rows], self._rowcount)


class DirectConnection:
    """``execute(statement, params)`` for Core statements on a DBAPI connection; one parameter
    dict runs the statement once, a list of them runs it for each (``executemany``). ``pipelined``
    (psycopg's pipeline mode, PostgreSQL): statements are sent at once and their results read
    later (module docstring)."""

    def __init__(
        self, driver: Any, dialect: Dialect, cache: dict[tuple, CompiledStatement], *, pipelined: bool = False
    ) -> None:
        self._driver, self._dialect, self._cache = driver, dialect, cache
        self._cursor = driver.cursor()
        self._sent = self._synced = 0  # statements sent in pipeline mode; how many of them have results
        self._pipeline = self._leave_pipeline = None
        if pipelined:
            mode = driver.pipeline()
            self._pipeline, self._leave_pipeline = mode.__enter__(), mode.__exit__

    def execute(self, statement: ClauseElement, params: Mapping[str, Any] | list[Mapping[str, Any]]) -> DirectResult:
        many = isinstance(params, list)
        first = params[0] if many else params
        key = (statement, tuple(first))
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._cache[key] = CompiledStatement(statement, self._dialect, tuple(first))
        # in pipeline mode each statement has a cursor of its own, which its results are attached to
        cursor = self._cursor if self._pipeline is None else self._driver.cursor()
        if many:
            values = [compiled.parameters(p) for p in params]
            self._guard(compiled.sql, values, lambda: cursor.executemany(compiled.sql, values))
        else:
            values = compiled.parameters(params)
            self._guard(compiled.sql, values, lambda: cursor.execute(compiled.sql, values))

        def result() -> tuple[list[Any], int]:
            return (compiled.rows(cursor) if compiled.returns_rows and not many else []), cursor.rowcount

        if self._pipeline is None:
            return DirectResult(*result(), None)
        self._sent += 1
        sent = self._sent

        def pending() -> tuple[list[Any], int]:
            if self._synced < sent:
                self._sync()
            return result()

        return DirectResult([], -1, pending)

    def _sync(self) -> None:
        """One round trip: the server runs what was sent, the results come back."""
        self._synced = self._sent
        self._guard("SYNC", (), self._pipeline.sync)

    def sql(self, text: str) -> None:
        """A statement without parameters or rows (``BEGIN IMMEDIATE``, ``COMMIT``); in pipeline
        mode only sent."""
        self._guard(text, (), lambda: self._cursor.execute(text))

    def commit(self) -> None:
        """Commit; in pipeline mode leaving it sends the COMMIT with what is pending, one round trip."""
        if self._pipeline is None:
            self._guard("COMMIT", (), self._driver.commit)
            return
        self.sql("COMMIT")
        self.leave_pipeline(None)

    def leave_pipeline(self, error: BaseException | None) -> None:
        """Out of pipeline mode, every result received; the errors among them raised, unless the
        block already fails with ``error``."""
        if self._pipeline is None:
            return
        leave, self._pipeline = self._leave_pipeline, None
        self._synced = self._sent
        if error is None:
            self._guard("COMMIT", (), lambda: leave(None, None, None))
        else:
            leave(type(error), error, error.__traceback__)

    def _lost(self, exc: Exception) -> bool:
        """Whether ``exc`` ended the connection: the dialect sees it closed, or PostgreSQL said so
        (SQLSTATE class 08, or 57P01-57P03: the server shut the session down), which arrives before
        the driver has marked the connection closed."""
        state = getattr(exc, "sqlstate", None) or ""
        return bool(self._dialect.is_disconnect(exc, self._driver, self._cursor) or state.startswith("08")
                    or state in ("57P01", "57P02", "57P03"))  # fmt: skip

    def _guard(self, sql: str, params: Any, work: Callable[[], Any]) -> None:
        try:
            work()
        except self._dialect.loaded_dbapi.Error as exc:
            error, lost = self._dialect.loaded_dbapi.Error, self._lost(exc)
            raise DBAPIError.instance(
                sql, params, exc, error, dialect=self._dialect, connection_invalidated=lost
            ) from exc


@contextmanager
def direct_transaction(
    engine: Engine, cache: dict[tuple, CompiledStatement], *, write: bool = True
) -> Iterator[DirectConnection]:
    """One transaction on a pooled connection of ``engine``: committed when the block ends, rolled
    back on any error. SQLite takes the write lock at once (``BEGIN IMMEDIATE``, as ``store.db``
    does for every transaction that may write) or, for ``write=False``, reads a snapshot beside
    the writer (``BEGIN``, deferred). PostgreSQL's runs in pipeline mode (module docstring), its
    ``BEGIN`` sent with the first statements: the driver, left to open the transaction itself, would
    wait for the server's answer to it alone, so it runs in autocommit mode until the block ends."""
    proxied = engine.raw_connection()
    driver = proxied.driver_connection
    pipelined = engine.dialect.name == "postgresql"
    try:
        with _autocommitted(proxied) if pipelined else nullcontext():
            connection = DirectConnection(driver, engine.dialect, cache, pipelined=pipelined)
            try:
                connection.sql("BEGIN IMMEDIATE" if write and not pipelined else "BEGIN")
                yield connection
                connection.commit()
            except BaseException as exc:
                connection.leave_pipeline(exc)
                if isinstance(exc, DBAPIError):
                    _rolled_back(proxied, exc, engine.dialect.loaded_dbapi.Error)
                else:
                    driver.rollback()
                raise
    finally:
        proxied.close()


@contextmanager
def _autocommitted(proxied: Any) -> Iterator[None]:
    """A pipelined transaction's psycopg connection in autocommit mode (its ``BEGIN`` sent with the
    first statements), given back to the pool as its other users expect it, or invalidated when
    left in a transaction the driver does not know of."""
    driver = proxied.driver_connection
    driver.autocommit = True
    try:
        yield
    finally:
        if proxied.is_valid and (driver.closed or driver.info.transaction_status != IDLE):
            proxied.invalidate()
        elif proxied.is_valid:
            driver.autocommit = False


def _rolled_back(proxied: Any, exc: DBAPIError, driver_error: type[Exception]) -> None:
    """After ``exc``: the transaction rolled back, or the connection invalidated when it was lost.
    A connection that cannot roll back was lost too, and ``exc`` says so (a retry may follow): in
    pipeline mode the server's closing can reach the statement before the driver marks the
    connection broken, and the loss shows only at the rollback."""
    if not exc.connection_invalidated:
        try:
            proxied.driver_connection.rollback()
            return
        except driver_error:
            exc.connection_invalidated = True
    proxied.invalidate()  # never back to the pool
