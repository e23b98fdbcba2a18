"""What a request's write waits for on SQLite while a background job writes pages in another process.

A job process writes page after page (``Database.run_page``: 50 rows and ``--page-ms`` of work under
the write lock, then the pause), as the model worker does; the measured process makes one short write
every 50 ms, as a server does, and times it. The processes queue either on the exclusive ``flock``
of the file beside the database (``service.database.LockFile``, what the service does) or, as
before it, in SQLite's busy handler (sleeps of 1, 2, 5, 10, 15, 20, 25 ms and more between tries).
Several alternating runs of ``--seconds`` each; medians over runs.

    python bench/bench_write_queue.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import command_line, machine_lines, markdown_table, median, write_results

from crowdloop.service import database
from crowdloop.store.db import make_engine

PAGE_ROWS = 50
QUEUES = {"file lock (the service)": "flock", "busy handler (before)": "busy"}


def open_database(queue: str, url: str) -> database.Database:
    """The service's ``Database``, its processes queueing on the file lock or in the busy handler."""
    db = database.Database(make_engine(url))
    if queue == "busy":
        db._writer = database.FifoLock()
    return db


def job(queue: str, url: str, page_seconds: float, stop: Any) -> None:
    """Pages of ``PAGE_ROWS`` rows and ``page_seconds`` of work under the lock until ``stop``."""
    db = open_database(queue, url)

    def page(session: Any) -> None:
        session.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 200}] * PAGE_ROWS)
        started = time.perf_counter()
        while time.perf_counter() - started < page_seconds:
            pass

    pages = 0
    while not stop.is_set():
        db.run_page(page)
        pages += 1
    print(f"  job: {pages} pages", flush=True)
    db.close()


def one_run(queue: str, seconds: float, page_seconds: float) -> np.ndarray:
    """Milliseconds of each short write made beside the job."""
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='crowdloop-bench-queue-')) / 'q.db'}"
    db = open_database(queue, url)
    db.run(lambda s: s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")))
    stop = multiprocessing.get_context("spawn").Event()
    worker = multiprocessing.get_context("spawn").Process(target=job, args=(queue, url, page_seconds, stop))
    worker.start()
    while not db.read(lambda s: s.execute(text("SELECT count(*) FROM t")).scalar()):  # the job has begun
        time.sleep(0.05)
    waits, ends = [], time.monotonic() + seconds
    while time.monotonic() < ends:
        started = time.perf_counter()
        db.run(lambda s: s.execute(text("INSERT INTO t (v) VALUES ('r')")))
        waits.append((time.perf_counter() - started) * 1000)
        time.sleep(0.05)
    stop.set()
    worker.join(30)
    db.close()
    return np.asarray(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--page-ms", type=float, default=15.0)
    args = parser.parse_args()
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in QUEUES}
    for _ in range(args.runs):
        for name, queue in QUEUES.items():  # alternating, so that both see the same machine
            waits = one_run(queue, args.seconds, args.page_ms / 1000)
            figures[name].append({"p50": float(np.median(waits)), "p90": float(np.percentile(waits, 90)),
                                  "p99": float(np.percentile(waits, 99)), "max": float(waits.max())})  # fmt: skip
            print(name, {k: round(v, 2) for k, v in figures[name][-1].items()}, flush=True)
    rows = [[name] + [f"{median([r[k] for r in runs]):.1f}" for k in ("p50", "p90", "p99", "max")]
            for name, runs in figures.items()]  # fmt: skip
    payload = {"command": command_line("bench_write_queue.py"), "settings": vars(args), "runs": figures}
    markdown = "\n".join([
        "# A request's write beside a job writing pages in another process (SQLite)",
        "",
        f"`{payload['command']}`",
        "",
        f"The job: pages of {PAGE_ROWS} rows and {args.page_ms:g} ms of work under the write lock, each followed by "
        f"the service's pause; the request: one short write every 50 ms for {args.seconds:g} s. Medians of "
        f"{args.runs} alternating runs, milliseconds.",
        "",
        markdown_table(["processes queue on", "p50", "p90", "p99", "max"], rows),
        "",
        *machine_lines({}),
    ])  # fmt: skip
    print(markdown)
    write_results("write_queue", markdown, payload)


if __name__ == "__main__":
    main()
