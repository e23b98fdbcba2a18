"""The FastAPI application: thin routes over a ``LabelingService``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from crowdloop.server.auth import TokenCache
from crowdloop.server.limits import BodyLimit
from crowdloop.server.problems import PROBLEM_TYPE, install_problem_handlers
from crowdloop.server.routes import loop, projects, results
from crowdloop.service import LabelingService, open_service
from crowdloop.service.worker import ModelWorker

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_BODY_VARIABLE = "CROWDLOOP_MAX_BODY_BYTES"
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


def create_app(
    service: LabelingService,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    auth_cache_seconds: float = 5.0,
    worker: ModelWorker | None = None,
) -> FastAPI:
    """The API over ``service``; request bodies over ``max_body_bytes`` are refused with 413; a token's
    annotator is remembered for ``auth_cache_seconds`` (see ``TokenCache``; 0 turns it off);
    ``worker``: the model worker, run in a thread of its own while the app runs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    app = FastAPI(title="crowdloop", version="1", description=DESCRIPTION.strip(), lifespan=lifespan)
    app.state.service = service
    app.state.admin_project_id = None
    app.state.tokens = TokenCache(auth_cache_seconds)
    install_problem_handlers(app)
    for module in (loop, projects, results):  # the loop's routes first: they are matched in order
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
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
    with the model worker in a thread unless ``$CROWDLOOP_WORKER`` is ``0``."""
    max_body = int(os.environ.get(MAX_BODY_VARIABLE) or DEFAULT_MAX_BODY_BYTES)
    seed = os.environ.get(SEED_VARIABLE)
    service = open_service(seed=int(seed) if seed else None, background_checkpoints=True)
    worker = None if os.environ.get(WORKER_VARIABLE) == "0" else ModelWorker(service)
    return create_app(service, max_body_bytes=max_body, worker=worker)
