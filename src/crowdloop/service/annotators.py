"""Annotators, their roles and API tokens (only a token's SHA-256 is stored), and the judgement of
their evidence: a ban or a promotion to reviewer (``judge``, after every answer)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdloop.consensus import SkillRules
from crowdloop.errors import AuthError, ConfigError, ConflictError, NotFoundError
from crowdloop.service.database import Database, Executor
from crowdloop.service.item_decisions import ItemDecisions, skill_book
from crowdloop.service.project_config import ProjectConfig
from crowdloop.service.rows import ProjectRow, log_event, project_row
from crowdloop.service.stored_text import checked_name
from crowdloop.service.types import KINDS, ROLES, AnnotatorInfo, Kind, Role
from crowdloop.store import project_queries as pq
from crowdloop.store import queries as q
from crowdloop.store.direct import DirectConnection
from crowdloop.store.schema import Annotator, ApiToken, utcnow


def make_token() -> str:
    return "cl_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def annotator_row(session: Session, annotator_id: int) -> Annotator:
    """The annotator ``annotator_id`` (``NotFoundError``)."""
    annotator = session.get(Annotator, annotator_id) if isinstance(annotator_id, int) else None
    if annotator is None:
        raise NotFoundError(f"no annotator with id {annotator_id!r}")
    return annotator


def annotator_info(annotator: Annotator | Row, rules: SkillRules) -> AnnotatorInfo:
    return AnnotatorInfo(
        id=annotator.id,
        project_id=annotator.project_id,
        name=annotator.name,
        role=annotator.role,
        kind=annotator.kind,
        status=annotator.status,
        skill=float(skill_book([annotator], rules).accuracy()[0]),
        answers=annotator.answer_count,
        gold_right=round(annotator.gold_right),
        gold_total=round(annotator.gold_total),
    )


def judge(
    connection: Executor, project: ProjectRow, annotator: Row, rules: SkillRules, decisions: ItemDecisions
) -> str:
    """Ban or promote to reviewer, on the evidence; returns the annotator's status. A ban gives
    their open leases back to the pool, and their answers no longer count: every item whose state
    the crowd decides that they answered is decided again without them (a label two members of a
    colluding ring agreed on goes back to the crowd)."""
    if annotator.gold_total < min(rules.min_gold, rules.min_gold_promote) and annotator.timed < rules.min_timed:
        return annotator.status  # too little evidence for either
    book = skill_book([annotator], rules)
    if book.banned()[0] and annotator.status == "active":
        fast = book.timed[0] >= rules.min_timed and book.fast[0] > book.timed[0] / 2
        connection.execute(q.SET_STATUS, {"annotator": annotator.id, "status": "banned"})
        for lease_id, item_id in connection.execute(q.OPEN_LEASES_OF, {"annotator": annotator.id}).all():
            if connection.execute(q.EXPIRE_LEASE, {"lease": lease_id}).rowcount:
                connection.execute(q.RELEASE_ITEM, {"item": item_id})
        for item in connection.execute(q.DECIDED_BY_CROWD_OF, {"annotator": annotator.id}).all():
            decisions.redecide(connection, project, [item])  # one at a time: the statements a submit runs
        _, upper = book.gold_bounds()
        log_event(
            connection,
            project.id,
            "banned",
            {
                "reason": "implausibly fast answers" if fast else "gold accuracy clearly below the threshold",
                "gold_right": annotator.gold_right,
                "gold_total": annotator.gold_total,
                "upper_bound": float(upper[0]),
                "ban_below": rules.ban_below,
            },
            annotator_id=annotator.id,
        )
        return "banned"
    if book.promoted()[0] and annotator.role == "annotator":
        connection.execute(q.SET_ROLE, {"annotator": annotator.id, "role": "reviewer"})
        lower, _ = book.gold_bounds()
        log_event(
            connection,
            project.id,
            "promoted",
            {"to": "reviewer", "lower_bound": float(lower[0]), "gold_total": annotator.gold_total},
            annotator_id=annotator.id,
        )
    return annotator.status


class Annotators:
    """Annotators, their roles and tokens (module docstring)."""

    def __init__(self, db: Database, config: ProjectConfig) -> None:
        self.db, self.config = db, config

    def _rules_of(self, db: Executor, project_id: int) -> SkillRules:
        """The project's skill rules (its light columns are read to learn their version)."""
        return self.config.rules(project_row(db, project_id))

    def add_annotator(
        self, project_id: int, name: str, *, role: Role = "annotator", kind: Kind = "human"
    ) -> tuple[AnnotatorInfo, str]:
        """A new annotator and their API token, returned in plain text this once (only its
        SHA-256 is stored)."""
        name = checked_name(name, "annotator")
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        token = make_token()

        def work(session: Session) -> AnnotatorInfo:
            rules = self._rules_of(session, project_id)
            annotator = Annotator(
                project_id=project_id, name=name, role=role, kind=kind, status="active", created_at=utcnow()
            )
            for column in ("answer_count", *q.SKILL_COLUMNS):
                setattr(annotator, column, 0)
            session.add(annotator)
            session.flush()
            session.add(
                ApiToken(annotator_id=annotator.id, digest=token_digest(token), revoked=False, created_at=utcnow())
            )
            return annotator_info(annotator, rules)

        try:
            return self.db.run(work), token
        except IntegrityError:
            raise ConflictError(f"project {project_id} has an annotator named {name!r} already") from None

    def new_token(self, annotator_id: int) -> str:
        """Another token for an annotator (e.g. a lost one); earlier tokens stay valid until revoked."""
        token = make_token()

        def work(session: Session) -> None:
            annotator_row(session, annotator_id)
            session.add(
                ApiToken(annotator_id=annotator_id, digest=token_digest(token), revoked=False, created_at=utcnow())
            )

        self.db.run(work)
        return token

    def rotate_token(self, annotator_id: int) -> str:
        """A new token for an annotator that replaces every earlier one (revoked in the same
        transaction: there is never a moment with none, nor one with two)."""
        token = make_token()

        def work(session: Session) -> None:
            annotator_row(session, annotator_id)
            session.execute(pq.REVOKE_TOKENS_OF, {"annotator": annotator_id})
            session.add(
                ApiToken(annotator_id=annotator_id, digest=token_digest(token), revoked=False, created_at=utcnow())
            )

        self.db.run(work)
        return token

    def revoke_token(self, token: str) -> AnnotatorInfo:
        """Revoke one token (a leaked one, the admin's too); returns whose it was (``AuthError``
        when it is unknown or revoked already)."""
        annotator = self.authenticate(token)
        digest = token_digest(token)

        def work(session: Session) -> int:
            return session.execute(pq.REVOKE_TOKEN, {"token_digest": digest}).rowcount

        if not self.db.run(work):
            raise AuthError("unknown or revoked API token")
        return annotator

    def revoke_tokens(self, annotator_id: int) -> int:
        """Revoke every token of an annotator; returns how many."""

        def work(session: Session) -> int:
            annotator_row(session, annotator_id)
            return session.execute(pq.REVOKE_TOKENS_OF, {"annotator": annotator_id}).rowcount

        return self.db.run(work)

    def authenticate(self, token: str) -> AnnotatorInfo:
        """The annotator a bearer token belongs to (``AuthError`` when unknown or revoked). A
        banned annotator still authenticates; the loop refuses them with ``ForbiddenError``."""
        return self.authenticate_token(token)[0]

    def authenticate_token(self, token: str) -> tuple[AnnotatorInfo, int]:
        """``authenticate``, with the token's id: what a web session keeps, to end with its token
        (``token_annotator``)."""
        if not isinstance(token, str) or not 16 <= len(token) <= 200:
            raise AuthError("missing or malformed API token")
        digest = token_digest(token)
        return self._token_holder(q.TOKEN, {"digest": digest}, digest)

    def token_annotator(self, token_id: int) -> AnnotatorInfo:
        """The annotator of the token ``token_id`` while it is active (``AuthError`` once it is
        revoked, by itself or by a rotation): a web session lasts no longer than its token."""
        return self._token_holder(q.TOKEN_BY_ID, {"token": int(token_id)})[0]

    def _token_holder(
        self, statement: Any, params: dict[str, Any], digest: str | None = None
    ) -> tuple[AnnotatorInfo, int]:
        """The annotator and id of the active token ``statement`` finds (its ``digest`` compared in constant time)."""

        def work(db: DirectConnection) -> tuple[AnnotatorInfo, int]:
            found = db.execute(statement, params).first()
            if found is None or found.revoked or (digest is not None and not hmac.compare_digest(found.digest, digest)):
                raise AuthError("unknown or revoked API token")
            return annotator_info(found, self._rules_of(db, found.project_id)), found.token_id

        return self.db.run_direct(work, write=False)  # every request whose token the server has not seen lately

    def get_annotator(self, annotator_id: int) -> AnnotatorInfo:
        def work(session: Session) -> AnnotatorInfo:
            annotator = annotator_row(session, annotator_id)
            return annotator_info(annotator, self._rules_of(session, annotator.project_id))

        return self.db.read(work)

    def set_role(self, annotator_id: int, role: Role) -> AnnotatorInfo:
        """Promote or demote an annotator (owner's decision)."""
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")

        def work(session: Session) -> AnnotatorInfo:
            annotator = annotator_row(session, annotator_id)
            before = annotator.role
            annotator.role = role
            log_event(session, annotator.project_id, "role", {"from": before, "to": role}, annotator_id=annotator.id)
            return annotator_info(annotator, self._rules_of(session, annotator.project_id))

        return self.db.run(work)

    def annotator_skills(self, project_id: int) -> list[AnnotatorInfo]:
        """Every annotator of the project with skill, answers and gold record."""

        def work(session: Session) -> list[AnnotatorInfo]:
            rules = self._rules_of(session, project_id)
            rows = session.scalars(pq.PROJECT_ANNOTATORS, {"project": project_id})
            return [annotator_info(a, rules) for a in rows]

        return self.db.read(work)
