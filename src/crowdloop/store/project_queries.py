"""The statements of a project's setup off the loop: its settings, items and gold, annotators, their
tokens, and answers imported from elsewhere.

Statements with bound parameters, as in ``store.queries``; lists of ids are expanding parameters
(one statement per batch, whatever its size). Those that read ``Project``, ``Annotator`` or
``Item`` objects are ORM statements: the service changes the objects they give.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, insert, select, update

from crowdloop.store.queries import (
    ANNOTATOR_COLUMNS,
    annotators,
    answers,
    api_tokens,
    gold_labels,
    items,
)
from crowdloop.store.schema import Annotator, Project

# --- projects -----------------------------------------------------------------------------------
PROJECT_ROW = select(Project).where(Project.id == bindparam("project"))
"""A project as an ORM row (its settings to change)."""
PROJECT_BY_NAME = select(Project).where(Project.name == bindparam("name"))
"""A project as an ORM row, by its name."""
ALL_PROJECTS = select(Project).order_by(Project.id)
"""Every project as an ORM row, oldest first."""
STATUS_COUNTS = (
    select(items.c.status, func.count()).where(items.c.project_id == bindparam("project")).group_by(items.c.status)
)
"""The project's items counted by status (on the progress index)."""

# --- items and gold -----------------------------------------------------------------------------
ITEM_IDS = select(items.c.external_id, items.c.id).where(
    items.c.project_id == bindparam("project"), items.c.external_id.in_(bindparam("ids", expanding=True))
)
"""The external id and id of the project's items among the external ids ``ids``."""
NEW_ITEMS = insert(items)
"""New items (one executemany, no RETURNING: row-at-a-time on SQLite)."""
MAKE_GOLD = (
    update(items)
    .where(items.c.id == bindparam("item"))
    .values(is_gold=True, status="gold", label=bindparam("label"), confidence=1.0, needed=0, priority=0.0)
)
"""An item made gold, its label the true one."""
NEW_GOLD = insert(gold_labels)
"""True labels (and hints) of gold items."""
GOLD_OF = select(gold_labels.c.item_id).where(gold_labels.c.item_id.in_(bindparam("items", expanding=True)))
"""Of the items ``items``, those that have a true label."""
SET_GOLD = (
    update(gold_labels)
    .where(gold_labels.c.item_id == bindparam("item"))
    .values(label=bindparam("label"), hint=bindparam("hint"))
)
"""A gold item's true label and hint, changed."""

# --- annotators and their tokens ----------------------------------------------------------------
PROJECT_ANNOTATORS = select(Annotator).where(Annotator.project_id == bindparam("project")).order_by(Annotator.id)
"""The project's annotators as ORM rows, oldest first."""
REVOKE_TOKENS_OF = (
    update(api_tokens)
    .where(api_tokens.c.annotator_id == bindparam("annotator"), api_tokens.c.revoked.is_(False))
    .values(revoked=True)
)
"""Revoke every active token of an annotator (rowcount: how many)."""
REVOKE_TOKEN = (
    update(api_tokens)
    .where(api_tokens.c.digest == bindparam("token_digest"), api_tokens.c.revoked.is_(False))
    .values(revoked=True)
)
"""Revoke the active token of the digest ``token_digest`` (rowcount 0: unknown or revoked already)."""

# --- answers imported from elsewhere ------------------------------------------------------------
IMPORTED_ITEMS = (
    select(items.c.id, items.c.external_id, items.c.is_gold, items.c.status, items.c.label,
           gold_labels.c.label.label("truth"))
    .outerjoin(gold_labels, gold_labels.c.item_id == items.c.id)
    .where(items.c.project_id == bindparam("project"), items.c.external_id.in_(bindparam("ids", expanding=True)))
    .order_by(items.c.id)
)  # fmt: skip
"""The project's items among the external ids ``ids``, with their true label (gold)."""
IMPORTED_ITEMS_LOCKED = IMPORTED_ITEMS.with_for_update(of=items)
ANSWER_PAIRS = select(answers.c.item_id, answers.c.annotator_id).where(
    answers.c.item_id.in_(bindparam("items", expanding=True)),
    answers.c.annotator_id.in_(bindparam("annotators", expanding=True)),
)
"""The (item, annotator) pairs answered already among the items and annotators given."""
NEW_ANSWERS = insert(answers)
"""Answers (one executemany)."""
COUNT_ANSWERS = (
    update(items).where(items.c.id == bindparam("item")).values(answer_count=items.c.answer_count + bindparam("n"))
)
"""Count ``n`` more answers to an item."""
ANNOTATORS_NAMED = select(*(annotators.c[c] for c in ANNOTATOR_COLUMNS)).where(
    annotators.c.project_id == bindparam("project"), annotators.c.name.in_(bindparam("names", expanding=True))
)
"""The project's annotators of the names ``names``."""
NEW_ANNOTATORS = insert(annotators)
"""Annotators (one executemany)."""
ANNOTATORS_BY_ID = (
    select(*(annotators.c[c] for c in ANNOTATOR_COLUMNS))
    .where(annotators.c.id.in_(bindparam("annotators", expanding=True)))
    .order_by(annotators.c.id)
)
"""The annotators of the ids ``annotators``, in id order."""
RECORD_MANY = (
    update(annotators)
    .where(annotators.c.id == bindparam("annotator"))
    .values(
        answer_count=annotators.c.answer_count + bindparam("n"),
        gold_right=annotators.c.gold_right + bindparam("right"),
        gold_total=annotators.c.gold_total + bindparam("gold"),
        since_right=annotators.c.since_right + bindparam("right"),
        since_total=annotators.c.since_total + bindparam("gold"),
    )
)
"""Count ``n`` more answers of an annotator, ``gold`` of them on gold items, ``right`` of those right."""
