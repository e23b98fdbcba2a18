"""The labeling service: the loop annotators work in, over a real database.

``open_service(url)`` gives a ``LabelingService`` (SQLite file by default, PostgreSQL by URL): a
facade over parts with one job each, every part in a module of its own and given what it uses when
it is built. ``database`` (transactions with retries), ``rows`` (the rows every part reads alike and
the event log), ``project_config`` (a project's cached configuration and decider),
``item_decisions`` (deciding items and writing the decisions), ``projects`` (projects, settings,
items, gold), ``annotators`` (annotators, roles, tokens, bans and promotions), ``tasks`` (next task,
submit, skip, review), ``answer_import`` (answers given before), ``predictions`` (model versions
that vote and suggest), ``reports`` (progress, results, answers frame, event log), ``jobs`` (job
claims and the full refit, ``refit_projects``, which ``crowdloop refit`` runs), ``suggestions``
(pre-labels, hidden for a share of leases, and their anchoring), ``priorities`` (the pool weighed
by the active strategies, off the request path), ``label_errors`` (accepted labels the model
disputes, to review), ``planning`` (how much data), ``training``, ``automation`` and ``worker``
(the project's own model). The decision after an answer and the refit's fit are
``crowdloop.consensus``'s (``decider.Decider`` and ``fitting.refit``, those of ``crowdloop
decide``): the service reads their inputs and writes their results. Inputs and outputs are the
dataclasses of ``types``; storage is ``crowdloop.store``.

>>> from crowdloop.service import open_service  # doctest: +SKIP
>>> service = open_service("sqlite:///crowdloop.db")  # doctest: +SKIP
"""

from crowdloop.service.labeling import DEFAULT_URL, URL_VARIABLE, LabelingService, open_service, refit_projects
from crowdloop.service.types import (
    ITEM_STATUSES,
    KINDS,
    ROLES,
    AnnotatorInfo,
    GoldIn,
    ItemIn,
    ItemState,
    LabelCheck,
    ModelVersionInfo,
    PlanReport,
    Progress,
    ProjectInfo,
    RefitReport,
    RefitSkipped,
    ResultRow,
    ReviewAnswer,
    ReviewTask,
    SubmitOut,
    Suggestion,
    TaskOut,
)

__all__ = [
    "DEFAULT_URL",
    "ITEM_STATUSES",
    "KINDS",
    "ROLES",
    "URL_VARIABLE",
    "AnnotatorInfo",
    "GoldIn",
    "ItemIn",
    "ItemState",
    "LabelCheck",
    "LabelingService",
    "ModelVersionInfo",
    "PlanReport",
    "Progress",
    "ProjectInfo",
    "RefitReport",
    "RefitSkipped",
    "ResultRow",
    "ReviewAnswer",
    "ReviewTask",
    "SubmitOut",
    "Suggestion",
    "TaskOut",
    "open_service",
    "refit_projects",
]
