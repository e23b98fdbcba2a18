"""Does the hot path's own execution (``store.direct``) pay? The loop's statements, run both ways.

One transaction of the labeling loop's shape (a lease written, the task's item read, the lease
read back as a submit does, the item's decision written) runs ``--transactions`` times through
``store.direct.direct_transaction`` and through SQLAlchemy Core (``engine.begin()``, its compiled
cache warm), on SQLite (a file, as the service runs it) and PostgreSQL (127.0.0.1:5432, skipped
when it does not answer); the median of ``--runs`` rounds of microseconds per transaction, and the
ratio Core / direct. The direct path stays only if it pays.

    python bench/bench_direct.py
    python bench/bench_direct.py --transactions 2000 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import command_line, machine_lines, markdown_table, write_results

from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, open_service
from crowdloop.store import queries as q
from crowdloop.store.direct import direct_transaction

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_answers() -> bool:
    try:
        with create_engine(POSTGRES_URL).connect() as connection:
            connection.execute(text("select 1"))
        return True
    except Exception:  # any failure to connect means: skip PostgreSQL
        return False


def one_transaction(connection: Any, ids: dict[str, int]) -> None:
    """The loop's statements for one answer: lease, task item, submit's read, lease closed, decision."""
    now = datetime.now(UTC)
    lease_id = uuid.uuid4().hex
    connection.execute(
        q.NEW_LEASE,
        {"id": lease_id, **ids, "state": "open", "suggestions": [{"label": "a", "probability": 0.75}],
         "created_at": now, "expires_at": now + timedelta(minutes=10)},
    )  # fmt: skip
    connection.execute(q.TASK_ITEM, {"item": ids["item_id"]}).one()
    connection.execute(q.SUBMITTED, {"lease": lease_id}).one()
    connection.execute(q.CLOSE_LEASE, {"lease": lease_id, "state": "done"})
    connection.execute(
        q.DECISION,
        [{"status": "more", "label": None, "confidence": None, "needed": 1, "priority": 0.5, "branch": -1,
          "now": now, "item": ids["item_id"]}],
    )  # fmt: skip


def measure(url: str, transactions: int, runs: int) -> dict[str, float]:
    service = open_service(url, seed=0)
    try:
        project = service.create_project(f"direct-{uuid.uuid4().hex[:8]}", LabelSpace(["a", "b"]), gold_rate=0.0)
        service.import_items(project.id, [ItemIn("one", {"title": "a product title"})])
        annotator, _ = service.add_annotator(project.id, "worker")
        engine = service.engine
        with engine.connect() as connection:
            item = connection.execute(select(q.items.c.id).where(q.items.c.project_id == project.id)).scalar_one()
        ids = {"project_id": project.id, "item_id": item, "annotator_id": annotator.id}
        cache: dict = {}
        paths = {
            "direct": lambda: direct_transaction(engine, cache),
            "core": engine.begin,
        }
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(runs):
            for name, begin in paths.items():
                for _ in range(transactions // 10):  # warm: statements compiled, connections pooled
                    with begin() as connection:
                        one_transaction(connection, ids)
                start = time.perf_counter()
                for _ in range(transactions):
                    with begin() as connection:
                        one_transaction(connection, ids)
                times[name].append((time.perf_counter() - start) / transactions * 1e6)
        return {name: statistics.median(values) for name, values in times.items()}
    finally:
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows, payload = [], {"transactions": args.transactions, "runs": args.runs, "results": {}}
    with tempfile.TemporaryDirectory() as folder:
        databases = {"SQLite": f"sqlite:///{Path(folder) / 'direct.db'}"}
        if postgres_answers():
            databases["PostgreSQL"] = POSTGRES_URL
        for name, url in databases.items():
            result = measure(url, args.transactions, args.runs)
            payload["results"][name] = result
            ratio = result["core"] / result["direct"]
            rows.append([name, f"{result['direct']:.0f}", f"{result['core']:.0f}", f"{ratio:.2f}x"])
            print(f"{name}: direct {result['direct']:.0f} us, Core {result['core']:.0f} us, {ratio:.2f}x", flush=True)
    table = markdown_table(
        ["database", "direct (us per transaction)", "SQLAlchemy Core (us)", "Core / direct"],
        rows,
        [False, True, True, True],
    )
    markdown = "\n".join(
        [
            "# The hot path's own execution against SQLAlchemy Core, on the loop's statements",
            "",
            f"`{command_line('bench/bench_direct.py')}`",
            "",
            f"One transaction: a lease written, the task's item read, the lease read back and closed, the "
            f"item's decision written; {args.transactions} transactions per round, median of {args.runs} rounds.",
            "",
            table,
            "",
            *machine_lines({}),
        ]
    )
    md, _ = write_results("direct", markdown, payload)
    print(f"-> {md}")


if __name__ == "__main__":
    main()
