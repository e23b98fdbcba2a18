"""The background worker: the model job of every project, off the request path.

``ModelWorker(service).start()`` runs in a thread of its own (what ``crowdloop serve`` does unless
``--no-worker``); ``crowdloop worker --db URL`` runs the same loop as a process of its own. Each
pass takes, for one project at a time, the ``model`` job's claim (``service.jobs.Claim``, a
``job_claims`` row with an expiry: one holder across every thread and process on the database),
runs ``Training.model_job`` and gives the claim up. Every transaction that writes the job's results
first renews the claim (``Claim.check``): a worker whose claim another took meanwhile writes nothing
(``ClaimLost``), so two processes never train the same project at once. A worker killed mid-job
leaves its claim to lapse; the next one finishes what it left (``service.training``).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from pathlib import Path
from typing import Any

from crowdloop.errors import ConflictError
from crowdloop.service.jobs import Claim
from crowdloop.service.rows import open_and_all, project_row
from crowdloop.service.training import TrainingReport, retrain_due
from crowdloop.store import model_queries as mq

JOB = "model"
REFIT_OPEN_SHARE = 0.25
"""New answers, as a share of the open items, that a refit of the worker waits for (``refit_due``)."""
log = logging.getLogger(__name__)


def freeze_startup_heap() -> None:
    """Leave the objects a long-running process made while it started (the modules of NumPy, pandas,
    scikit-learn, SQLAlchemy, FastAPI: about a million) out of every later garbage collection
    (``gc.freeze``). Python's full collection walks every tracked object: 250-400 ms in the server
    and 80-390 ms in the model worker, every few seconds under load, each stopping every request of
    the server, or holding up the ones waiting for a write the worker had begun. The server and the
    worker call it once, after their imports and before their first request or job."""
    gc.collect()
    gc.freeze()


def lower_priority(niceness: int) -> str:
    """Give the processor to every other process first: each thread of this one (NumPy's BLAS
    threads start when it is imported, and Linux schedules threads, not processes) gets ``niceness``
    more and, on Linux, the ``SCHED_IDLE`` policy (run only when no other thread wants the core);
    threads started later inherit both. ``niceness`` 0 changes nothing. Returns what was done, to print."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return "normal priority"
    tasks = Path("/proc/self/task")
    threads = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]
    idle = hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE")
    for thread in threads:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))
        if idle:
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    return f"nice {nice}" + (", idle scheduling" if idle else "") + f", {len(threads)} threads"


class ModelWorker:
    """The model job of every project with a model (``text_fields`` not ``[]``), every
    ``interval`` seconds, under a claim of ``claim_seconds`` (renewed while it runs and by every
    write); ``parent``: the process id of the server that started it, with which it stops."""

    def __init__(
        self, service: object, *, interval: float = 2.0, claim_seconds: float = 300.0, parent: int | None = None
    ) -> None:
        self.service = service
        self.interval = interval
        self.claim_seconds = claim_seconds
        self.parent = parent
        self._stop = threading.Event()
        # project -> (its last refit's time, answers and newest answer id when this worker saw it)
        self._refits: dict[int, tuple[Any, int, int]] = {}
        self._thread: threading.Thread | None = None

    def claim(self, project_id: int) -> Claim | None:
        """The project's model job claim (None while another holder has it)."""
        return self.service.claim(project_id, JOB, seconds=self.claim_seconds)

    def run_project(self, project_id: int, *, force: bool = False) -> TrainingReport | None:
        """The model job of one project under its claim (None: nothing to do, or another holds it)."""
        claim = self.claim(project_id)
        if claim is None:
            return None
        try:
            report = self.service.model_job(project_id, claim.check, force=force)
            if self.refit_due(project_id):
                self.service.refit(project_id)
            return report
        except ConflictError:  # another took the job over, or a refit runs elsewhere: next pass
            return None
        finally:
            claim.release()

    def refit_due(self, project_id: int) -> bool:
        """Whether enough answers came in since the project's last refit for another (the skills,
        the model's reliability and the calibrator: ``Jobs.refit``): ``retrain_due``'s rule on the
        answers, and at least ``REFIT_OPEN_SHARE`` of the open items: a refit decides and weighs
        every open item again, so the answers between two refits pay for it (at most
        ``2 / REFIT_OPEN_SHARE`` row writes per answer) however large the pool. A refit this worker
        did not order (activating a version refits, and so do ``crowdloop refit`` and the API)
        restarts the count."""
        seen, answers, last = self._refits.get(project_id, (None, 0, 0))

        def read(session: Any) -> tuple[Any, int, int, int]:
            new, newest = session.execute(mq.ANSWERS_SINCE, {"project": project_id, "last": last}).one()
            return (
                project_row(session, project_id).refit_at,
                int(new),
                newest or last,
                open_and_all(session, project_id)[0],
            )

        refit_at, new, newest, open_items = self.service.db.read(read)
        if refit_at != seen:
            self._refits[project_id] = (refit_at, answers + new, newest)
            return False
        if not retrain_due(answers + new, answers) or new < REFIT_OPEN_SHARE * open_items:
            return False
        self._refits[project_id] = (seen, answers + new, newest)
        return True

    def run_once(self) -> list[TrainingReport]:
        """One pass over every project with a model."""
        ids = self.service.db.read(lambda s: s.execute(mq.PROJECT_FIELDS).all())
        reports = []
        for project_id, fields in ids:
            if fields == [] or self._stop.is_set():
                continue
            report = self.run_project(project_id)
            if report is not None:
                reports.append(report)
        return reports

    def orphaned(self) -> bool:
        """Whether the server that started this worker (``parent``) is gone: its children go to
        another parent then, whatever ended it (a SIGTERM, after which uvicorn re-raises the signal
        and the server's own clean-up never runs, or a SIGKILL)."""
        return self.parent is not None and os.getppid() != self.parent

    def run_forever(self) -> None:
        """Passes every ``interval`` seconds until ``stop`` or the server that started it is gone
        (``orphaned``); a failing pass is logged, not fatal."""
        while not self._stop.is_set() and not self.orphaned():
            try:
                self.run_once()
            except Exception:  # the worker outlives one project's failure; the next pass retries
                log.exception("model job failed")
            self._stop.wait(self.interval)

    def start(self) -> ModelWorker:
        """Run ``run_forever`` in a daemon thread of its own."""
        self._thread = threading.Thread(target=self.run_forever, name="crowdloop-model-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end after the current job and wait up to ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
