"""``/docs``: Swagger UI 5 from the ``swagger-ui-bundle-v2`` package's files (module
``swagger_ui_bundle``), served by this server: the framework's own page loads them from a CDN and
starts them with an inline script, which the pages' Content-Security-Policy forbids."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from crowdloop.server.web.common import templates

router = APIRouter(include_in_schema=False)


def swagger_ui_path() -> str | None:
    """The folder of Swagger UI's files, when ``swagger-ui-bundle-v2`` is installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path as path
    except ImportError:
        return None
    return str(path)


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    """The API's interactive documentation, every file from this server."""
    available = swagger_ui_path() is not None
    return templates.TemplateResponse(request, "docs.html", {"available": available}, status_code=200)


def mount_assets(app: FastAPI) -> None:
    path = swagger_ui_path()
    if path is not None:
        app.mount("/docs/assets", StaticFiles(directory=path), name="docs-assets")
