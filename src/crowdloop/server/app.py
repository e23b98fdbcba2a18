"""The FastAPI application: thin routes over a ``LabelingService``."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from crowdloop.io.uploads import DEFAULT_MAX_ROWS, UploadLimits
from crowdloop.server.auth import TokenCache
from crowdloop.server.limits import BodyLimit
from crowdloop.server.problems import PROBLEM_TYPE, install_problem_handlers
from crowdloop.server.routes import loop, projects, results
from crowdloop.server.sessions import SECRET_VARIABLE, SessionSigner
from crowdloop.server.web import install_web
from crowdloop.service import LabelingService, open_service
from crowdloop.service.worker import ModelWorker, freeze_startup_heap

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_BODY_VARIABLE = "CROWDLOOP_MAX_BODY_BYTES"
MAX_ROWS_VARIABLE = "CROWDLOOP_MAX_UPLOAD_ROWS"
REQUEST_LOG_VARIABLE = "CROWDLOOP_REQUEST_LOG"  # "0": no request log on stderr
SEED_VARIABLE = "CROWDLOOP_SEED"  # fixes the gold draws of a server (reproducible walk-throughs and tests)
WORKER_VARIABLE = "CROWDLOOP_WORKER"  # "0": no model worker in the server (crowdloop serve --no-worker)

DESCRIPTION = """
The crowdloop labeling service. Annotators take tasks (`POST /projects/{id}/tasks/next`), answer
them (`.../tasks/{lease}/submit`), and the dynamic consensus accepts each item once its calibrated
confidence reaches the project's target, or escalates it to reviewers.

Every route needs a bearer token: the admin token that `crowdloop serve` prints on first start
creates projects; each project's owner adds annotators and reviewers and gives out their tokens.
Errors are `application/problem+json` (RFC 9457).
"""


REQUEST_LOG = logging.getLogger("crowdloop.requests")


class RequestLog:
    """One line per request on the ``crowdloop.requests`` logger (INFO): method, path, status and
    milliseconds. Never a header (the tokens) nor the query string (where a client may put one)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = (time.perf_counter() - started) * 1000
            REQUEST_LOG.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, ms)


def log_requests_to_stderr() -> None:
    """Print the request log (``RequestLog``) on stderr, a timestamp before each line."""
    if not REQUEST_LOG.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        REQUEST_LOG.addHandler(handler)
        REQUEST_LOG.setLevel(logging.INFO)
        REQUEST_LOG.propagate = False


def create_app(
    service: LabelingService,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_upload_rows: int = DEFAULT_MAX_ROWS,
    auth_cache_seconds: float = 5.0,
    session_secret: str | None = None,
    worker: ModelWorker | None = None,
) -> FastAPI:
    """The API over ``service`` and the web pages at ``/``; request bodies over ``max_body_bytes``
    are refused with 413, and so are uploaded files over ``max_body_bytes`` or ``max_upload_rows``
    rows once decompressed; a body is read only after its caller is checked (``AuthFirstRoute``); a
    token's annotator is remembered for ``auth_cache_seconds`` (see ``TokenCache``; 0 turns it off);
    session cookies are signed with ``session_secret`` (random when None: sessions end with the
    process); ``worker``: the model worker, run in a thread of its own while the app runs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(
        title="crowdloop",
        version="1",
        description=DESCRIPTION.strip(),
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.admin_project_id = None
    app.state.tokens = TokenCache(auth_cache_seconds)
    app.state.sessions = SessionSigner(session_secret)
    # refits are CPU-bound: one at a time per process, so that the requests keep their share of it
    app.state.refits = threading.Lock()
    app.state.upload_limits = UploadLimits(max_bytes=max_body_bytes, max_rows=max_upload_rows)
    install_problem_handlers(app)
    for module in (loop, projects, results):  # the loop's routes first: they are matched in order
        app.include_router(module.router)
    install_web(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(RequestLog)  # outermost: it times and logs every answer, refusals included
    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    """The generated schema, with every error response documented as problem+json only."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
        for operations in schema["paths"].values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    if status.isdigit() and int(status) >= 400:
                        response["content"] = {PROBLEM_TYPE: problem}
        for name in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def app_from_environment() -> FastAPI:
    """The app on ``$CROWDLOOP_DATABASE_URL`` (what ``crowdloop serve`` runs in each worker process),
    with the model worker in a thread unless ``$CROWDLOOP_WORKER`` is ``0``; the heap built while
    starting is left out of later garbage collections (``freeze_startup_heap``)."""
    max_body = int(os.environ.get(MAX_BODY_VARIABLE) or DEFAULT_MAX_BODY_BYTES)
    max_rows = int(os.environ.get(MAX_ROWS_VARIABLE) or DEFAULT_MAX_ROWS)
    seed = os.environ.get(SEED_VARIABLE)
    service = open_service(seed=int(seed) if seed else None, background_checkpoints=True)
    if os.environ.get(REQUEST_LOG_VARIABLE, "1") != "0":
        log_requests_to_stderr()
    worker = None if os.environ.get(WORKER_VARIABLE) == "0" else ModelWorker(service)
    app = create_app(
        service,
        max_body_bytes=max_body,
        max_upload_rows=max_rows,
        session_secret=os.environ.get(SECRET_VARIABLE),
        worker=worker,
    )
    freeze_startup_heap()
    return app
