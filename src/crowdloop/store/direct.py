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
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


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
    ``scalar``, ``scalar_one``, ``scalars``, ``rowcount``)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> DirectResult:
        return DirectResult([row[0] for row in self._rows], self.rowcount)


class DirectConnection:
    """``execute(statement, params)`` for Core statements on a DBAPI connection; one parameter
    dict runs the statement once, a list of them runs it for each (``executemany``)."""

    def __init__(self, driver: Any, dialect: Dialect, cache: dict[tuple, CompiledStatement]) -> None:
        self._driver, self._dialect, self._cache = driver, dialect, cache
        self._cursor = driver.cursor()

    def execute(self, statement: ClauseElement, params: Mapping[str, Any] | list[Mapping[str, Any]]) -> DirectResult:
        many = isinstance(params, list)
        first = params[0] if many else params
        key = (statement, tuple(first))
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._cache[key] = CompiledStatement(statement, self._dialect, tuple(first))
        cursor = self._cursor
        if many:
            values = [compiled.parameters(p) for p in params]
            self._guard(compiled.sql, values, lambda: cursor.executemany(compiled.sql, values))
            return DirectResult([], cursor.rowcount)
        values = compiled.parameters(params)
        self._guard(compiled.sql, values, lambda: cursor.execute(compiled.sql, values))
        rows = compiled.rows(cursor) if compiled.returns_rows else []
        return DirectResult(rows, cursor.rowcount)

    def sql(self, text: str) -> None:
        """A statement without parameters or rows (``BEGIN IMMEDIATE``, ``COMMIT``)."""
        self._guard(text, (), lambda: self._cursor.execute(text))

    def commit(self) -> None:
        self._guard("COMMIT", (), self._driver.commit)

    def _guard(self, sql: str, params: Any, work: Callable[[], Any]) -> None:
        try:
            work()
        except self._dialect.loaded_dbapi.Error as exc:
            error, lost = self._dialect.loaded_dbapi.Error, self._dialect.is_disconnect(exc, self._driver, self._cursor)
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
    the writer (``BEGIN``, deferred); PostgreSQL's driver opens the transaction on the first statement."""
    proxied = engine.raw_connection()
    try:
        driver = proxied.driver_connection
        connection = DirectConnection(driver, engine.dialect, cache)
        if engine.dialect.name == "sqlite":
            connection.sql("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield connection
            connection.commit()
        except DBAPIError as exc:
            if exc.connection_invalidated:
                proxied.invalidate()  # never back to the pool
            else:
                driver.rollback()
            raise
        except BaseException:
            driver.rollback()
            raise
    finally:
        proxied.close()
