"""The loop annotators and reviewers work in: next task, submit, skip; the review queue and decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from crowdloop.server.auth import Decider, Reviewer, Service, Worker, call
from crowdloop.server.problems import PROBLEM_RESPONSES
from crowdloop.server.schemas import (
    ItemPath,
    ItemStateOut,
    LeaseId,
    ProjectId,
    ReviewIn,
    ReviewTaskOut,
    SubmitIn,
    SubmitOut,
    TaskOut,
)

router = APIRouter(responses=PROBLEM_RESPONSES)


@router.post(
    "/projects/{project_id:int}/tasks/next",
    response_model=TaskOut,
    responses={204: {"description": "Nothing left for this annotator now"}},
    tags=["loop"],
)
async def next_task(project_id: ProjectId, caller: Worker, service: Service) -> Response:
    """Lease the next task: the item that most needs this annotator's answer (sometimes a gold item,
    which looks like any other). 204 when nothing is left for them."""
    task = await call(service, service.next_task, caller.annotator)
    if task is None:
        return Response(status_code=204)
    return json_response(TaskOut.model_validate(task))


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
    With ``?next=true`` the answer is stored first (its own transaction) and the next task comes
    in the same response: one request per answer instead of two."""
    out = await call(
        service,
        service.submit,
        caller.annotator,
        lease_id,
        body.label,
        duration_ms=body.duration_ms,
        idempotency_key=body.idempotency_key,
    )
    result = SubmitOut.model_validate(out)
    if not then_next:
        return json_response(result, exclude={"next_task"})
    if out.annotator_status == "active":
        task = await call(service, service.next_task, caller.annotator)
        result.next_task = None if task is None else TaskOut.model_validate(task)
    return json_response(result)


def json_response(model: BaseModel, *, exclude: set[str] | None = None) -> Response:
    """``model`` as JSON, encoded by pydantic at once: the loop's two routes skip the framework's
    second validation of what they return (their ``response_model`` still documents it)."""
    return Response(model.model_dump_json(exclude=exclude), media_type="application/json")


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


@router.get("/projects/{project_id:int}/review", response_model=list[ReviewTaskOut], tags=["review"])
def review_queue(
    project_id: ProjectId, caller: Reviewer, service: Service, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[ReviewTaskOut]:
    """Escalated items, oldest first, with the crowd's answers (reviewers and owners)."""
    return [ReviewTaskOut.model_validate(t) for t in service.review_queue(project_id, limit=limit)]


@router.post("/projects/{project_id:int}/review/{item}", response_model=ItemStateOut, tags=["review"])
def review(
    project_id: ProjectId,
    item: ItemPath,
    body: ReviewIn,
    caller: Decider,
    service: Service,
) -> ItemStateOut:
    """A reviewer's final label for an item."""
    return ItemStateOut.model_validate(service.review(caller.annotator, project_id, item, body.label))
