"""Shared fixtures: a database URL for each backend the service supports, and crowds.

``database_url`` is parametrized over SQLite (a fresh file per test module) and PostgreSQL (a fresh
schema per test module on 127.0.0.1:5432, database ``test``; skipped with the reason when the
server does not answer). Set ``CROWDLOOP_TEST_POSTGRES_URL`` to use another server, and
``CROWDLOOP_REQUIRE_POSTGRES=1`` to fail instead of skipping when it does not answer (the CI does).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
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


def _small_sparse_crowd(seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """A small sparse crowd shaped like the 5-class weather-sentiment one: 300 items of unbalanced
    classes, 5 answers each, 110 workers whose activity falls off as a power law (a few give dozens
    of answers, most a handful), accuracy .45-.85, wrong answers drawn from each worker's own
    preferences over the other classes."""
    rng = np.random.default_rng(seed)
    n_items, n_workers, k, per_item = 300, 110, 5, 5
    truth = rng.choice(k, n_items, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    activity = 1.0 / np.arange(1, n_workers + 1) ** 0.8
    skill = rng.uniform(0.45, 0.85, n_workers)
    item = np.repeat(np.arange(n_items), per_item)
    worker = np.concatenate(
        [rng.choice(n_workers, per_item, replace=False, p=activity / activity.sum()) for _ in range(n_items)]
    )
    preference = rng.dirichlet(np.full(k - 1, 0.7), size=(n_workers, k))
    cdf = np.cumsum(preference[worker, truth[item]], axis=1)
    offset = np.minimum((rng.random(len(item))[:, None] > cdf).sum(axis=1), k - 2)
    label = np.where(rng.random(len(item)) < skill[worker], truth[item], (truth[item] + 1 + offset) % k)
    frame = pd.DataFrame({"task": [f"t{i}" for i in item], "worker": [f"w{w}" for w in worker], "label": label})
    return frame, pd.Series(truth, index=pd.Index([f"t{i}" for i in range(n_items)], name="task"))


@pytest.fixture(scope="session")
def small_sparse_crowd() -> Callable[[int], tuple[pd.DataFrame, pd.Series]]:
    """``small_sparse_crowd(seed)``: see ``_small_sparse_crowd``."""
    return _small_sparse_crowd
