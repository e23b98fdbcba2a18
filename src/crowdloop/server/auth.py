"""Who is calling: bearer tokens per annotator, and the one dependency that enforces roles.

Every route declares the roles it admits with ``member(...)`` (routes under a project) or
``signed_in``/``admin`` (routes across projects). An annotator belongs to one project: any other
project answers 404, as if it did not exist. The admin is the owner of the reserved project
``ADMIN_PROJECT`` (created by ``crowdloop serve`` on first start): it creates projects and acts
as an owner in every one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from crowdloop.errors import AuthError, ForbiddenError, NotFoundError
from crowdloop.server.schemas import ProjectId
from crowdloop.server.sessions import COOKIE, CSRF_HEADER, csrf_ok, request_session
from crowdloop.service import AnnotatorInfo, LabelingService

ADMIN_PROJECT = "crowdloop-admin"
T = TypeVar("T")

bearer = HTTPBearer(
    auto_error=False,
    description="An annotator's token (`Authorization: Bearer <token>`), from `POST /projects/{id}/annotators`, "
    "or the admin token that `crowdloop serve` prints on first start.",
)


@dataclass(frozen=True)
class Caller:
    annotator: AnnotatorInfo
    admin: bool


async def service_of(request: Request) -> LabelingService:
    return request.app.state.service


async def call(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(*args, **kwargs)`` (the service's blocking work) in the thread pool, never on the event
    loop: a call waiting for the database (SQLite's one writer, a row lock) stalls no other request."""
    return await run_in_threadpool(work, *args, **kwargs)


async def admin_project_id(request: Request) -> int | None:
    """The reserved admin project's id (looked up once it exists)."""
    state = request.app.state
    if state.admin_project_id is None:
        service = request.app.state.service
        try:
            state.admin_project_id = (await call(service.get_project, ADMIN_PROJECT)).id
        except NotFoundError:
            return None
    return state.admin_project_id


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (``AuthError`` without one)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token: send 'Authorization: Bearer <token>'")
    return token.strip()


async def annotator_of(connection: HTTPConnection, token: str) -> AnnotatorInfo:
    """The annotator ``token`` belongs to, looked up once per request (``AuthFirstRoute`` may have done it
    before the body was read: ``AuthFirstRoute``), from the ``TokenCache`` or the service (``AuthError``)."""
    state = connection.scope.setdefault("state", {})
    found = state.get("token_annotator")
    if found is not None and found[0] == token:
        return found[1]
    annotator = connection.app.state.tokens.get(token)
    if annotator is None:
        service = connection.app.state.service
        annotator = await call(service.authenticate, token)
        connection.app.state.tokens.put(token, annotator)
    state["token_annotator"] = (token, annotator)
    return annotator


async def signed_in(request: Request, credentials: Credentials) -> Caller:
    """The caller behind the bearer token, else behind the web pages' session cookie (see
    ``crowdloop.server.sessions``); ``AuthError`` without either."""
    if credentials is None or not credentials.credentials:
        annotator = await session_annotator(request)
    else:
        annotator = await annotator_of(request, credentials.credentials)
    if annotator.status != "active":  # every route, every role: a banned member reads nothing either
        raise ForbiddenError(f"annotator {annotator.name!r} is {annotator.status}")
    admin_id = await admin_project_id(request)
    return Caller(annotator, annotator.role == "owner" and annotator.project_id == admin_id)


async def session_annotator(request: Request) -> AnnotatorInfo:
    """The annotator of the session cookie while the token it was opened with is active, read again
    at most every few seconds (the token cache, keyed by the cookie; ``AuthError`` once the token is
    revoked); a request that changes something must carry the session's CSRF value."""
    session = request_session(request)
    if session is None:
        raise AuthError("missing bearer token: send 'Authorization: Bearer <token>'")
    if not await csrf_ok(request, session):
        raise ForbiddenError(f"this needs the session's CSRF token (header {CSRF_HEADER} or form field csrf)")
    cookie = request.cookies[COOKIE]
    annotator = request.app.state.tokens.get(cookie)
    if annotator is None:
        service = request.app.state.service
        annotator = await call(service.token_annotator, session.token_id)
        if annotator.id != session.annotator_id:
            raise AuthError("the session's token belongs to someone else: sign in again")
        request.app.state.tokens.put(cookie, annotator)
    return annotator


class TokenCache:
    """Who a token belongs to, remembered for ``seconds`` (0: ask the service every time).

    Authentication is a database round trip; a task and its submit would pay it twice. The
    trade-off: a token revoked or a role changed in another server process takes effect there
    after at most ``seconds``; in this process at once (the routes that change them call
    ``forget``). Bans are not affected: the service re-reads an annotator's status in every call."""

    def __init__(self, seconds: float, max_entries: int = 100_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, AnnotatorInfo]] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> AnnotatorInfo | None:
        entry = self._entries.get(self._key(token)) if self.seconds > 0 else None
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put(self, token: str, annotator: AnnotatorInfo) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[self._key(token)] = (time.monotonic() + self.seconds, annotator)

    def forget(self, annotator_id: int) -> None:
        for key, (_, annotator) in list(self._entries.items()):
            if annotator.id == annotator_id:
                self._entries.pop(key, None)


SignedIn = Annotated[Caller, Depends(signed_in)]


async def admin(caller: SignedIn) -> Caller:
    if not caller.admin:
        raise ForbiddenError("only the admin token may do this")
    return caller


def member(*roles: str, admin_acts: bool = True) -> Callable[..., Caller]:
    """A dependency admitting members of the path's project with one of ``roles``. The admin counts
    as an owner of every project where ``admin_acts`` (not where the act needs a member's identity:
    answering, reviewing)."""

    async def dependency(project_id: ProjectId, request: Request, credentials: Credentials) -> Caller:
        caller = await signed_in(request, credentials)  # called, not declared: one dependency less to solve
        reserved = project_id == await admin_project_id(request)
        if caller.admin and not reserved:
            if not ("owner" in roles and admin_acts):
                raise ForbiddenError("the admin token manages projects; answering and reviewing need a member's token")
            service = request.app.state.service
            await call(service.get_project, project_id)  # 404 for a project that does not exist
            return caller
        if caller.annotator.project_id != project_id or reserved:
            raise NotFoundError(f"no project {project_id}")
        if caller.annotator.role not in roles:
            raise ForbiddenError(
                f"this needs the role {' or '.join(roles)}; the token's role is {caller.annotator.role}"
            )
        return caller

    return dependency


Owner = Annotated[Caller, Depends(member("owner"))]
Reviewer = Annotated[Caller, Depends(member("owner", "reviewer"))]
Decider = Annotated[Caller, Depends(member("owner", "reviewer", admin_acts=False))]
Worker = Annotated[Caller, Depends(member("annotator", "reviewer"))]
Anyone = Annotated[Caller, Depends(member("owner", "reviewer", "annotator"))]
Admin = Annotated[Caller, Depends(admin)]
Service = Annotated[LabelingService, Depends(service_of)]
