"""Errors as ``application/problem+json`` (RFC 9457): one mapping from crowdloop errors to HTTP status."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from crowdloop.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    CrowdloopError,
    ForbiddenError,
    InputError,
    NotFoundError,
    TooLargeError,
    UnknownLabelError,
)

PROBLEM_TYPE = "application/problem+json"
STATUS_OF: tuple[tuple[type[CrowdloopError], int], ...] = (
    (AuthError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (UnknownLabelError, 422),
    (InputError, 400),
    (ConfigError, 422),
)
"""First match wins: an upload over a limit once decompressed is too large (413); an unknown label is
well-formed but invalid (422); a file that cannot be read is a bad request (400)."""


class Problem(BaseModel):
    """RFC 9457 problem details. ``errors`` lists the invalid fields of a 422 from validation."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem(
    status: int,
    detail: str | None = None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_TYPE, headers=headers
    )


def status_of(exc: CrowdloopError) -> int:
    return next((status for kind, status in STATUS_OF if isinstance(exc, kind)), 400)


def unauthorized(detail: str) -> JSONResponse:
    return problem(401, detail, headers={"WWW-Authenticate": "Bearer"})


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app answers, as problem+json."""

    @app.exception_handler(CrowdloopError)
    async def crowdloop_error(request: Request, exc: CrowdloopError) -> JSONResponse:
        status = status_of(exc)
        return unauthorized(str(exc)) if status == 401 else problem(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, "the request body is not valid JSON", errors=errors)
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem(422, f"invalid request: {where}", errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        return problem(exc.status_code, str(exc.detail) if exc.detail else None, headers=headers)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods documented for ``path`` (Starlette's own 405 names only the first route's)."""
    paths = app.openapi()["paths"]
    matches = [template for template in paths if compile_path(template)[0].match(path)]
    fewest = min((t.count("{") for t in matches), default=0)  # the most literal template names the resource
    return sorted({m.upper() for t in matches if t.count("{") == fewest for m in paths[t]})


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": HTTPStatus(status).phrase}
    for status in (400, 401, 403, 404, 409, 413, 422)
}
"""The error responses every route documents in the OpenAPI schema."""
