"""Projects, their settings, items and gold."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdloop.consensus import ACCEPTED, ConsensusPolicy, SkillRules
from crowdloop.consensus.decider import Opinions
from crowdloop.errors import ConfigError, ConflictError, InputError, NotFoundError
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service import codec
from crowdloop.service.database import Database
from crowdloop.service.intake import ProgressCallback, batched, check_batch, encode_labels, parse_items, soft_columns
from crowdloop.service.item_decisions import ItemDecisions, code_or_none, confidence_or_none, redecide_open
from crowdloop.service.predictions import model_version_id
from crowdloop.service.priorities import PRIORITIZE_IN_CALL, prioritize
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import PAGE, ProjectRow, item_row, item_state, log_event, open_and_all, project_row
from crowdloop.service.stored_text import (
    EXTERNAL_ID_LENGTH,
    HINT_LENGTH,
    NAME_LENGTH,
    check_text,
    checked_name,
    text_problem,
)
from crowdloop.service.tasks import checked_member, hidden_from
from crowdloop.service.types import (
    AnnotatorInfo,
    GoldIn,
    ItemIn,
    ItemState,
    ProjectInfo,
    ProjectUpdate,
)
from crowdloop.store import model_queries as mq
from crowdloop.store import project_queries as pq
from crowdloop.store import queries as q
from crowdloop.store.schema import Project, utcnow

T = TypeVar("T")
REDECIDE_IN_CALL = 10 * PAGE
"""Items (ten pages) up to which ``update_project`` decides a project's open items again itself."""
RESETTLING = ("policy", "rules", "model_votes")
"""The settings that change decisions: the open items are decided again when one changes."""


def settings_columns(
    *,
    policy: ConsensusPolicy | None = None,
    rules: SkillRules | None = None,
    gold_rate: float | None = None,
    lease_seconds: int | None = None,
    model_votes: bool | None = None,
    suggestions: int | None = None,
    reviewers_see_gold: bool | None = None,
    text_fields: list[str] | None = None,
    audit_rate: float | None = None,
    hide_rate: float | None = None,
) -> dict[str, Any]:
    """The stored columns of the settings given (None: not given), each checked (``ConfigError``
    names the first that cannot work)."""
    if policy is not None and not isinstance(policy, ConsensusPolicy):
        raise ConfigError(f"policy must be a ConsensusPolicy, got {type(policy).__name__}")
    if rules is not None and not isinstance(rules, SkillRules):
        raise ConfigError(f"rules must be SkillRules, got {type(rules).__name__}")
    if gold_rate is not None and not (
        isinstance(gold_rate, int | float) and not isinstance(gold_rate, bool) and 0 <= gold_rate <= 1
    ):
        raise ConfigError(f"gold_rate must be in [0, 1], got {gold_rate!r}")
    if lease_seconds is not None and not (
        isinstance(lease_seconds, int) and not isinstance(lease_seconds, bool) and 1 <= lease_seconds <= 7 * 86400
    ):
        raise ConfigError(f"lease_seconds must be an integer in [1, 604800], got {lease_seconds!r}")
    if model_votes is not None and not isinstance(model_votes, bool):
        raise ConfigError(f"model_votes must be True or False, got {model_votes!r}")
    if suggestions is not None and not (
        isinstance(suggestions, int) and not isinstance(suggestions, bool) and 0 <= suggestions <= 20
    ):
        raise ConfigError(f"suggestions must be an integer in [0, 20], got {suggestions!r}")
    if reviewers_see_gold is not None and not isinstance(reviewers_see_gold, bool):
        raise ConfigError(f"reviewers_see_gold must be True or False, got {reviewers_see_gold!r}")
    if text_fields is not None and not (
        isinstance(text_fields, list | tuple)
        and len(text_fields) <= 100
        and all(isinstance(f, str) and f.strip() and len(f) <= NAME_LENGTH for f in text_fields)
    ):
        raise ConfigError(f"text_fields must be a list of payload field names (at most 100), got {text_fields!r}")
    if audit_rate is not None and not (
        isinstance(audit_rate, int | float) and not isinstance(audit_rate, bool) and 0 <= audit_rate <= 1
    ):
        raise ConfigError(f"audit_rate must be in [0, 1], got {audit_rate!r}")
    if hide_rate is not None and not (
        isinstance(hide_rate, int | float) and not isinstance(hide_rate, bool) and 0 <= hide_rate <= 1
    ):
        raise ConfigError(f"hide_rate must be in [0, 1], got {hide_rate!r}")
    columns = {
        "text_fields": None if text_fields is None else list(text_fields),
        "audit_rate": None if audit_rate is None else float(audit_rate),
        "policy": None if policy is None else codec.policy_to_json(policy),
        "rules": None if rules is None else codec.rules_to_json(rules),
        "gold_rate": None if gold_rate is None else float(gold_rate),
        "lease_seconds": lease_seconds,
        "model_votes": model_votes,
        "suggestions": suggestions,
        "reviewers_see_gold": reviewers_see_gold,
        "hide_rate": None if hide_rate is None else float(hide_rate),
    }
    return {name: value for name, value in columns.items() if value is not None}


class Projects:
    """Projects, their settings, items and gold."""

    def __init__(self, db: Database, config: ProjectConfig, decisions: ItemDecisions) -> None:
        self.db, self.config, self.decisions = db, config, decisions

    def _info(self, project: ProjectRow | Project) -> ProjectInfo:
        return ProjectInfo(
            id=project.id,
            name=project.name,
            labels=self.config.labels(project),
            policy=self.config.policy(project),
            rules=self.config.rules(project),
            gold_rate=project.gold_rate,
            lease_seconds=project.lease_seconds,
            model_votes=project.model_votes,
            suggestions=project.suggestions,
            created_at=project.created_at,
            reviewers_see_gold=project.reviewers_see_gold,
            text_fields=project.text_fields,
            audit_rate=project.audit_rate,
            hide_rate=project.hide_rate,
        )

    def create_project(
        self,
        name: str,
        labels: LabelSpace | Taxonomy,
        policy: ConsensusPolicy | None = None,
        *,
        rules: SkillRules | None = None,
        gold_rate: float = 0.1,
        lease_seconds: int = 600,
        model_votes: bool = True,
        suggestions: int = 3,
        reviewers_see_gold: bool = False,
        text_fields: list[str] | None = None,
        audit_rate: float = 0.05,
        hide_rate: float = 0.1,
    ) -> ProjectInfo:
        """A new project. ``gold_rate``: share of tasks that are gold items; ``lease_seconds``: how
        long an annotator holds a task; ``model_votes``: the latest model version's predictions
        vote in the consensus (else they are only suggestions); ``suggestions``: top-k pre-labels
        shown with a task (0: none); ``reviewers_see_gold``: reviewers may read gold items and
        every item's state (else only the escalated and reviewed items they review);
        ``text_fields``: the payload fields the project's own model reads (None: every string
        field; ``[]``: no model, ``service.training``); ``audit_rate``: share of the items the model
        is sure of that still go to people, and the least of its confirming sample (0: neither,
        ``service.automation``); ``hide_rate``: share of tasks
        whose suggestions are hidden, so that their anchoring is measured (``progress``). Raises
        ``ConflictError`` for a taken name."""
        name = checked_name(name, "project")
        if not isinstance(labels, LabelSpace):
            raise ConfigError("labels must be a LabelSpace or a Taxonomy")
        columns = settings_columns(
            policy=policy or ConsensusPolicy(),
            rules=rules or SkillRules(),
            gold_rate=gold_rate,
            lease_seconds=lease_seconds,
            model_votes=model_votes,
            suggestions=suggestions,
            reviewers_see_gold=reviewers_see_gold,
            text_fields=text_fields,
            audit_rate=audit_rate,
            hide_rate=hide_rate,
        )
        row = Project(
            name=name,
            is_taxonomy=isinstance(labels, Taxonomy),
            labels=codec.labels_to_json(labels),
            settings_version=0,
            created_at=utcnow(),
            **columns,
        )

        def work(session: Session) -> ProjectInfo:
            session.add(row)
            session.flush()
            self.config.remember_labels(row.id, labels)
            return self._info(row)

        try:
            return self.db.run(work)
        except IntegrityError:
            raise ConflictError(f"a project named {name!r} exists already") from None

    def update_project(
        self,
        project_id: int,
        *,
        policy: ConsensusPolicy | Mapping[str, Any] | None = None,
        rules: SkillRules | Mapping[str, Any] | None = None,
        gold_rate: float | None = None,
        lease_seconds: int | None = None,
        model_votes: bool | None = None,
        suggestions: int | None = None,
        reviewers_see_gold: bool | None = None,
        hide_rate: float | None = None,
        name: str | None = None,
        labels: LabelSpace | None = None,
        text_fields: list[str] | None = None,
        audit_rate: float | None = None,
    ) -> ProjectUpdate:
        """Change a project's settings (the owner's or admin's decision), checked as in
        ``create_project``; None leaves a setting as it is. ``policy`` and ``rules`` are a whole
        ``ConsensusPolicy``/``SkillRules``, or a mapping of the fields to change (``{"target":
        0.99}``; ``prices`` may change in part), applied to the stored one in the same transaction,
        so that two owners changing different fields lose neither change.

        Every process sees the change in its next call (``settings_version``); the event log gets a
        ``settings`` event with the old and new values. After a change of policy, rules or
        ``model_votes`` the open items (``more``, ``escalated``) are decided again: an item may
        now need more or fewer answers, or be accepted; an escalated item under a larger
        ``max_overlap`` asks for answers again. Settled items stay as they are: an item accepted
        under a lower target stays accepted when the target is raised. A project of at most
        ``REDECIDE_IN_CALL`` items is re-decided in this call, page by page; a larger one by the
        next refit (``left_to_refit`` says how many items wait). The label space never changes
        (its codes are in every stored answer): ``labels`` other than the project's raise
        ``ConfigError``. ``ConflictError`` for a name another project has."""
        if name is not None:
            name = checked_name(name, "project")
        if labels is not None and labels != self.get_project(project_id).labels:
            raise ConfigError(
                f"the label space of project {project_id} cannot change (its codes are in every stored "
                "answer): create a new project for other labels"
            )
        given = {"gold_rate": gold_rate, "lease_seconds": lease_seconds, "model_votes": model_votes,
                 "reviewers_see_gold": reviewers_see_gold, "text_fields": text_fields,
                 "audit_rate": audit_rate, "hide_rate": hide_rate}  # fmt: skip
        settings_columns(**given, suggestions=suggestions)  # checked before any transaction

        def work(session: Session) -> tuple[ProjectInfo, dict[str, dict[str, Any]]]:
            project_row(session, project_id)
            row = session.scalars(self.db.locked(pq.PROJECT_ROW), {"project": project_id}).one()
            new = settings_columns(
                policy=self._new_settings(policy, codec.policy_from_json(row.policy), "policy"),
                rules=self._new_settings(rules, codec.rules_from_json(row.rules), "rules"),
                **given,
                suggestions=suggestions,
            )
            if name is not None:
                new["name"] = name
            changes = {k: {"from": getattr(row, k), "to": v} for k, v in new.items() if getattr(row, k) != v}
            if changes:
                for column, change in changes.items():
                    setattr(row, column, change["to"])
                row.settings_version += 1
                log_event(session, project_id, "settings", {**changes, "settings_version": row.settings_version})
                session.flush()
            return self._info(row), changes

        try:
            info, changes = self.db.run(work)
        except IntegrityError:
            raise ConflictError(f"a project named {name!r} exists already") from None
        redecided = left = 0
        if changes.keys() & set(RESETTLING):
            open_items, items = self.db.read(lambda s: open_and_all(s, project_id))
            if open_items and items <= REDECIDE_IN_CALL:
                redecided = redecide_open(self.db, self.decisions, project_id)
            else:
                left = open_items
        return ProjectUpdate(info, changes, redecided, left)

    @staticmethod
    def _new_settings(given: Any, stored: T, what: str) -> T | None:
        """The settings to store: ``given`` whole, or ``stored`` with the fields of a mapping."""
        if isinstance(given, Mapping):
            return codec.changed(stored, given, what)
        return given

    def get_project(self, project: int | str) -> ProjectInfo:
        """A project by id or name (``NotFoundError``)."""

        def work(session: Session) -> ProjectInfo:
            if isinstance(project, str) and not project.isdigit():
                row = (
                    None
                    if text_problem(project, NAME_LENGTH)
                    else session.scalars(pq.PROJECT_BY_NAME, {"name": project}).first()
                )
                if row is None:
                    raise NotFoundError(f"no project named {project!r}")
                return self._info(row)
            return self._info(project_row(session, int(project)))

        return self.db.read(work)

    def list_projects(self) -> list[ProjectInfo]:
        return self.db.read(lambda s: [self._info(p) for p in s.scalars(pq.ALL_PROJECTS)])

    def import_items(
        self,
        project_id: int,
        rows: Iterable[ItemIn],
        *,
        batch_size: int = 5000,
        progress: ProgressCallback | None = None,
        model: tuple[str, str] | None = None,
    ) -> int:
        """Store items in batches of ``batch_size`` (fixed-size statements, whatever the count);
        returns the number stored. ``model=(name, version)`` names the model of the rows'
        ``predictions``. An external id already in the project, or repeated, raises
        ``InputError`` naming the row; the batches before it stay stored. A pool of at most
        ``PRIORITIZE_IN_CALL`` open items is then weighed (``service.priorities``: at the cold
        start, a diverse spread)."""
        check_batch(batch_size)
        info = self.get_project(project_id)
        version_id = model_version_id(self.db, project_id, *model) if model else None
        stored = 0
        for batch in batched(rows, batch_size):
            parsed = parse_items(batch, info.labels, first_row=stored + 1)
            if any(p["predictions"] for p in parsed) and version_id is None:
                raise InputError(
                    "items carry predictions but no model is named", source="items", hint="Pass model=(name, version)."
                )
            self.db.run(
                lambda s, parsed=parsed, first=stored + 1: self._store_items(s, project_id, parsed, first, version_id)
            )
            stored += len(parsed)
            if progress is not None:
                progress(stored)
        if stored and self.db.run(lambda s: open_and_all(s, project_id))[0] <= PRIORITIZE_IN_CALL:
            prioritize(self.db, self.config, project_id)  # a larger pool is weighed by the next refit or predictions
        return stored

    def _store_items(
        self, session: Session, project_id: int, parsed: list[dict], first_row: int, version_id: int | None
    ) -> None:
        project = project_row(session, project_id)
        ids = [p["external_id"] for p in parsed]
        taken = set(session.scalars(pq.ITEM_IDS, {"project": project_id, "ids": ids}))
        if taken:
            rows = [first_row + i for i, x in enumerate(ids) if x in taken]
            raise InputError(
                f"item {ids[rows[0] - first_row]!r} is already in the project",
                source="items",
                rows=rows,
                field="external_id",
                unit="item",
            )
        decider = self.config.decider(project)
        soft = None
        if version_id is not None and project.model_votes:
            soft = soft_columns(
                [(i, version_id, p["predictions"]) for i, p in enumerate(parsed) if p["predictions"]], {version_id: 1.0}
            )
        table = decider.decide(Opinions.of(len(parsed), [], [], [], soft))
        now = utcnow()
        values = []
        for i, p in enumerate(parsed):
            gold = p["gold"] is not None
            values.append(
                {
                    "project_id": project_id,
                    "external_id": p["external_id"],
                    "payload": p["payload"],
                    "is_gold": gold,
                    "status": "gold" if gold else table.status[i],
                    "label": (p["gold"] if gold else code_or_none(table.label[i])),
                    "confidence": 1.0 if gold else confidence_or_none(table, i),
                    "answer_count": 0,
                    "open_leases": 0,
                    "needed": 0 if gold else int(table.next[i]),
                    "priority": 0.0 if gold else float(table.priority[i]),
                    "branch": -1 if gold else int(table.branch[i]),
                    "updated_at": now,
                }
            )
        session.execute(pq.NEW_ITEMS, values)
        item_ids: list[int | None] = [None] * len(values)
        if any(p["gold"] is not None or p["predictions"] for p in parsed) or (table.status == ACCEPTED).any():
            found = dict(session.execute(pq.ITEM_IDS, {"project": project_id, "ids": ids}).all())
            item_ids = [found[x] for x in ids]
        gold_rows = [
            {"item_id": item_id, "label": p["gold"], "hint": p["hint"]}
            for item_id, p in zip(item_ids, parsed, strict=True)
            if p["gold"] is not None
        ]
        if gold_rows:
            session.execute(pq.NEW_GOLD, gold_rows)
        predictions = [
            {
                "model_version_id": version_id,
                "item_id": item_id,
                "labels": p["predictions"][0],
                "probs": p["predictions"][1],
            }
            for item_id, p in zip(item_ids, parsed, strict=True)
            if p["predictions"]
        ]
        if predictions:
            session.execute(mq.NEW_PREDICTIONS, predictions)
            session.execute(mq.COUNT_PREDICTIONS, {"version_id": version_id, "added": len(predictions)})
        automated = [
            {
                "project_id": project_id,
                "item_id": item_id,
                "kind": ACCEPTED,
                "created_at": now,
                "detail": {"by": "model", "label": v["label"], "confidence": v["confidence"], "answers": 0},
            }
            for item_id, v in zip(item_ids, values, strict=True)
            if v["status"] == ACCEPTED
        ]
        if automated:
            session.execute(q.NEW_EVENTS, automated)

    def add_gold(self, project_id: int, rows: Iterable[GoldIn], *, batch_size: int = 5000) -> int:
        """Make imported items gold (true label, optional hint); returns the number marked."""
        check_batch(batch_size)
        info = self.get_project(project_id)
        marked = 0
        for batch in batched(rows, batch_size):
            for row, gold in enumerate(batch, start=marked + 1):
                check_text(str(gold.external_id), EXTERNAL_ID_LENGTH, source="gold", row=row, field="item", unit="row")
                if gold.hint is not None:
                    check_text(gold.hint, HINT_LENGTH, source="gold", row=row, field="hint", unit="row", blank=True)
            codes = encode_labels([g.label for g in batch], info.labels, "gold", marked + 1)

            def work(
                session: Session, batch: list[GoldIn] = batch, codes: np.ndarray = codes, first: int = marked + 1
            ) -> None:
                ids = [str(g.external_id) for g in batch]
                found = dict(session.execute(pq.ITEM_IDS, {"project": project_id, "ids": ids}).all())
                missing = [first + i for i, x in enumerate(ids) if x not in found]
                if missing:
                    raise InputError(
                        f"gold for unknown item {ids[missing[0] - first]!r}", source="gold", rows=missing, unit="row"
                    )
                item_ids = [found[x] for x in ids]
                session.execute(
                    pq.MAKE_GOLD, [{"item": i, "label": int(c)} for i, c in zip(item_ids, codes, strict=True)]
                )
                existing = set(session.scalars(pq.GOLD_OF, {"items": item_ids}))
                fresh = [
                    {"item_id": i, "label": int(c), "hint": g.hint}
                    for i, c, g in zip(item_ids, codes, batch, strict=True)
                    if i not in existing
                ]
                if fresh:
                    session.execute(pq.NEW_GOLD, fresh)
                changed = [
                    {"item": i, "label": int(c), "hint": g.hint}
                    for i, c, g in zip(item_ids, codes, batch, strict=True)
                    if i in existing
                ]
                if changed:
                    session.execute(pq.SET_GOLD, changed)

            self.db.run(work)
            marked += len(batch)
        return marked

    def item_state(self, project_id: int, external_id: str, *, viewer: AnnotatorInfo | None = None) -> ItemState:
        """The consensus state of one item (for owners and reviewers, never annotators).
        ``viewer``: the member who asks (read again: a banned one is refused); a reviewer reads
        the items they review only, unless the project's ``reviewers_see_gold`` (any other item,
        gold or not, is not found for them)."""

        def work(session: Session) -> ItemState:
            project = project_row(session, project_id)
            person = checked_member(session, viewer.id, project_id) if viewer is not None else None
            item = item_row(session, project_id, external_id)
            if person is not None and hidden_from(person, project, item):
                raise NotFoundError(f"no item {external_id!r} in project {project_id}")
            return item_state(item, self.config.labels(project))

        return self.db.read(work)
