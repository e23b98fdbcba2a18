"""The statements of the project's learning loop off the request path: the suggestions' effect on
answers, the pool's priorities, label errors the model finds, the learning curve of model versions.

Core statements with bound parameters, as in ``store.queries``; none runs inside an annotator's
request except where ``store.queries`` says so.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from crowdloop.store.queries import answers, gold_labels, items

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
)
"""Answers to gold items that came with suggestions (shown or hidden), with the true label."""
REVIEWED_SUGGESTED = (
    select(*_suggested, items.c.label.label("truth"))
    .select_from(items.join(answers, answers.c.item_id == items.c.id))
    .where(
        items.c.project_id == bindparam("project"),
        items.c.status == "reviewed",
        answers.c.is_review.is_(False),
        answers.c.suggestions_shown.is_not(None),
    )
)
"""Crowd answers that came with suggestions on items a reviewer settled, with the reviewer's label."""
