"""The statements of where a project stands: progress counts, result and export pages, the answers
frame and the event log. Statements with bound parameters, as in ``store.queries``; pages are
ranges of item ids of a fixed size (``last``, ``size``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, select

from crowdloop.store.queries import annotators, answers, gold_labels, items, models, predictions
from crowdloop.store.schema import Annotator, Event, Item

# --- progress -----------------------------------------------------------------------------------
ITEM_PROGRESS = (
    select(
        items.c.status,
        func.count(),
        func.coalesce(func.sum(items.c.answer_count), 0),
        func.coalesce(func.sum(items.c.confidence), 0.0),
        func.count(items.c.confidence),
        func.count().filter(items.c.answer_count == 0),
    )
    .where(items.c.project_id == bindparam("project"))
    .group_by(items.c.status)
)
"""Per status: the project's items, their answers, the sum and count of their confidences, and those
without an answer (one pass over a covering index)."""
ANSWER_KINDS = (
    select(answers.c.is_gold, answers.c.is_review, func.count())
    .where(answers.c.project_id == bindparam("project"))
    .group_by(answers.c.is_gold, answers.c.is_review)
)
"""The project's answers counted by whether their item is gold and whether they are reviews."""
MODEL_ROWS = select(func.coalesce(func.sum(models.c.prediction_count), 0)).where(
    models.c.id.in_(bindparam("versions", expanding=True))
)
"""The predictions stored for the model versions ``versions``."""
PEOPLE = select(func.count(), func.coalesce(func.sum((annotators.c.status == "banned").cast(Integer)), 0)).where(
    annotators.c.project_id == bindparam("project"), annotators.c.kind == "human"
)
"""The project's human annotators, and how many of them are banned."""


# --- results and export pages -------------------------------------------------------------------
def _item_page(*extra: Any) -> Select:
    return (
        select(items.c.id, items.c.external_id, items.c.status, items.c.label, items.c.confidence,
               items.c.answer_count, *extra, models.c.version)
        .outerjoin(models, models.c.id == items.c.model_version_id)
        .where(items.c.project_id == bindparam("project"), items.c.id > bindparam("last"))
        .order_by(items.c.id)
        .limit(bindparam("size"))
    )  # fmt: skip


RESULTS_PAGE = _item_page().where(items.c.is_gold.is_(False))
"""A page of the project's items but gold after id ``last``: id, external id, status, label,
confidence, answer count and the version of the model that labelled it."""
EXPORT_PAGE = _item_page(items.c.payload, gold_labels.c.hint).outerjoin(
    gold_labels, gold_labels.c.item_id == items.c.id
)
"""A page of all the project's items after id ``last``, as ``RESULTS_PAGE`` with the payload and the
gold hint."""
EXPORT_ANSWERS = (
    select(answers.c.item_id, annotators.c.name, answers.c.label, answers.c.is_review)
    .join(annotators, annotators.c.id == answers.c.annotator_id)
    .where(
        answers.c.project_id == bindparam("project"), answers.c.item_id.between(bindparam("first"), bindparam("end"))
    )
    .order_by(answers.c.item_id, answers.c.id)
)
"""The answers to the items ``first`` to ``end``, with their annotator's name."""
EXPORT_PREDICTIONS = (
    select(predictions.c.item_id, models.c.name, models.c.version, predictions.c.labels, predictions.c.probs)
    .join(models, models.c.id == predictions.c.model_version_id)
    .where(models.c.project_id == bindparam("project"),
           predictions.c.item_id.between(bindparam("first"), bindparam("end")))
    .order_by(predictions.c.item_id, models.c.id)
)  # fmt: skip
"""The predictions of every model version for the items ``first`` to ``end``."""

# --- the answers frame and the event log --------------------------------------------------------
ANSWERS_FRAME = (
    select(items.c.external_id, annotators.c.name, answers.c.label, answers.c.duration_ms, answers.c.is_gold,
           answers.c.is_review)
    .join(items, items.c.id == answers.c.item_id)
    .join(annotators, annotators.c.id == answers.c.annotator_id)
    .where(answers.c.project_id == bindparam("project"))
    .order_by(answers.c.id)
)  # fmt: skip
"""Every answer of the project, oldest first: item's external id, annotator's name, label, time and kind."""
EVENTS = (
    select(Event, Item.external_id, Annotator.name)
    .outerjoin(Item, Item.id == Event.item_id)
    .outerjoin(Annotator, Annotator.id == Event.annotator_id)
    .where(Event.project_id == bindparam("project"))
    .order_by(Event.id.desc())
    .limit(bindparam("size"))
)
"""The newest ``size`` events of the project (ORM rows), with their item's external id and annotator's name."""
