"""The labeling service: the loop annotators work in, over a real database (see ``labeling``).

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
    ModelVersionInfo,
    Progress,
    ProjectInfo,
    RefitReport,
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
    "LabelingService",
    "ModelVersionInfo",
    "Progress",
    "ProjectInfo",
    "RefitReport",
    "ResultRow",
    "ReviewAnswer",
    "ReviewTask",
    "SubmitOut",
    "Suggestion",
    "TaskOut",
    "open_service",
    "refit_projects",
]
