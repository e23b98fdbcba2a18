"""The background worker: the model job of every project, off the request path.

``ModelWorker(service).start()`` runs in a thread of its own (what ``crowdloop serve`` does unless
``--no-worker``); ``crowdloop worker --db URL`` runs the same loop as a process of its own. Each
pass takes, for one project at a time, the ``model`` job lease (a ``job_leases`` row with an
expiry: one holder across every thread and process on the database), runs
``Training.model_job`` and lets the lease go. Every transaction that writes the job's results first
renews the lease (the fence): a worker whose lease another took meanwhile writes nothing
(``LeaseLost``), so two processes never train the same project at once. A worker killed mid-job
leaves its lease to expire; the next one finishes what it left (``service.training``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdloop.errors import ConflictError
from crowdloop.service.training import LeaseLost, TrainingReport, retrain_due
from crowdloop.store import model_queries as mq
from crowdloop.store.schema import utcnow

JOB = "model"
log = logging.getLogger(__name__)


class ModelWorker:
    """The model job of every project with a model (``text_fields`` not ``[]``), every
    ``interval`` seconds, under a job lease of ``lease_seconds`` (renewed by every write)."""

    def __init__(self, service: object, *, interval: float = 2.0, lease_seconds: float = 300.0) -> None:
        self.service = service
        self.interval = interval
        self.lease = timedelta(seconds=lease_seconds)
        self.holder = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._refits: dict[int, tuple[int, int]] = {}  # project -> (answers, newest answer id) at its last refit
        self._thread: threading.Thread | None = None

    def _params(self, project_id: int) -> dict:
        now = utcnow()
        return {"lease_job": JOB, "project": project_id, "lease_holder": self.holder, "now": now,
                "lease_until": now + self.lease}  # fmt: skip

    def acquire(self, project_id: int) -> bool:
        """Take the project's job lease (free, expired, or ours already)."""
        params = self._params(project_id)
        if self.service._run(lambda s: s.execute(mq.TAKE_LEASE, params).rowcount == 1):
            return True
        try:
            self.service._run(lambda s: s.execute(mq.NEW_LEASE, params))
        except IntegrityError:  # another holder has it
            return False
        return True

    def fence(self, project_id: int):
        """The check every writing transaction of the job runs: renew the lease or raise ``LeaseLost``."""

        def check(session: Session) -> None:
            if session.execute(mq.TAKE_LEASE, self._params(project_id)).rowcount != 1:
                raise LeaseLost(f"the model job of project {project_id} is held by another worker")

        return check

    def release(self, project_id: int) -> None:
        self.service._run(lambda s: s.execute(mq.DROP_LEASE, self._params(project_id)))

    def run_project(self, project_id: int, *, force: bool = False) -> TrainingReport | None:
        """The model job of one project under its lease (None: nothing to do, or another holds it)."""
        if not self.acquire(project_id):
            return None
        try:
            report = self.service.model_job(project_id, self.fence(project_id), force=force)
            if self.refit_due(project_id):
                self.service.refit(project_id)
            return report
        except (LeaseLost, ConflictError):  # another holds the job, or a refit runs elsewhere: next pass
            return None
        finally:
            self.release(project_id)

    def refit_due(self, project_id: int) -> bool:
        """Whether enough answers came in since this worker's last refit of the project for another
        (the skills, the model's reliability and the calibrator: ``Jobs.refit``): ``retrain_due``'s
        rule on the answers."""
        answers, last = self._refits.get(project_id, (0, 0))
        new, newest = self.service._run(
            lambda s: s.execute(mq.ANSWERS_SINCE, {"project": project_id, "last": last}).one()
        )
        if not retrain_due(answers + new, answers):
            return False
        self._refits[project_id] = (answers + new, newest)
        return True

    def run_once(self) -> list[TrainingReport]:
        """One pass over every project with a model."""
        ids = self.service._run(lambda s: s.execute(mq.PROJECT_FIELDS).all())
        reports = []
        for project_id, fields in ids:
            if fields == [] or self._stop.is_set():
                continue
            report = self.run_project(project_id)
            if report is not None:
                reports.append(report)
        return reports

    def run_forever(self) -> None:
        """Passes every ``interval`` seconds until ``stop``; a failing pass is logged, not fatal."""
        while not self._stop.is_set():
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
