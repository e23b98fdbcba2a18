"""The statements of the labeling loop's hot path (next task, submit), built once.

Core statements with bound parameters: compiled once per process and cached, so a request costs
the database's work and little of the ORM's. Each has a fixed size whatever the project's size.
``*_LOCKED`` variants take PostgreSQL row locks (``FOR UPDATE``, or ``SKIP LOCKED`` when another
transaction may take a different row instead).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Update, and_, bindparam, exists, func, insert, literal_column, or_, select, update

from crowdloop.store.schema import (
    Annotator,
    Answer,
    ApiToken,
    Audit,
    Event,
    GoldLabel,
    Item,
    JobClaim,
    Lease,
    ModelVersion,
    Prediction,
    Project,
)

items, leases, answers = Item.__table__, Lease.__table__, Answer.__table__
annotators, models, predictions = Annotator.__table__, ModelVersion.__table__, Prediction.__table__
gold_labels, events, projects = GoldLabel.__table__, Event.__table__, Project.__table__
api_tokens, audits = ApiToken.__table__, Audit.__table__
job_claims = JobClaim.__table__

PROJECT_HEAVY_COLUMNS = ("labels", "policy", "rules", "calibrator")
PROJECT = select(*(c for c in projects.c if c.name not in PROJECT_HEAVY_COLUMNS)).where(
    projects.c.id == bindparam("project")
)
PROJECT_HEAVY = select(*(projects.c[n] for n in PROJECT_HEAVY_COLUMNS)).where(projects.c.id == bindparam("project"))

SKILL_COLUMNS = (
    "gold_right",
    "gold_total",
    "since_right",
    "since_total",
    "model_right",
    "model_total",
    "timed",
    "fast",
)
ANNOTATOR_COLUMNS = (
    "id", "project_id", "name", "role", "kind", "status", "answer_count", "branch_skills", *SKILL_COLUMNS
)  # fmt: skip

RECLAIM_BATCH = 200  # expired leases returned to the pool per request
GOLD_CANDIDATES = 16  # unseen gold items drawn from
POOL_CANDIDATES = 32

_TOKEN_HOLDER = select(
    api_tokens.c.id.label("token_id"), api_tokens.c.digest, api_tokens.c.revoked,
    *(annotators.c[c] for c in ANNOTATOR_COLUMNS),
).join(annotators, annotators.c.id == api_tokens.c.annotator_id)  # fmt: skip
TOKEN = _TOKEN_HOLDER.where(api_tokens.c.digest == bindparam("digest"))
TOKEN_BY_ID = _TOKEN_HOLDER.where(api_tokens.c.id == bindparam("token"))
ANNOTATOR = select(*(annotators.c[c] for c in ANNOTATOR_COLUMNS)).where(annotators.c.id == bindparam("annotator"))

EXPIRED = (
    select(leases.c.id, leases.c.item_id)
    .where(
        leases.c.state == "open", leases.c.expires_at <= bindparam("now"), leases.c.project_id == bindparam("project")
    )
    .order_by(leases.c.item_id)
    .limit(RECLAIM_BATCH)
)
EXPIRED_LOCKED = EXPIRED.with_for_update(skip_locked=True)
EXPIRE_LEASE = update(leases).where(leases.c.id == bindparam("lease"), leases.c.state == "open").values(state="expired")
RELEASE_ITEM = (
    update(items)
    .where(items.c.id == bindparam("item"), items.c.open_leases > 0)
    .values(open_leases=items.c.open_leases - 1)
)


def _probed(*conditions: Any) -> Any:
    """``EXISTS`` over ``conditions`` asked once per candidate item, as one probe of an index on
    (item, annotator). ``OFFSET 0`` keeps PostgreSQL from turning it into a join, whose plan it would
    choose by the statistics of the moment: a plan made while the tables were small (a fresh project,
    cached for the connection's life) read all of the annotator's leases and answers again for every
    candidate, a cost that grew with every answer they gave."""
    return exists(select(literal_column("1")).where(*conditions).offset(0))


_unseen = and_(
    ~_probed(
        leases.c.item_id == items.c.id, leases.c.annotator_id == bindparam("annotator"), leases.c.state != "expired"
    ),
    ~_probed(answers.c.item_id == items.c.id, answers.c.annotator_id == bindparam("annotator")),
)
GOLD_POOL = (
    select(items.c.id)
    .where(items.c.project_id == bindparam("project"), items.c.is_gold.is_(True), _unseen)
    .order_by(items.c.answer_count, items.c.id)
    .limit(GOLD_CANDIDATES)
)
POOL = (
    select(items.c.id, items.c.priority, items.c.branch)
    .where(
        items.c.project_id == bindparam("project"),
        items.c.is_gold.is_(False),
        items.c.status == "more",
        items.c.open_leases < items.c.needed,
        _unseen,
    )
    .order_by(items.c.priority.desc(), items.c.id)
)
POOL_ROUTED = POOL.limit(POOL_CANDIDATES)  # taxonomy projects re-rank these by the annotator's branch skill
POOL = POOL.limit(4)
POOL_LOCKED = POOL.with_for_update(skip_locked=True, of=items)
POOL_ROUTED_LOCKED = POOL_ROUTED.with_for_update(skip_locked=True, of=items)
TAKE = (
    update(items)
    .where(items.c.id == bindparam("item"), items.c.status == "more", items.c.open_leases < items.c.needed)
    .values(open_leases=items.c.open_leases + 1)
)
TAKE_GOLD = update(items).where(items.c.id == bindparam("item")).values(open_leases=items.c.open_leases + 1)

_in_use = models.c.state == "active"  # a pending or rejected version neither votes nor suggests
NEWEST_MODEL = select(func.max(models.c.id)).where(models.c.project_id == bindparam("project"), _in_use)
VOTING_MODELS = select(models.c.id, models.c.temperature).where(
    models.c.id.in_(
        select(func.max(models.c.id))
        .where(models.c.project_id == bindparam("project"), _in_use)
        .group_by(models.c.name)
        .scalar_subquery()
    )
)
PREDICTION = select(predictions.c.labels, predictions.c.probs).where(
    predictions.c.item_id == bindparam("item"), predictions.c.model_version_id == bindparam("model")
)
ITEM_PREDICTIONS = select(
    predictions.c.item_id, predictions.c.model_version_id, predictions.c.labels, predictions.c.probs
).where(
    predictions.c.item_id.in_(bindparam("items", expanding=True)),
    predictions.c.model_version_id.in_(bindparam("models", expanding=True)),
)

NEW_LEASE = insert(leases)
TASK_ITEM = select(items.c.external_id, items.c.payload).where(items.c.id == bindparam("item"))

LEASE = select(
    leases.c.id, leases.c.project_id, leases.c.item_id, leases.c.annotator_id, leases.c.state, leases.c.suggestions
).where(leases.c.id == bindparam("lease"))
LEASE_LOCKED = LEASE.with_for_update()
ITEM = select(items.c.id, items.c.external_id, items.c.is_gold, items.c.status).where(items.c.id == bindparam("item"))
ITEM_LOCKED = ITEM.with_for_update()
CLOSE_LEASE = (
    update(leases).where(leases.c.id == bindparam("lease"), leases.c.state == "open").values(state=bindparam("state"))
)
NEW_ANSWER = insert(answers).returning(answers.c.id)
COUNT_ANSWER = (
    update(items)
    .where(items.c.id == bindparam("item"))
    .values(answer_count=items.c.answer_count + 1, open_leases=items.c.open_leases - 1)
)
GOLD_LABEL = select(gold_labels.c.label).where(gold_labels.c.item_id == bindparam("item"))
RECORD = (
    update(annotators)
    .where(annotators.c.id == bindparam("annotator"))
    .values(
        answer_count=annotators.c.answer_count + 1,
        gold_right=annotators.c.gold_right + bindparam("right"),
        gold_total=annotators.c.gold_total + bindparam("gold"),
        since_right=annotators.c.since_right + bindparam("right"),
        since_total=annotators.c.since_total + bindparam("gold"),
        timed=annotators.c.timed + bindparam("timed"),
        fast=annotators.c.fast + bindparam("fast"),
    )
    .returning(*(annotators.c[c] for c in ANNOTATOR_COLUMNS))
)

_counted = annotators.c.status != "banned"  # a ban is the project's verdict: their answers no longer count
ITEM_ANSWERS = (
    select(answers.c.item_id, answers.c.label, *(annotators.c[c] for c in SKILL_COLUMNS))
    .join(annotators, annotators.c.id == answers.c.annotator_id)
    .where(answers.c.item_id.in_(bindparam("items", expanding=True)), answers.c.is_review.is_(False), _counted)
)
"""The answers that count in the decision of ``items``: not reviews, not of a banned annotator."""
DECISION = (
    update(items)
    .where(items.c.id == bindparam("item"))
    .values(
        status=bindparam("status"),
        label=bindparam("label"),
        confidence=bindparam("confidence"),
        needed=bindparam("needed"),
        priority=bindparam("priority") * items.c.learn_weight,  # weighted off the request path
        branch=bindparam("branch"),
        updated_at=bindparam("now"),
    )
)
REDECISION = DECISION.where(
    or_(
        items.c.status.is_distinct_from(bindparam("status")),
        items.c.label.is_distinct_from(bindparam("label")),
        items.c.confidence.is_distinct_from(bindparam("confidence")),
        items.c.needed.is_distinct_from(bindparam("needed")),
        items.c.priority.is_distinct_from(bindparam("priority") * items.c.learn_weight),
        items.c.branch.is_distinct_from(bindparam("branch")),
    )
)
"""``DECISION`` of an item decided again with nothing new (a refit, an import): written only where
the decision changed. Rewriting every open item after each refit made a new row version of each
(PostgreSQL keeps the old ones until vacuum): five times the items table in dead rows within
half a minute at 150 answers/s, which every request then read through."""
NEW_EVENTS = insert(events)
SETTLE = (
    update(items)
    .where(items.c.id == bindparam("item"))
    .values(status="reviewed", label=bindparam("label"), confidence=bindparam("confidence"), needed=0, priority=0.0,
            updated_at=bindparam("now"))
)  # fmt: skip
"""A reviewer's final label for an item (``ItemDecisions.settle``)."""
ANSWER_BY_LEASE = select(answers.c.id, answers.c.item_id, answers.c.label, answers.c.lease_id).where(
    answers.c.annotator_id == bindparam("annotator"), answers.c.lease_id == bindparam("lease")
)
ANSWER_BY_KEY = select(answers.c.id, answers.c.item_id, answers.c.label, answers.c.lease_id).where(
    answers.c.annotator_id == bindparam("annotator"), answers.c.idempotency_key == bindparam("key")
)

# --- the hot path in as few statements as the invariants allow --------------------------------
# Columns of several tables in one row carry a prefix (``a_`` annotator, ``p_`` project, ``i_`` item);
# ``crowdloop.service.rows.Prefixed`` reads them back by their plain names.
PROJECT_LIGHT_COLUMNS = tuple(c.name for c in projects.c if c.name not in PROJECT_HEAVY_COLUMNS)
_annotator_columns = tuple(annotators.c[c].label(f"a_{c}") for c in ANNOTATOR_COLUMNS)
_project_columns = tuple(projects.c[c].label(f"p_{c}") for c in PROJECT_LIGHT_COLUMNS)
_newest_model = select(func.max(models.c.id)).where(models.c.project_id == projects.c.id, _in_use).scalar_subquery()
_expired = leases.alias("expired")
_any_expired = exists().where(
    _expired.c.project_id == projects.c.id, _expired.c.state == "open", _expired.c.expires_at <= bindparam("now")
)

WORKER = (
    select(
        *_annotator_columns,
        *_project_columns,
        leases.c.id.label("held_id"),
        leases.c.item_id.label("held_item"),
        leases.c.suggestions.label("held_suggestions"),
        leases.c.suggestions_shown.label("held_shown"),
        leases.c.expires_at.label("held_expires"),
        exists()
        .where(answers.c.item_id == leases.c.item_id, answers.c.annotator_id == annotators.c.id)
        .label("held_answered"),
        _newest_model.label("newest_model"),
        _any_expired.label("any_expired"),
    )
    .select_from(
        annotators.join(projects, projects.c.id == annotators.c.project_id).outerjoin(
            leases, and_(leases.c.annotator_id == annotators.c.id, leases.c.state == "open")
        )
    )
    .where(annotators.c.id == bindparam("annotator"))
    .limit(1)
)
"""next_task's first read: the annotator, the project's light columns, the open lease they hold
(at most one: ``ux_leases_one_open``) with its expiry and whether they answered its item
meanwhile (an import, a review), the newest model version (suggestions) and whether any of the
project's leases expired."""


# the leased item's id, named with its table: SQLAlchemy writes SQLite's RETURNING columns without
# one, down into subqueries, where a bare ``id`` would be the prediction's own
_leased_id = literal_column(f"{items.name}.{items.c.id.name}", items.c.id.type)


def _suggested(column: Any) -> Any:
    """The leased item's prediction ``column`` by model version ``model`` (None: no such prediction)."""
    return (
        select(column)
        .where(predictions.c.item_id == _leased_id, predictions.c.model_version_id == bindparam("model"))
        .scalar_subquery()
    )


_task_columns = (
    items.c.id, items.c.external_id, items.c.payload,
    _suggested(predictions.c.labels).label("s_labels"), _suggested(predictions.c.probs).label("s_probs"),
)  # fmt: skip
"""A leased item's task: its ids and payload, and the predictions of model version ``model`` for it
(the suggestions, in the lease's own statement)."""
TAKE = TAKE.returning(*_task_columns)
TAKE_GOLD = TAKE_GOLD.returning(*_task_columns)
TAKE_GOLD_LOCKED = (
    update(items)
    .where(items.c.id == select(items.c.id).where(items.c.id == bindparam("item"))
           .with_for_update(skip_locked=True).scalar_subquery().correlate(None))
    .values(open_leases=items.c.open_leases + 1)
    .returning(*_task_columns)
)  # fmt: skip
"""``TAKE_GOLD`` that skips the gold item when another transaction holds its row (no row returned)
rather than waiting for it: the pick tries another one."""


def _take_best(best: Select) -> Update:
    return (
        update(items)
        .where(items.c.id == best.scalar_subquery().correlate(None), items.c.status == "more",
               items.c.open_leases < items.c.needed)
        .values(open_leases=items.c.open_leases + 1)
        .returning(*_task_columns)
    )  # fmt: skip


_best = POOL.with_only_columns(items.c.id).limit(1)
REAL_WORK = _best
"""The pool's best item for the annotator, not leased: whether there is real work for them (gold
is handed out only beside it)."""
TAKE_BEST = _take_best(_best)
"""The pool's best item for the annotator, leased in one statement (``TAKE`` over ``POOL`` when
another transaction took it meanwhile)."""
TAKE_BEST_LOCKED = _take_best(_best.with_for_update(skip_locked=True))

SUBMITTED = (
    select(
        leases.c.id,
        leases.c.project_id,
        leases.c.item_id,
        leases.c.annotator_id,
        leases.c.state,
        leases.c.suggestions,
        leases.c.expires_at,
        exists()
        .where(answers.c.item_id == leases.c.item_id, answers.c.annotator_id == leases.c.annotator_id)
        .label("answered"),
        leases.c.suggestions_shown,
        *_annotator_columns,
        *_project_columns,
        *(items.c[c].label(f"i_{c}") for c in ("id", "external_id", "is_gold", "status")),
        audits.c.label.label("i_audit_label"),
        gold_labels.c.label.label("truth"),
        exists().where(models.c.project_id == leases.c.project_id).label("has_models"),
    )
    .select_from(
        leases.join(annotators, annotators.c.id == leases.c.annotator_id)
        .join(projects, projects.c.id == leases.c.project_id)
        .join(items, items.c.id == leases.c.item_id)
        .outerjoin(gold_labels, gold_labels.c.item_id == leases.c.item_id)
        .outerjoin(audits, audits.c.item_id == leases.c.item_id)
    )
    .where(leases.c.id == bindparam("lease"))
)
"""submit's one read: the lease (its expiry, whether its annotator answered the item meanwhile) with
its annotator, project, item (and the model's label, when the item is of the model's audit) and the
item's true label (gold)."""
SUBMITTED_LOCKED = SUBMITTED.with_for_update(of=[leases, items])

DECISION_ANSWERED = DECISION.values(answer_count=items.c.answer_count + 1, open_leases=items.c.open_leases - 1)
"""``DECISION`` of the item an answer just came in for, counting the answer (one statement)."""

# --- the one-item versions the direct path runs (fixed size: no expanding IN lists) -----------
ONE_ITEM_ANSWERS = (
    select(answers.c.item_id, answers.c.label, *(annotators.c[c] for c in SKILL_COLUMNS))
    .join(annotators, annotators.c.id == answers.c.annotator_id)
    .where(answers.c.item_id == bindparam("item"), answers.c.is_review.is_(False), _counted)
)
_voting_ids = (
    select(func.max(models.c.id)).where(models.c.project_id == bindparam("project"), _in_use).group_by(models.c.name)
).scalar_subquery()
ONE_ITEM_VOTES = (
    select(predictions.c.item_id, predictions.c.model_version_id, predictions.c.labels, predictions.c.probs,
           models.c.temperature)
    .join(models, models.c.id == predictions.c.model_version_id)
    .where(predictions.c.item_id == bindparam("item"), predictions.c.model_version_id.in_(_voting_ids))
)  # fmt: skip
"""The predictions of the project's voting model versions (the newest of each model) for one item,
with each version's temperature (one statement: ``VOTING_MODELS`` is not read first)."""

SET_STATUS = update(annotators).where(annotators.c.id == bindparam("annotator")).values(status=bindparam("status"))
SET_ROLE = update(annotators).where(annotators.c.id == bindparam("annotator")).values(role=bindparam("role"))
DECIDED_BY_CROWD_OF = (
    select(items.c.id, items.c.status)
    .join(answers, answers.c.item_id == items.c.id)
    .where(answers.c.annotator_id == bindparam("annotator"), answers.c.is_review.is_(False),
           items.c.is_gold.is_(False), items.c.model_version_id.is_(None),
           items.c.status != "reviewed", items.c.status != "disputed")  # a reviewer's to settle
    .distinct()
    .order_by(items.c.id)
)  # fmt: skip
"""The items an annotator answered whose state the crowd's answers decide (not gold, not settled by
a reviewer or the model): decided again when the annotator is banned."""
OPEN_LEASES_OF = select(leases.c.id, leases.c.item_id).where(
    leases.c.annotator_id == bindparam("annotator"), leases.c.state == "open"
)

# --- jobs one process at a time runs on a project (``service.jobs.Claim``) ----------------------
_claim = and_(job_claims.c.project_id == bindparam("project"), job_claims.c.job == bindparam("kind"))
TAKE_LAPSED_CLAIM = (
    update(job_claims)
    .where(_claim, job_claims.c.expires_at <= bindparam("now"))
    .values(holder=bindparam("claimant"), expires_at=bindparam("until"))
)
"""Take over a claim whose holder stopped renewing it (rowcount 1: taken)."""
NEW_CLAIM = insert(job_claims)
RENEW_CLAIM = (
    update(job_claims)
    .where(_claim, job_claims.c.holder == bindparam("claimant"), job_claims.c.expires_at > bindparam("now"))
    .values(expires_at=bindparam("until"))
)
"""Renew a claim while it is still this holder's (rowcount 0: lost; the job must write nothing more)."""
RELEASE_CLAIM = (
    update(job_claims).where(_claim, job_claims.c.holder == bindparam("claimant")).values(expires_at=bindparam("now"))
)
CLAIM_HOLDER = select(job_claims.c.holder, job_claims.c.expires_at).where(_claim)

# --- items and reviews read as ORM rows by the service (off the hot path) ----------------------
ITEM_BY_EXTERNAL_ID = select(Item).where(
    Item.project_id == bindparam("project"), Item.external_id == bindparam("external_id")
)
"""One item of a project (an ORM row) by its external id."""
REVIEW_QUEUE = (
    select(Item)
    .where(Item.project_id == bindparam("project"), Item.is_gold.is_(False), Item.status.in_(("escalated", "disputed")))
    .order_by(Item.updated_at, Item.id)
    .limit(bindparam("size"))
)
"""The project's escalated and disputed items (ORM rows), oldest change first: the reviewers' queue."""
NAMED_ANSWERS = (
    select(Annotator.name, Answer.label)
    .join(Annotator, Annotator.id == Answer.annotator_id)
    .where(Answer.item_id == bindparam("item"))
    .order_by(Answer.id)
)
"""An item's answers, oldest first, with their annotator's name."""
OWN_ANSWER = select(Answer).where(Answer.item_id == bindparam("item"), Answer.annotator_id == bindparam("annotator"))
"""An annotator's answer to an item (an ORM row; at most one)."""
