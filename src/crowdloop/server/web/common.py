"""What every page shares: templates, the message catalog, the caller's roles, errors as pages and
the security headers."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crowdloop.errors import AuthError, CrowdloopError
from crowdloop.server.auth import Caller, member
from crowdloop.server.problems import status_of
from crowdloop.server.sessions import request_session

HERE = Path(__file__).parent
STATIC = HERE / "static"
LANGUAGES = ("en", "ru")
LANG_COOKIE = "crowdloop_lang"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Scripts, styles and fonts from this server only, never inline; images from payloads may come
from anywhere (an item's picture), as images only."""
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
templates = Jinja2Templates(directory=HERE / "templates")  # .html templates: autoescape on


@cache
def catalog(lang: str) -> dict[str, str]:
    """The messages of one language (``messages/<lang>.json``)."""
    return json.loads((HERE / "messages" / f"{lang}.json").read_text(encoding="utf-8"))


def language(request: Request) -> str:
    """The caller's language: the cookie they chose, else the browser's first supported one."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return LANGUAGES[0]


def translator(lang: str):
    """``t(key, **values)``: the message in ``lang`` (English when missing there, the key when
    missing everywhere), formatted with ``values``."""
    messages, english = catalog(lang), catalog("en")

    def t(key: str, **values: Any) -> str:
        text = messages.get(key) or english.get(key) or key
        return text.format(**values) if values else text

    return t


class PageError(Exception):
    """An error shown as a page (with the status the API would answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    if isinstance(exc, SignInFirst):
        return RedirectResponse("/signin", status_code=303)
    return render(request, "error.html", {"message": exc.message}, status=exc.status)


async def page_caller(request: Request, project_id: int, *roles: str, admin_acts: bool = True) -> Caller:
    """The session's caller if it may see this page: the same check as the REST routes
    (``member(*roles)``); no session: sent to sign in; wrong role or project: an error page."""
    try:
        return await member(*roles, admin_acts=admin_acts)(project_id, request, None)
    except AuthError:
        raise SignInFirst() from None
    except CrowdloopError as exc:
        raise PageError(status_of(exc), str(exc)) from None


class SignInFirst(PageError):
    def __init__(self) -> None:
        super().__init__(401, "sign in first")


def render(request: Request, template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    """A page in the caller's language, with the session's CSRF value for its forms and scripts."""
    lang = language(request)
    session = request_session(request)
    values = {"lang": lang, "t": translator(lang), "csrf": session.csrf if session else "", "request": request}
    response = templates.TemplateResponse(request, template, {**values, **context}, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


class SecurityHeaders:
    """Adds the Content-Security-Policy and friends to every response (a plain ASGI wrapper: no
    cost on the loop's hot routes beyond the header list)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
