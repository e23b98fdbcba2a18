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
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from sqlalchemy import Engine

from crowdloop.service.annotators import Annotators
from crowdloop.service.answer_import import AnswerImport
from crowdloop.service.automation import Automation
from crowdloop.service.database import Database
from crowdloop.service.item_decisions import ItemDecisions
from crowdloop.service.jobs import Jobs
from crowdloop.service.label_errors import LabelErrors
from crowdloop.service.planning import Planning
from crowdloop.service.predictions import Predictions
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.projects import Projects
from crowdloop.service.reports import Reports
from crowdloop.service.tasks import Tasks
from crowdloop.service.training import Training
from crowdloop.service.types import RefitReport, RefitSkipped
from crowdloop.store import db
from crowdloop.store.db import DEFAULT_URL, URL_VARIABLE
from crowdloop.store.schema import utcnow

__all__ = ["DEFAULT_URL", "URL_VARIABLE", "LabelingService", "open_service", "refit_projects"]

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


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


class Part(Generic[S, P, R]):
    """A method of one of the service's parts, given as the service's own: ``service.submit`` is
    ``service.tasks.submit`` (with its signature and docstring)."""

    def __init__(self, part: str, method: Callable[Concatenate[S, P], R]) -> None:
        self.part, self.name = part, method.__name__
        self.__doc__, self.__wrapped__ = method.__doc__, method

    @overload
    def __get__(self, service: None, owner: type | None = None) -> Part[S, P, R]: ...

    @overload
    def __get__(self, service: object, owner: type | None = None) -> Callable[P, R]: ...

    def __get__(self, service: object | None, owner: type | None = None) -> Any:
        return self if service is None else getattr(getattr(service, self.part), self.name)


class LabelingService:
    """The labeling loop. Build it with ``open_service``. Projects are referred to by id;
    annotators by the ``AnnotatorInfo`` that ``authenticate`` returns (the service re-reads their
    role and status in every call). Errors: ``NotFoundError``, ``AuthError``, ``ForbiddenError``,
    ``ConflictError``, ``InputError``/``UnknownLabelError`` (bad input), ``ConfigError``.

    A facade over parts with one job each, built here with what each uses: ``db`` (transactions,
    ``Database``), ``config`` (the projects' cached configuration, ``ProjectConfig``), ``decisions``
    (deciding items and writing the decisions, ``ItemDecisions``), ``projects`` (projects, settings,
    items, gold), ``annotators`` (annotators, roles, tokens), ``tasks`` (the loop: next task, submit,
    skip, review), ``answer_import``, ``label_errors``, ``predictions`` (model versions),
    ``reports``, ``planning``, ``jobs`` (claims and the refit), ``automation`` (model labels and
    their audit) and ``training`` (the project's own model). Its methods are theirs."""

    create_project = Part("projects", Projects.create_project)
    update_project = Part("projects", Projects.update_project)
    get_project = Part("projects", Projects.get_project)
    list_projects = Part("projects", Projects.list_projects)
    import_items = Part("projects", Projects.import_items)
    add_gold = Part("projects", Projects.add_gold)
    item_state = Part("projects", Projects.item_state)

    add_annotator = Part("annotators", Annotators.add_annotator)
    new_token = Part("annotators", Annotators.new_token)
    rotate_token = Part("annotators", Annotators.rotate_token)
    revoke_token = Part("annotators", Annotators.revoke_token)
    revoke_tokens = Part("annotators", Annotators.revoke_tokens)
    authenticate = Part("annotators", Annotators.authenticate)
    authenticate_token = Part("annotators", Annotators.authenticate_token)
    token_annotator = Part("annotators", Annotators.token_annotator)
    get_annotator = Part("annotators", Annotators.get_annotator)
    set_role = Part("annotators", Annotators.set_role)
    annotator_skills = Part("annotators", Annotators.annotator_skills)

    next_task = Part("tasks", Tasks.next_task)
    submit = Part("tasks", Tasks.submit)
    skip = Part("tasks", Tasks.skip)
    review_queue = Part("tasks", Tasks.review_queue)
    review = Part("tasks", Tasks.review)
    check_answers = Part("answer_import", AnswerImport.check_answers)
    import_answers = Part("answer_import", AnswerImport.import_answers)

    check_labels = Part("label_errors", LabelErrors.check_labels)
    add_model_predictions = Part("predictions", Predictions.add_model_predictions)
    model_versions = Part("predictions", Predictions.model_versions)

    progress = Part("reports", Reports.progress)
    results = Part("reports", Reports.results)
    export_pages = Part("reports", Reports.export_pages)
    export_frame = Part("reports", Reports.export_frame)
    answers_frame = Part("reports", Reports.answers_frame)
    events = Part("reports", Reports.events)
    plan = Part("planning", Planning.plan)

    claim = Part("jobs", Jobs.claim)
    claim_refit = Part("jobs", Jobs.claim_refit)
    refit = Part("jobs", Jobs.refit)
    refit_unless_running = Part("jobs", Jobs.refit_unless_running)
    service_versions = Part("training", Training.service_versions)
    model_job = Part("training", Training.model_job)

    def __init__(self, engine: Engine, *, seed: int | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self._clock = clock or utcnow
        self.checkpointer: db.WalCheckpointer | None = None
        self.db = Database(engine)
        self._run, self._sessions = self.db.run, self.db.sessions  # the model worker's and the tests' way in
        self.config = ProjectConfig()
        self.decisions = ItemDecisions(self.config)

        def now() -> datetime:  # the clock read at each call: a test may set another
            return self._clock()

        self.projects = Projects(self.db, self.config, self.decisions)
        self.annotators = Annotators(self.db, self.config)
        self.tasks = Tasks(self.db, self.config, self.decisions, seed=seed, clock=now)
        self.answer_import = AnswerImport(self.db, self.config, self.decisions, self.projects)
        self.label_errors = LabelErrors(self.db, self.config)
        self.predictions = Predictions(self.db, self.config, self.decisions, self.projects, self.label_errors)
        self.automation = Automation(self.db, self.config)
        self.reports = Reports(self.db, self.config, self.decisions, self.projects, self.automation)
        self.planning = Planning(self.db, self.projects, self.reports)
        self.jobs = Jobs(self.db, self.config, self.decisions, self.projects, now)
        self.training = Training(self.db, self.projects, self.reports, self.jobs, self.automation)

    def close(self) -> None:
        """Stop the log checkpoints (if any) and release the database connections."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.db.close()
