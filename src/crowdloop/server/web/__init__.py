"""The web pages: sign-in, the annotator's labeling page, the reviewer's queue and the owner's
pages (progress, annotators, settings, data, events), and ``/docs`` from local assets.

Server-rendered Jinja2 templates (autoescaped) with small scripts of our own under ``static/``;
nothing is loaded from another host. Every page admits the roles the REST routes admit
(``crowdloop.server.auth.member``) and calls the same service methods; the pages' scripts call the
REST API with the session cookie and its CSRF header (``crowdloop.server.sessions``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from crowdloop.server.web import docs, pages
from crowdloop.server.web.common import STATIC, PageError, SecurityHeaders, page_error


def install_web(app: FastAPI) -> None:
    """Mount the pages at ``/``, their files at ``/static`` and the API docs at ``/docs``."""
    app.include_router(pages.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    docs.mount_assets(app)
    app.add_exception_handler(PageError, page_error)
    app.add_middleware(SecurityHeaders)
