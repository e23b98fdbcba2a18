"""The loop annotators and reviewers work in: next task, submit, skip; the review queue and decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import TypeAdapter

from crowdloop.server.auth import Decider, Reviewer, Service, Worker, call
from crowdloop.server.limits import AuthFirstRoute
from crowdloop.server.problems import PROBLEM_RESPONSES
from crowdloop.server.schemas import ItemPath, LeaseId, ProjectId, ReviewIn, SubmitIn
from crowdloop.service import ItemState, ReviewTask, SubmitOut, TaskOut

router = APIRouter(responses=PROBLEM_RESPONSES, route_class=AuthFirstRoute)
JSON = "application/json"
# the loop's two hot routes encode what the service built at once, without the framework's second
# validation of it (their response_model still documents it)
TASK = TypeAdapter(TaskOut)
SUBMIT = TypeAdapter(SubmitOut)


@router.post(
    "/projects/{project_id:int}/tasks/next",
    response_model=TaskOut,
    responses={204: {"description": "Nothing left for this annotator now"}},
    tags=["loop"],
)
async def next_task(project_id: ProjectId, caller: Worker, service: Service) -> Response:
    """Lease the next task: the item that most needs this annotator's answer (sometimes a gold item,
    which looks like any other). 204 when nothing is left for them."""
    task = await call(service.next_task, caller.annotator)
    if task is None:
        return Response(status_code=204)
    return Response(TASK.dump_json(task), media_type=JSON)


@router.post("/projects/{project_id:int}/tasks/{lease_id}/submit", response_model=SubmitOut, tags=["loop"])
async def submit(
    project_id: ProjectId,
    lease_id: LeaseId,
    body: SubmitIn,
    caller: Worker,
    service: Service,
    then_next: Annotated[
        bool, Query(alias="next", description="Also lease the next task and return it as `next_task`.")
    ] = False,
) -> Response:
    """Answer a leased task. Idempotent: a retry returns the stored answer with ``duplicate: true``.
    With ``?next=true`` the same transaction leases the next task, which comes in the response:
    one request per answer instead of two (a retry returns the same next task)."""
    out = await call(
        service.submit,
        caller.annotator,
        lease_id,
        body.label,
        duration_ms=body.duration_ms,
        idempotency_key=body.idempotency_key,
        then_next=then_next,
    )
    return Response(SUBMIT.dump_json(out, exclude=None if then_next else {"next_task"}), media_type=JSON)


@router.post(
    "/projects/{project_id:int}/tasks/{lease_id}/skip",
    status_code=204,
    response_class=Response,
    tags=["loop"],
)
def skip(project_id: ProjectId, lease_id: LeaseId, caller: Worker, service: Service) -> Response:
    """Give a task back; it is not offered to this annotator again."""
    service.skip(caller.annotator, lease_id)
    return Response(status_code=204)


@router.get("/projects/{project_id:int}/review", response_model=list[ReviewTask], tags=["review"])
def review_queue(
    project_id: ProjectId, caller: Reviewer, service: Service, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[ReviewTask]:
    """Escalated items, oldest first, with the crowd's answers (reviewers and owners)."""
    return service.review_queue(project_id, limit=limit, viewer=None if caller.admin else caller.annotator)


@router.post("/projects/{project_id:int}/review/{item:path}", response_model=ItemState, tags=["review"])
def review(
    project_id: ProjectId,
    item: ItemPath,
    body: ReviewIn,
    caller: Decider,
    service: Service,
) -> ItemState:
    """A reviewer's final label for an item."""
    return service.review(caller.annotator, project_id, item, body.label)
