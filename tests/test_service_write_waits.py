"""What an annotator's request may wait for on SQLite: the server's writers take the write lock first
come, first served; a job (refit, the model worker) writes in short transactions; and a server
process leaves the heap it built while starting out of its garbage collections."""

from __future__ import annotations

import gc
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from crowdloop.consensus import ConsensusPolicy
from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, open_service
from crowdloop.service.database import PAGE_PAUSE, Database, FifoLock, LockFile
from crowdloop.service.rows import WRITE_PAGE
from crowdloop.service.worker import ModelWorker
from crowdloop.store.db import make_engine

sys.path.insert(0, str(Path(__file__).parent))
from crowd_loop import answer_in_turns

LABELS = ["a", "b", "c"]


def wait_until_queued(lock: FifoLock, waiters: int) -> None:
    if not hasattr(lock, "_waiters"):  # another kind of lock: give the thread time to block on it
        time.sleep(0.2)
        return
    deadline = time.monotonic() + 10
    while len(lock._waiters) < waiters:
        assert time.monotonic() < deadline, "the thread never started waiting"
        time.sleep(0.001)


def test_the_writer_lock_goes_to_the_thread_that_waited_not_to_the_one_that_let_it_go(tmp_path) -> None:
    """A thread that releases the lock and asks again at once (a plain lock lets it take the lock
    back before the waiting thread wakes up) queues behind the waiting one."""
    database = Database(make_engine(f"sqlite:///{tmp_path / 'w.db'}"))
    lock, order = database._writer, []
    lock.acquire()

    def waiter() -> None:
        with lock:
            order.append("waiter")

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until_queued(lock, 1)
    lock.release()
    with lock:
        order.append("releaser")
    thread.join(10)
    database.close()
    assert order == ["waiter", "releaser"]


def test_waiting_threads_take_the_lock_in_the_order_they_asked_for_it() -> None:
    lock, order = FifoLock(), []
    lock.acquire()
    threads = []
    for k in range(6):
        thread = threading.Thread(target=lambda k=k: (lock.acquire(), order.append(k), lock.release()))
        thread.start()
        wait_until_queued(lock, k + 1)
        threads.append(thread)
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == list(range(6))


def test_the_lock_is_reentrant_and_refuses_a_release_by_another_thread() -> None:
    lock = FifoLock()
    with lock, lock:  # a transaction's work that runs another in the same thread
        failed = []

        def release_from_elsewhere() -> None:
            with pytest.raises(RuntimeError):
                lock.release()
            failed.append(True)

        thread = threading.Thread(target=release_from_elsewhere)
        thread.start()
        thread.join(10)
        assert failed
    assert lock._owner is None and lock.acquire() is None  # free again: taken at once
    lock.release()


def holding_the_write_lock(url: str):
    """A write transaction of another ``Database`` on the file (as another process would hold it)
    in a thread until the returned event is set; returns (event, thread, its database)."""
    other, entered, leave = Database(make_engine(url)), threading.Event(), threading.Event()

    def hold(session) -> None:
        session.execute(text("CREATE TABLE IF NOT EXISTS held (k INTEGER)"))
        entered.set()
        leave.wait(30)

    thread = threading.Thread(target=other.run, args=(hold,))
    thread.start()
    assert entered.wait(10)
    return leave, thread, other


@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock is POSIX")
def test_the_processes_on_one_file_queue_on_a_lock_the_kernel_hands_on(tmp_path) -> None:
    """A write of one process holds an exclusive flock of the file beside the database: the others
    block on it (woken the moment it is let go) instead of polling in SQLite's busy handler, whose
    sleeps of 1-25 ms and more made a request that met a page of the model worker wait up to twice
    the page."""
    import fcntl

    url = f"sqlite:///{tmp_path / 'q.db'}"
    leave, thread, other = holding_the_write_lock(url)
    assert isinstance(other._writer.file, LockFile)
    probe = os.open(tmp_path / "q.db-writer", os.O_RDWR)
    with pytest.raises(BlockingIOError):  # held, as long as the write is
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    second, done = Database(make_engine(url)), []
    writer = threading.Thread(target=lambda: done.append(second.run(lambda s: s.execute(text("SELECT 1")).scalar())))
    writer.start()
    time.sleep(0.2)
    assert not done  # queued behind the first
    leave.set()
    thread.join(10)
    writer.join(10)
    assert done == [1]
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # both let it go
    os.close(probe)
    other.close()
    second.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock is POSIX")
def test_a_killed_writer_leaves_the_lock_to_the_others(tmp_path) -> None:
    """A process killed while it holds the writers' file lock (SIGKILL: no clean-up of its own)
    leaves it to the others: the system lets a flock go with the process."""
    import fcntl

    url = f"sqlite:///{tmp_path / 'k.db'}"
    holder = (
        "import sys, time\n"
        "from crowdloop.service.database import Database\n"
        "from crowdloop.store.db import make_engine\n"
        "db = Database(make_engine(sys.argv[1]))\n"
        "db._writer.acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", holder, url], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        probe = os.open(tmp_path / "k.db-writer", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        process.kill()
        process.wait(10)
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
        os.close(probe)
    finally:
        process.kill()
    database = Database(make_engine(url))
    assert database.run(lambda s: s.execute(text("SELECT 1")).scalar()) == 1
    database.close()


def test_the_model_workers_reads_wait_for_no_writer(tmp_path) -> None:
    """The worker asks which projects have a model and whether a refit is due in read
    transactions: under the write lock they queued behind every request and held up those after them."""
    url = f"sqlite:///{tmp_path / 'reads.db'}"
    service = open_service(url, seed=3)
    project = service.create_project("reads", LabelSpace(LABELS), ConsensusPolicy(target=0.9), text_fields=[])
    worker, results = ModelWorker(service), []
    leave, thread, other = holding_the_write_lock(url)
    reader = threading.Thread(target=lambda: results.append((worker.refit_due(project.id), worker.run_once())))
    reader.start()
    reader.join(10)
    finished = not reader.is_alive()
    leave.set()
    thread.join(10)
    reader.join(10)
    other.close()
    service.close()
    assert finished and results == [(False, [])]


def test_a_refit_writes_in_short_transactions_and_reads_without_the_write_lock(tmp_path) -> None:
    """The refit re-decides and re-weighs every open item: on SQLite each of its write transactions
    changes at most a write page of items (and their events), and it reads its pages of items in
    read transactions; a page of 2,000 items written or read under the write lock held every
    annotator's request for 30-600 ms."""
    service = open_service(f"sqlite:///{tmp_path / 'refit.db'}", seed=3)
    rng = np.random.default_rng(3)
    n_items = 3 * WRITE_PAGE + 50
    project = service.create_project(
        "pages", LabelSpace(LABELS), ConsensusPolicy(target=0.9, min_overlap=1, max_overlap=2), gold_rate=0.3
    )
    truth = {f"i{k}": str(rng.choice(LABELS)) for k in range(n_items)}
    gold = {f"g{k}": str(rng.choice(LABELS)) for k in range(30)}
    items = [ItemIn(k, {"title": f"item {k}"}) for k in truth] + [ItemIn(k, {}, gold=v) for k, v in gold.items()]
    service.import_items(project.id, items)
    skills = {"a1": 0.9, "a2": 0.8, "a3": 0.7}
    people = {name: service.add_annotator(project.id, name)[0] for name in skills}
    answer_in_turns(service, people, skills, truth | gold, LABELS, rng, 90)  # most items answered once

    writes: list[int] = []  # rows each write transaction changed
    spans: list[tuple[float, float, int]] = []  # when each write transaction held the lock, rows changed
    idle_writes = [0]  # write transactions that changed nothing (reads under the write lock)
    run = service.db.run

    def counted_run(work):
        def counting(session):
            driver = session.connection().connection.driver_connection
            before = driver.total_changes
            out = work(session)
            changed[0] = driver.total_changes - before
            writes.append(changed[0]) if changed[0] else idle_writes.__setitem__(0, idle_writes[0] + 1)
            return out

        changed, started = [0], time.perf_counter()
        out = run(counting)
        spans.append((started, time.perf_counter(), changed[0]))
        return out

    service.db.run = counted_run
    try:
        report = service.refit(project.id)
    finally:
        service.db.run = run
        service.close()
    assert report.items_redecided >= n_items - 60  # every open item re-decided
    # and written where the first fit's skills changed its decision: the items answered once
    assert sum(writes) >= report.items_redecided - 60
    assert max(writes) <= 2 * WRITE_PAGE, writes  # a decision and at most one event per item
    assert idle_writes[0] <= 2, idle_writes  # the refit's fit and claims, not the pages it reads
    # between two pages it leaves the lock to the requests (SQLite's busy handler sleeps up to 25 ms
    # between tries once a request has waited 30 ms): written back to back, one request waited for all
    pages = [(start, end) for start, end, n in spans if n >= WRITE_PAGE // 4]
    gaps = [later[0] - earlier[1] for earlier, later in itertools.pairwise(pages)]
    assert len(gaps) >= 3 and min(gaps) >= 0.9 * PAGE_PAUSE, gaps  # the four pages of decisions


def test_the_server_leaves_its_startup_heap_out_of_garbage_collections(tmp_path, monkeypatch) -> None:
    from crowdloop.server.app import WORKER_VARIABLE, app_from_environment
    from crowdloop.service import URL_VARIABLE

    monkeypatch.setenv(URL_VARIABLE, f"sqlite:///{tmp_path / 'heap.db'}")
    monkeypatch.setenv(WORKER_VARIABLE, "0")
    gc.unfreeze()
    try:
        app = app_from_environment()
        assert gc.get_freeze_count() > 10_000  # the modules it imported and the app
        app.state.service.close()
    finally:
        gc.unfreeze()
