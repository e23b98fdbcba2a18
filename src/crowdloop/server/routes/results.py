"""What owners read: item states, progress, results, annotator skills, the event log, exports; and
the refit job."""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import StreamingResponse

from crowdloop.io.exports import export_answers, export_items, export_labels, stream_label_studio
from crowdloop.server.auth import Owner, Reviewer, Service
from crowdloop.server.limits import AuthFirstRoute
from crowdloop.server.problems import PROBLEM_RESPONSES
from crowdloop.server.schemas import ItemPath, ProjectId, RefitAccepted
from crowdloop.service import ItemState, Progress, ResultRow

router = APIRouter(responses=PROBLEM_RESPONSES, route_class=AuthFirstRoute)


class ExportFormat(StrEnum):
    labels = "labels"
    csv = "csv"
    jsonl = "jsonl"
    answers = "answers"
    label_studio = "label-studio"


MEDIA = {
    "labels": "text/csv",
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "answers": "text/csv",
    "label-studio": "application/json",
}


SUFFIX = {"labels": "csv", "csv": "csv", "jsonl": "jsonl", "answers": "csv", "label-studio": "json"}


@router.get("/projects/{project_id:int}/items/{item:path}", response_model=ItemState, tags=["results"])
def item_state(project_id: ProjectId, item: ItemPath, caller: Reviewer, service: Service) -> ItemState:
    """The consensus state of one item (owners and reviewers; never annotators). Reviewers read the
    items they review (escalated or reviewed), or every item if the project's ``reviewers_see_gold``."""
    return service.item_state(project_id, item, viewer=None if caller.admin else caller.annotator)


@router.get("/projects/{project_id:int}/progress", response_model=Progress, tags=["results"])
def progress(project_id: ProjectId, caller: Owner, service: Service) -> Progress:
    """Accuracy estimate, answers per item, cost so far, automation rate, status counts."""
    return service.progress(project_id)


@router.get("/projects/{project_id:int}/results", response_model=list[ResultRow], tags=["results"])
def results(
    project_id: ProjectId,
    caller: Owner,
    service: Service,
    status: Annotated[Literal["more", "accepted", "escalated", "reviewed"] | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[ResultRow]:
    """Items' current label, calibrated confidence, status and answer count, a page at a time
    (``offset``, ``limit``; the whole set: ``/export``)."""
    rows = (r for r in service.results(project_id) if status in (None, r.status))
    return list(itertools.islice(rows, offset, offset + limit))


@router.get("/projects/{project_id:int}/events", response_model=list[dict[str, Any]], tags=["results"])
def events(
    project_id: ProjectId, caller: Owner, service: Service, limit: Annotated[int, Query(ge=1, le=10000)] = 100
) -> list[dict[str, Any]]:
    """The latest decisions of the append-only event log (who accepted what, and why)."""
    return service.events(project_id, limit=limit)


@router.get(
    "/projects/{project_id:int}/export",
    response_class=Response,
    responses={200: {"content": {m: {} for m in set(MEDIA.values())}, "description": "The export file"}},
    tags=["results"],
)
def export(
    project_id: ProjectId,
    caller: Owner,
    service: Service,
    format: Annotated[ExportFormat, Query(description="labels | csv | jsonl | answers | label-studio")] = (
        ExportFormat.labels
    ),
    from_name: Annotated[str, Query(min_length=1, max_length=200, description="Label Studio control tag")] = "label",
    to_name: Annotated[str, Query(min_length=1, max_length=200, description="Label Studio object tag")] = "text",
) -> Response:
    """Export: final labels with confidence (``labels``), items with their payload (``csv``,
    ``jsonl``), the crowd-kit answers frame (``answers``), or Label Studio tasks (``label-studio``,
    streamed: payloads, every answer as an annotation, every model version's prediction, the final
    label in ``meta``; ``from_name`` and ``to_name`` name the tags of the Label Studio labeling
    config). Gold items are exported too, status ``gold`` (and, in ``csv``/``jsonl``, their label
    under ``gold``), so that an import of the file keeps them gold. CSV cells that a spreadsheet
    would run as a formula are written with a ``'`` in front."""
    fmt = format.value
    filename = f"project-{project_id}-{fmt}.{SUFFIX[fmt]}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "label-studio":
        taxonomy = service.get_project(project_id).is_taxonomy
        pages = service.export_pages(project_id)
        body = stream_label_studio(pages, taxonomy=taxonomy, from_name=from_name, to_name=to_name)
        return StreamingResponse(body, media_type=MEDIA[fmt], headers=headers)
    if fmt == "answers":
        text = export_answers(service.answers_frame(project_id))
    else:
        frame = service.export_frame(project_id)
        text = export_labels(frame) if fmt == "labels" else export_items(frame, fmt)
    return Response(text, media_type=MEDIA[fmt], headers=headers)


@router.post("/projects/{project_id:int}/refit", status_code=202, response_model=RefitAccepted, tags=["results"])
def refit(
    project_id: ProjectId, caller: Owner, service: Service, background: BackgroundTasks, request: Request
) -> RefitAccepted:
    """Start a full refit of skills and calibration after the response (the job ``crowdloop refit``
    runs the same); the loop keeps serving meanwhile. 409 while a refit of the project runs (this
    server's or any other process's); a server runs one refit at a time, the others wait their turn."""
    claim = service.claim_refit(project_id)

    def run() -> None:
        with request.app.state.refits:
            service.refit(project_id, claim=claim)

    background.add_task(run)
    return RefitAccepted(project_id=project_id)
