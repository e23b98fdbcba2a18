"""The statements of the project's own model: training sets, versions, artifacts,
the open items to predict, model labels and audits. Core statements with bound parameters,
each of a fixed size (pages of ``limit`` items)."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, case, delete, exists, func, insert, or_, select, update

from crowdloop.store.schema import (
    Answer,
    Audit,
    GoldLabel,
    Item,
    ModelArtifact,
    ModelVersion,
    Prediction,
    Project,
)

items, versions, predictions, projects = Item.__table__, ModelVersion.__table__, Prediction.__table__, Project.__table__
artifacts, audits, gold_labels = ModelArtifact.__table__, Audit.__table__, GoldLabel.__table__

ANSWERS_SINCE = select(func.count(), func.max(Answer.__table__.c.id)).where(
    Answer.__table__.c.project_id == bindparam("project"), Answer.__table__.c.id > bindparam("last")
)
"""The answers of a project after answer id ``last``, and the newest id (a range of an index)."""

# --- training sets ------------------------------------------------------------------------------
_human_label = and_(
    items.c.project_id == bindparam("project"),
    or_(items.c.is_gold.is_(True), items.c.status.in_(("accepted", "reviewed"))),
    items.c.model_version_id.is_(None),
)
SETTLED_LABELS = select(func.count()).where(_human_label)
"""Items whose label people settled (gold, accepted by the crowd, reviewed): the retraining clock."""
TRAINING_PAGE = (
    select(items.c.id, items.c.payload, items.c.is_gold, items.c.label, gold_labels.c.label.label("truth"))
    .outerjoin(gold_labels, gold_labels.c.item_id == items.c.id)
    .where(_human_label, items.c.id > bindparam("last"))
    .order_by(items.c.id)
    .limit(bindparam("limit"))
)

# --- versions and artifacts ---------------------------------------------------------------------
SERVICE_VERSIONS = (
    select(
        versions.c.id,
        versions.c.version,
        versions.c.state,
        versions.c.training_size,
        versions.c.training_hash,
        versions.c.metrics,
        versions.c.confirmed_at,
        versions.c.created_at,
    )
    .where(versions.c.project_id == bindparam("project"), versions.c.name == bindparam("name"))
    .order_by(versions.c.id)
)
VERSION_ID = select(versions.c.id).where(
    versions.c.project_id == bindparam("project"),
    versions.c.name == bindparam("name"),
    versions.c.version == bindparam("version"),
)
"""The id of a project's model version by name and version."""
NEW_VERSION = insert(versions).returning(versions.c.id)
NEW_ARTIFACT = insert(artifacts)
ARTIFACT = select(artifacts.c.sha256, artifacts.c.data).where(artifacts.c.model_version_id == bindparam("version"))
SET_VERSION_STATE = update(versions).where(versions.c.id == bindparam("version_id")).values(state=bindparam("state"))
COUNT_PREDICTIONS = (
    update(versions)
    .where(versions.c.id == bindparam("version_id"))
    .values(prediction_count=versions.c.prediction_count + bindparam("added"))
)
NEW_PREDICTIONS = insert(predictions)
PREDICTION_IDS = select(predictions.c.item_id, predictions.c.id).where(
    predictions.c.model_version_id == bindparam("version"),
    predictions.c.item_id.in_(bindparam("items", expanding=True)),
)
"""A version's predictions (item id, prediction id) for the items ``items`` it has predicted already."""
GOLD_TOP_LABELS = (
    select(predictions.c.item_id, predictions.c.labels)
    .join(items, items.c.id == predictions.c.item_id)
    .where(predictions.c.model_version_id == bindparam("version"), items.c.is_gold.is_(True))
)
"""A version's predictions (item id, labels, most probable first) for the gold items."""
SET_PREDICTION = (
    update(predictions)
    .where(predictions.c.id == bindparam("prediction"))
    .values(labels=bindparam("labels"), probs=bindparam("probs"))
)
"""A stored prediction's labels and probabilities, replaced."""
OPEN_AMONG = select(items.c.id, items.c.status).where(
    items.c.id.in_(bindparam("items", expanding=True)),
    items.c.is_gold.is_(False),
    items.c.status.in_(("more", "escalated")),
)
"""Of the items ``items``, the open ones (more answers or escalated): those a new prediction may decide."""
OPEN_AMONG_LOCKED = OPEN_AMONG.with_for_update()

_UNTOUCHED = and_(items.c.status == "more", items.c.answer_count == 0, items.c.open_leases == 0)
"""Open, and no person has answered nor holds the item: the model may label it."""
_NEVER_AUDITED = ~exists().where(audits.c.item_id == items.c.id)

# --- open items the version has no opinion on yet ------------------------------------------------
UNPREDICTED = (
    select(items.c.id, items.c.payload)
    .where(
        items.c.project_id == bindparam("project"),
        items.c.is_gold.is_(False),
        items.c.status.in_(("more", "escalated")),
        items.c.id > bindparam("last"),
        ~exists().where(predictions.c.item_id == items.c.id, predictions.c.model_version_id == bindparam("version")),
        _NEVER_AUDITED,
    )
    .order_by(items.c.id)
    .limit(bindparam("limit"))
)

AUTOMATION_POOL = (
    select(items.c.id, items.c.payload)
    .where(
        items.c.project_id == bindparam("project"),
        items.c.is_gold.is_(False),
        _UNTOUCHED,
        items.c.id > bindparam("last"),
        _NEVER_AUDITED,
    )
    .order_by(items.c.id)
    .limit(bindparam("limit"))
)
"""A page of the items a model version could label now (open, untouched, never audited)."""

# --- labels without humans, and their audit -------------------------------------------------------
UNTOUCHED = select(items.c.id).where(items.c.id.in_(bindparam("items", expanding=True)), _UNTOUCHED)
"""Of the given items, those no person has answered nor holds: the model may label them."""
MODEL_LABEL = (
    update(items)
    .where(items.c.id == bindparam("item"))
    .values(
        status="accepted",
        label=bindparam("label"),
        confidence=bindparam("confidence"),
        needed=0,
        priority=0.0,
        model_version_id=bindparam("version"),
        updated_at=bindparam("now"),
    )
)
NEW_AUDITS = insert(audits)
AUDIT_PRIORITY = update(items).where(items.c.id == bindparam("item")).values(priority=bindparam("priority"))
"""An audited item's place in the pool (``consensus.priority.ahead_of_all``)."""
AUDIT_OUTCOMES = (
    select(
        audits.c.model_version_id,
        func.count(),
        func.coalesce(func.sum(case((items.c.label == audits.c.label, 1), else_=0)), 0),
    )
    .join(items, items.c.id == audits.c.item_id)
    .where(audits.c.project_id == bindparam("project"), items.c.status.in_(("accepted", "reviewed")))
    .group_by(audits.c.model_version_id)
)
"""Per model version: audited items people have settled, and those whose label is the model's."""
AUDIT_SIZES = (
    select(audits.c.model_version_id, func.count())
    .where(audits.c.project_id == bindparam("project"))
    .group_by(audits.c.model_version_id)
)
"""Per model version: the items its audit drew, settled or not."""
DROP_PREDICTIONS = delete(predictions).where(
    predictions.c.model_version_id == bindparam("version"),
    predictions.c.item_id.in_(bindparam("items", expanding=True)),
)
"""A version's predictions of items sent to people blind."""
RELEASE_SAMPLE = delete(audits).where(
    audits.c.model_version_id == bindparam("version"),
    audits.c.item_id.in_(select(items.c.id).where(items.c.status.in_(("more", "escalated")))),
)
"""A failed sample's items still open, no longer sampled: they are predicted, voted and served as any."""
CONFIRM_VERSION = update(versions).where(versions.c.id == bindparam("version_id")).values(confirmed_at=bindparam("now"))
CONFIRMABLE = (
    select(items.c.id, predictions.c.labels, predictions.c.probs)
    .join(predictions, predictions.c.item_id == items.c.id)
    .where(
        predictions.c.model_version_id == bindparam("version"),
        _UNTOUCHED,
        items.c.id > bindparam("last"),
        _NEVER_AUDITED,
    )
    .order_by(items.c.id)
    .limit(bindparam("limit"))
)
"""A page of the untouched items that hold a version's prediction: those it may label once confirmed."""
AUDIT_LABEL = select(audits.c.item_id, audits.c.label).where(audits.c.item_id == bindparam("item"))
AUDIT_LABELS = select(audits.c.item_id, audits.c.label).where(audits.c.item_id.in_(bindparam("items", expanding=True)))
"""The model's label on audited items (one item: a statement of fixed size, for the direct path)."""
MODEL_LABELLED = (
    select(items.c.model_version_id, func.count())
    .where(items.c.project_id == bindparam("project"), items.c.model_version_id.is_not(None))
    .group_by(items.c.model_version_id)
)
STOP_AUTOMATION = (
    update(projects).where(projects.c.id == bindparam("project")).values(automation_stopped=bindparam("version"))
)
REOPEN_MODEL_LABELS = (
    update(items)
    .where(items.c.project_id == bindparam("project"), items.c.model_version_id == bindparam("version"))
    .values(status="more", label=None, confidence=None, needed=1, model_version_id=None, updated_at=bindparam("now"))
)
"""The labels a version gave without humans, taken back: the items are open again."""
PROJECT_FIELDS = select(projects.c.id, projects.c.text_fields).order_by(projects.c.id)
"""Every project and the payload fields its model reads (``[]``: it has none)."""
