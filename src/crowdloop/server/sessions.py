"""Browser sessions: the token an owner hands out, exchanged once for a signed session cookie.

The cookie holds ``annotator_id.token_id.expires.csrf.signature`` (HMAC-SHA256 under the server's
secret), never the token: it is ``HttpOnly`` (scripts cannot read it) and ``SameSite=Strict`` (no
other site can make the browser send it). Every request that changes something must also carry the
session's CSRF value, in the ``X-CSRF-Token`` header (the pages' scripts) or the ``csrf`` form field
(the pages' forms). A session lasts ``SESSION_SECONDS`` and no longer than the token it was opened
with: every request reads that token's annotator again (``LabelingService.token_annotator``, through
the token cache), so revoking or rotating the token ends the session, and a ban or a new role takes
effect, at once in this process and within the cache's seconds in the others. A new server secret
ends every session too (``crowdloop serve`` draws one at each start unless
``$CROWDLOOP_SESSION_SECRET`` is set).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request

COOKIE = "crowdloop_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SESSION_SECONDS = 12 * 3600
SECRET_VARIABLE = "CROWDLOOP_SESSION_SECRET"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Session:
    annotator_id: int
    token_id: int
    expires: int
    csrf: str


class SessionSigner:
    """Signs and reads session cookies under one secret (shared by a server's worker processes)."""

    def __init__(self, secret: str | bytes | None = None, *, seconds: int = SESSION_SECONDS) -> None:
        key = secret if secret is not None else secrets.token_bytes(32)
        self._key = key.encode() if isinstance(key, str) else key
        self.seconds = seconds

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def issue(self, annotator_id: int, token_id: int) -> tuple[str, Session]:
        """A new session for ``annotator_id``, signed in with the token ``token_id``: the cookie
        value and what it holds."""
        csrf = secrets.token_urlsafe(24)
        session = Session(int(annotator_id), int(token_id), int(time.time()) + self.seconds, csrf)
        body = f"{session.annotator_id}.{session.token_id}.{session.expires}.{session.csrf}"
        return f"{body}.{self._sign(body)}", session

    def read(self, value: str | None) -> Session | None:
        """The session of a cookie value; None when absent, forged, malformed or expired."""
        if not value or value.count(".") != 4:
            return None
        body, signature = value.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        annotator, token, expires, csrf = body.split(".")
        if not (annotator.isdigit() and token.isdigit() and expires.isdigit()) or int(expires) < time.time():
            return None
        return Session(int(annotator), int(token), int(expires), csrf)


async def csrf_ok(request: Request, session: Session) -> bool:
    """Whether a request may act in ``session``: a safe method, or the session's CSRF value sent
    in the header or (a form post) in the ``csrf`` field."""
    if request.method in SAFE_METHODS:
        return True
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(_FORMS):
        field = (await request.form()).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), session.csrf.encode())


def request_session(request: Request) -> Session | None:
    """The valid session of a request's cookie, if any."""
    return request.app.state.sessions.read(request.cookies.get(COOKIE))
