"""What a request may cost before a route runs: a body size limit (413 as problem+json), the limits
of an uploaded file once decompressed (``UploadLimits``, 413), and the token checked before the
body is read (``AuthFirstRoute``, 401)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crowdloop.io.uploads import UploadLimits
from crowdloop.server.auth import annotator_of, bearer, bearer_token, session_annotator
from crowdloop.server.problems import PROBLEM_TYPE
from crowdloop.server.sessions import request_session


async def upload_limits(request: Request) -> UploadLimits:
    return request.app.state.upload_limits


Limits = Annotated[UploadLimits, Depends(upload_limits)]


class AuthFirstRoute(APIRoute):
    """A route that authenticates before its body is read. FastAPI reads and decodes a request's
    body before it solves the dependencies that check the token, so a route that takes a bearer
    token would otherwise read megabytes for a caller it then refuses. A request with a body to
    such a route is refused (401) at once when its token is missing, unknown or revoked; the
    annotator found is kept for the route's own check (``annotator_of``), which decides roles. A
    request without a token is checked against the web pages' session cookie instead."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not _takes(self.dependant, bearer):
            return handler

        async def authenticated_first(request: Request) -> Response:
            if _has_body(request.scope):
                authorization = request.headers.get("authorization")
                if authorization is None and request_session(request) is not None:
                    await session_annotator(request)  # the web pages' session (its CSRF header checked)
                else:
                    await annotator_of(request, bearer_token(authorization))
            return await handler(request)

        return authenticated_first


def _has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers


def _takes(dependant: Any, dependency: Any) -> bool:
    """Whether ``dependency`` is among the dependencies of ``dependant``, at any depth."""
    return any(d.call is dependency or _takes(d, dependency) for d in dependant.dependencies)


class BodyLimit:
    """Refuse bodies over ``max_bytes``: at once when ``Content-Length`` says so, otherwise as soon as
    the streamed body passes the limit (chunked uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send, "the Content-Length is not a number" if not length.isdigit() else None)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._too_large)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send)

    @property
    def _too_large(self) -> str:
        return f"the request body is larger than the limit of {self.max_bytes} bytes"

    async def _refuse(self, send: Send, detail: str | None = None) -> None:
        status = 400 if detail else 413
        title = "Bad Request" if detail else "Content Too Large"
        body = {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail or self._too_large,
        }
        data = json.dumps(body).encode()
        headers = [(b"content-type", PROBLEM_TYPE.encode()), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
