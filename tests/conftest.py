"""Shared fixtures: a database URL for each backend the service supports.

``database_url`` is parametrized over SQLite (a fresh file per test module) and PostgreSQL (a fresh
schema per test module on 127.0.0.1:5432, database ``test``; skipped with the reason when the
server does not answer). Set ``CROWDLOOP_TEST_POSTGRES_URL`` to use another server, and
``CROWDLOOP_REQUIRE_POSTGRES=1`` to fail instead of skipping when it does not answer (the CI does).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("CROWDLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("CROWDLOOP_REQUIRE_POSTGRES", "") not in ("", "0")


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used for tests (None when it can)."""
    parts = urlsplit(POSTGRES_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=1.0):
            pass
    except OSError as exc:
        return f"PostgreSQL does not answer at {parts.hostname}:{parts.port} ({exc})"
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_URL)
        with engine.connect() as connection:
            connection.exec_driver_sql("select 1")
        engine.dispose()
    except Exception as exc:  # any driver or auth failure means: skip, saying why
        return f"PostgreSQL at {parts.hostname}:{parts.port} refuses a connection ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database for this test module: SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'crowdloop.db'}"
        return
    reason = postgres_unavailable()
    if reason and REQUIRE_POSTGRES:
        pytest.fail(f"{reason} (CROWDLOOP_REQUIRE_POSTGRES is set)")
    if reason:
        pytest.skip(reason)
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
