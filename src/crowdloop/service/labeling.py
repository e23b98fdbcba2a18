"""The labeling loop over the database: projects, items, gold, annotators, leases, answers, review,
and answers imported from before.

Every method is one short transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: row locks with
``FOR UPDATE SKIP LOCKED`` and conditional updates), so any number of threads and processes may
share one database. The decision after an answer costs O(answers of that item); the full EM refit
of skills runs as a job (``refit``), never inside a request.

Invariants the transactions keep, for every non-gold item: ``answer_count + open_leases <=
max_overlap``; ``open_leases`` equals its open leases; an annotator answers an item at most once;
a lease is held by one annotator and yields at most one answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from crowdloop.service.annotators import Annotators
from crowdloop.service.answer_import import AnswerImport
from crowdloop.service.automation import Automation
from crowdloop.service.jobs import Jobs
from crowdloop.service.label_errors import LabelErrors
from crowdloop.service.planning import Planning
from crowdloop.service.predictions import Predictions
from crowdloop.service.projects import Projects
from crowdloop.service.reports import Reports
from crowdloop.service.tasks import Tasks
from crowdloop.service.training import Training
from crowdloop.service.types import RefitReport, RefitSkipped
from crowdloop.store import db
from crowdloop.store.db import DEFAULT_URL, URL_VARIABLE

__all__ = ["DEFAULT_URL", "URL_VARIABLE", "LabelingService", "open_service", "refit_projects"]


def open_service(
    url: str | None = None,
    *,
    seed: int | None = None,
    clock: Callable[[], datetime] | None = None,
    background_checkpoints: bool = False,
) -> LabelingService:
    """The service on ``url`` (default: ``$CROWDLOOP_DATABASE_URL``, else ``./crowdloop.db``),
    with the schema migrated to the latest version. ``seed`` fixes the gold draws and ``clock``
    (a function returning an aware UTC datetime) the time leases are measured by (tests).
    ``background_checkpoints``: a server's SQLite log is checkpointed by a thread of its own
    (``store.db.WalCheckpointer``), not inside requests; ``close`` stops it."""
    engine = db.make_engine(url, background_checkpoints=background_checkpoints)
    db.upgrade(engine)
    service = LabelingService(engine, seed=seed, clock=clock)
    if background_checkpoints:
        service.checkpointer = db.start_checkpointer(engine)
    return service


def refit_projects(url: str | None = None, project: int | str | None = None) -> list[RefitReport | RefitSkipped]:
    """The ``crowdloop refit`` job: a full EM refit of one project (id or name) or of all, in id
    order; a project whose refit is already running is ``RefitSkipped`` and the others go on."""
    service = open_service(url)
    try:
        targets = [service.get_project(project)] if project is not None else service.list_projects()
        return [service.refit_unless_running(p.id) for p in targets]
    finally:
        service.close()


class LabelingService(Training, Automation):
    """The labeling loop. Build it with ``open_service``. Projects are referred to by id;
    annotators by the ``AnnotatorInfo`` that ``authenticate`` returns (the service re-reads their
    role and status in every call). Errors: ``NotFoundError``, ``AuthError``, ``ForbiddenError``,
    ``ConflictError``, ``InputError``/``UnknownLabelError`` (bad input), ``ConfigError``.

    Its parts, each with one job: ``db`` (transactions), ``config`` (the projects' cached
    configuration), ``decisions`` (deciding items), ``projects``, ``annotators``, ``label_errors``,
    ``predictions``, ``tasks``, ``answer_import``, ``reports``, ``planning`` and ``jobs``; its methods are theirs."""

    def __init__(self, engine: Engine, *, seed: int | None = None, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(engine, clock=clock)
        self.projects = Projects(self.db, self.config, self.decisions)
        self.annotators = Annotators(self.db, self.config)
        self.label_errors = LabelErrors(self.db, self.config)
        self.predictions = Predictions(self.db, self.config, self.decisions, self.projects, self.label_errors)
        self.reports = Reports(self.db, self.config, self.decisions, self.projects, self._model_progress)
        self.planning = Planning(self.db, self.projects, self.reports)
        self.answer_import = AnswerImport(self.db, self.config, self.decisions, self.projects)

        def now() -> datetime:  # the clock read at each call: a test may set another
            return self._clock()

        self.tasks = Tasks(self.db, self.config, self.decisions, seed=seed, clock=now)
        self.jobs = Jobs(self.db, self.config, self.decisions, self.projects, now)

        self.create_project = self.projects.create_project
        self.update_project = self.projects.update_project
        self.get_project = self.projects.get_project
        self.list_projects = self.projects.list_projects
        self.import_items = self.projects.import_items
        self.add_gold = self.projects.add_gold
        self.item_state = self.projects.item_state

        self.add_annotator = self.annotators.add_annotator
        self.new_token = self.annotators.new_token
        self.rotate_token = self.annotators.rotate_token
        self.revoke_token = self.annotators.revoke_token
        self.revoke_tokens = self.annotators.revoke_tokens
        self.authenticate = self.annotators.authenticate
        self.authenticate_token = self.annotators.authenticate_token
        self.token_annotator = self.annotators.token_annotator
        self.get_annotator = self.annotators.get_annotator
        self.set_role = self.annotators.set_role
        self.annotator_skills = self.annotators.annotator_skills

        self.next_task = self.tasks.next_task
        self.submit = self.tasks.submit
        self.skip = self.tasks.skip
        self.review_queue = self.tasks.review_queue
        self.review = self.tasks.review
        self.check_answers = self.answer_import.check_answers
        self.import_answers = self.answer_import.import_answers

        self.check_labels = self.label_errors.check_labels
        self.add_model_predictions = self.predictions.add_model_predictions
        self.model_versions = self.predictions.model_versions

        self.progress = self.reports.progress
        self.results = self.reports.results
        self.export_pages = self.reports.export_pages
        self.export_frame = self.reports.export_frame
        self.answers_frame = self.reports.answers_frame
        self.events = self.reports.events
        self.plan = self.planning.plan

        self.claim = self.jobs.claim
        self.claim_refit = self.jobs.claim_refit
        self.refit = self.jobs.refit
        self.refit_unless_running = self.jobs.refit_unless_running
