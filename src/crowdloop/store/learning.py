"""The statements of the project's learning loop off the request path: the suggestions' effect on
answers, the pool's priorities, label errors the model finds, the learning curve of model versions.

Core statements with bound parameters, as in ``store.queries``; none runs inside an annotator's
request except where ``store.queries`` says so.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update

from crowdloop.store.queries import answers, events, gold_labels, items, models, predictions

_suggested = (
    answers.c.label,
    answers.c.suggestions,
    answers.c.suggestions_shown,
    answers.c.duration_ms,
)
GOLD_SUGGESTED = (
    select(*_suggested, gold_labels.c.label.label("truth"))
    .join(gold_labels, gold_labels.c.item_id == answers.c.item_id)
    .where(
        answers.c.project_id == bindparam("project"),
        answers.c.is_gold.is_(True),
        answers.c.is_review.is_(False),
        answers.c.suggestions_shown.is_not(None),
    )
    .order_by(answers.c.id.desc())
    .limit(bindparam("size"))
)
"""The newest answers to gold items that came with suggestions (shown or hidden), with the true label."""
REVIEWED_SUGGESTED = (
    select(*_suggested, items.c.label.label("truth"))
    .select_from(items.join(answers, answers.c.item_id == items.c.id))
    .where(
        items.c.project_id == bindparam("project"),
        items.c.status == "reviewed",
        answers.c.is_review.is_(False),
        answers.c.suggestions_shown.is_not(None),
    )
    .order_by(answers.c.id.desc())
    .limit(bindparam("size"))
)
"""The newest crowd answers that came with suggestions on items a reviewer settled, with the
reviewer's label."""

OPEN_ITEMS = (
    select(items.c.id, items.c.payload, items.c.label, items.c.answer_count, items.c.learn_weight)
    .where(
        items.c.project_id == bindparam("project"),
        items.c.is_gold.is_(False),
        items.c.id > bindparam("last"),
        items.c.status == "more",
    )
    .order_by(items.c.id)
    .limit(bindparam("size"))
)
"""A page of the items that still need answers (a range of the ``ix_items_page`` index)."""
LABELLED_TEXTS = (
    select(items.c.payload)
    .where(items.c.project_id == bindparam("project"), items.c.status.in_(("gold", "accepted", "reviewed")))
    .order_by(items.c.id.desc())
    .limit(bindparam("size"))
)
"""The payloads of the newest labelled items (gold or settled): what the spread keeps away from."""
GOLD_PREDICTED = (
    select(predictions.c.labels, predictions.c.probs, gold_labels.c.label.label("truth"))
    .join(gold_labels, gold_labels.c.item_id == predictions.c.item_id)
    .where(predictions.c.model_version_id == bindparam("model"))
)
"""A model version's predictions for gold items, with the true label."""
REWEIGH = (
    update(items)
    .where(items.c.id == bindparam("item"), items.c.status == "more")
    .values(
        priority=items.c.priority * bindparam("weight") / items.c.learn_weight,
        learn_weight=bindparam("weight"),
    )
)
"""A new ``learn_weight`` for an open item, its priority rescaled by it (the decision's own
priority, ``priority / learn_weight``, is kept: no posterior is recomputed)."""

ACCEPTED_ITEMS = (
    select(items.c.id, items.c.external_id, items.c.label)
    .where(
        items.c.project_id == bindparam("project"),
        items.c.is_gold.is_(False),
        items.c.id > bindparam("last"),
        items.c.status == "accepted",
        items.c.label.is_not(None),
    )
    .order_by(items.c.id)
    .limit(bindparam("size"))
)
"""A page of the accepted items and their labels."""
DISPUTE = (
    update(items)
    .where(items.c.id == bindparam("item"), items.c.status == "accepted", items.c.label == bindparam("given"))
    .values(
        status="disputed",
        disputed_from=bindparam("given"),
        disputed_label=bindparam("model_label"),
        updated_at=bindparam("now"),
    )
)
"""An accepted item to the review queue, if still accepted with the label the check read."""
DISPUTE_COUNTS = (
    select(items.c.status, (items.c.label == items.c.disputed_from).label("kept"), func.count())
    .where(items.c.project_id == bindparam("project"), items.c.disputed_from.is_not(None))
    .group_by(items.c.status, items.c.label == items.c.disputed_from)
)
"""The disputed items by status, and whether their label is still the one disputed."""
MODEL_NAME = select(models.c.name, models.c.version).where(models.c.id == bindparam("model"))

MODEL_VERSIONS = (
    select(models.c.id, models.c.project_id, models.c.name, models.c.version, models.c.prediction_count,
           models.c.temperature, models.c.created_at, models.c.training_size)
    .where(models.c.project_id == bindparam("project"))
    .order_by(models.c.id)
)  # fmt: skip
"""The project's model versions, oldest first, with their predictions counted, temperature and
training-set size (None: not trained by the service)."""
SETTLED_BY = select(func.count(func.distinct(events.c.item_id))).where(
    events.c.project_id == bindparam("project"),
    events.c.kind.in_(("accepted", "reviewed")),
    events.c.created_at <= bindparam("at"),
)
"""Items settled (accepted or reviewed) by a time: the labels a model version could train on."""
GOLD_COUNT = select(func.count()).where(items.c.project_id == bindparam("project"), items.c.is_gold.is_(True))
ANSWER_TIMES = (
    select(answers.c.duration_ms)
    .where(answers.c.project_id == bindparam("project"), answers.c.duration_ms.is_not(None))
    .order_by(answers.c.id.desc())
    .limit(bindparam("size"))
)
"""The times of the newest timed answers."""
