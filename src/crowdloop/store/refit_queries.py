"""The statements of the periodic refit, a job off the request path: the pages of answers, gold,
model rows and item names it reads, and the skills, temperatures and open items it writes.

Statements with bound parameters, as in ``store.queries``; pages are ranges of ids of a fixed size
(``last``, ``size``).
"""

from __future__ import annotations

from sqlalchemy import bindparam, select, update

from crowdloop.store.queries import annotators, answers, gold_labels, items, models, predictions

# --- what the refit reads, in pages ---------------------------------------------------------------
ANSWERS_PAGE = (
    select(answers.c.id, answers.c.item_id, answers.c.annotator_id, answers.c.label, answers.c.is_review)
    .join(annotators, annotators.c.id == answers.c.annotator_id)
    .where(answers.c.project_id == bindparam("project"), answers.c.id > bindparam("last"),
           annotators.c.status != "banned")
    .order_by(answers.c.id)
    .limit(bindparam("size"))
)  # fmt: skip
"""A page of the project's answers after answer id ``last``, but those of banned annotators (which
the decision no longer counts, ``queries.ITEM_ANSWERS``)."""
GOLD_PAGE = (
    select(items.c.id, gold_labels.c.label)
    .join(gold_labels, gold_labels.c.item_id == items.c.id)
    .where(items.c.project_id == bindparam("project"), items.c.is_gold.is_(True), items.c.id > bindparam("last"))
    .order_by(items.c.id)
    .limit(bindparam("size"))
)
"""A page of the project's gold items after item id ``last``, with their true label."""
PREDICTIONS_PAGE = (
    select(predictions.c.id, predictions.c.item_id, predictions.c.labels, predictions.c.probs)
    .where(predictions.c.model_version_id == bindparam("version"), predictions.c.id > bindparam("last"))
    .order_by(predictions.c.id)
    .limit(bindparam("size"))
)
"""A page of a model version's predictions after prediction id ``last``."""
_review = answers.alias("review")
CONFLICT_ROWS = (
    select(predictions.c.item_id, predictions.c.labels, predictions.c.probs, models.c.temperature)
    .join(models, models.c.id == predictions.c.model_version_id)
    .join(_review, _review.c.item_id == predictions.c.item_id)
    .where(_review.c.project_id == bindparam("project"), _review.c.is_review.is_(True),
           models.c.state == "active", models.c.created_at < _review.c.created_at)
    .order_by(predictions.c.item_id, predictions.c.model_version_id.desc())
)  # fmt: skip
"""The rows that versions in use wrote for the items a reviewer settled, before the review (so
never trained on its label), each item's newest first, with the version's temperature."""
NAMES_PAGE = (
    select(items.c.id, items.c.external_id)
    .where(items.c.project_id == bindparam("project"), items.c.id > bindparam("last"))
    .order_by(items.c.id)
    .limit(bindparam("size"))
)
"""A page of the project's items after item id ``last``: id and external id."""
GOLD_SINCE = select(annotators.c.id, annotators.c.since_right, annotators.c.since_total).where(
    annotators.c.project_id == bindparam("project")
)
"""Each annotator of the project with the gold evidence counted since the last refit."""

# --- what it writes ---------------------------------------------------------------------------------
REFIT_SKILL = (
    update(annotators)
    .where(annotators.c.id == bindparam("annotator"))
    .values(
        model_right=bindparam("model_right"),
        model_total=bindparam("model_total"),
        since_right=annotators.c.since_right - bindparam("right_before"),
        since_total=annotators.c.since_total - bindparam("total_before"),
        branch_skills=bindparam("branch_skills"),
    )
)
"""An annotator's skill as the refit found it; the gold evidence it read (``*_before``) is no longer
"since the last refit"."""
SET_TEMPERATURE = (
    update(models).where(models.c.id == bindparam("version_id")).values(temperature=bindparam("temperature"))
)
"""A model version's temperature as the refit found it."""
ITEMS_PAGE = (
    select(items.c.id, items.c.status, items.c.updated_at)
    .where(items.c.project_id == bindparam("project"), items.c.is_gold.is_(False), items.c.id > bindparam("last"))
    .order_by(items.c.id)
    .limit(bindparam("size"))
)
"""A page of the project's items but gold after item id ``last``, with their status and when their
decision was last written (an index range)."""
ITEM_VERSIONS = (
    select(items.c.id, items.c.status, items.c.updated_at)
    .where(items.c.id.in_(bindparam("items", expanding=True)))
    .with_for_update()
)
"""The status and last decision time of ``items``, locked until the transaction ends (PostgreSQL):
what a decision taken outside the transaction checks before it is written."""
