"""Project setup: projects and their label space and policy, items, gold, model predictions,
annotators and their tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from crowdloop.consensus import SkillRules
from crowdloop.errors import InputError, NotFoundError
from crowdloop.io.answer_tables import parse_answer_table
from crowdloop.io.items import ITEM_FORMATS, ImportedItem, read_item_upload
from crowdloop.labels import LabelSpace
from crowdloop.server.auth import ADMIN_PROJECT, Admin, Anyone, Owner, Service, SignedIn
from crowdloop.server.labelspaces import read_label_space
from crowdloop.server.limits import AuthFirstRoute, Limits
from crowdloop.server.problems import PROBLEM_RESPONSES
from crowdloop.server.schemas import (
    AnnotatorId,
    AnnotatorIn,
    AnswersIn,
    CountOut,
    CreatedProject,
    GoldListIn,
    ImportOut,
    ItemsIn,
    ItemsUploadOut,
    Member,
    MeOut,
    PredictionsIn,
    ProjectBrief,
    ProjectId,
    ProjectIn,
    ProjectOut,
    ProjectPatch,
    ProjectSettings,
    ProjectUpdated,
    RoleIn,
    TokenOut,
)
from crowdloop.service import AnnotatorInfo, GoldIn, ItemIn, LabelingService, ModelVersionInfo, ProjectInfo
from crowdloop.service.answer_import import AnswerIn, AnswersImported

router = APIRouter(responses=PROBLEM_RESPONSES, route_class=AuthFirstRoute)


def project_out(info: ProjectInfo) -> ProjectOut:
    return ProjectOut.model_validate(
        {
            **info.__dict__,
            "labels": [str(x) for x in info.labels.labels],
            "is_taxonomy": info.is_taxonomy,
            "exam": info.rules.exam,
        }
    )


def _create(service: LabelingService, name: str, labels: LabelSpace, settings: ProjectSettings) -> CreatedProject:
    info = service.create_project(
        name,
        labels,
        settings.policy.to_policy(),
        gold_rate=settings.gold_rate,
        lease_seconds=settings.lease_seconds,
        model_votes=settings.model_votes,
        suggestions=settings.suggestions,
        reviewers_see_gold=settings.reviewers_see_gold,
        rules=SkillRules(exam=settings.exam),
        text_fields=settings.text_fields,
        audit_rate=settings.audit_rate,
        hide_rate=settings.hide_rate,
    )
    owner, token = service.add_annotator(info.id, settings.owner, role="owner")
    return CreatedProject(project=project_out(info), owner=TokenOut(annotator=owner, token=token))


@router.post("/projects", status_code=201, response_model=CreatedProject, tags=["setup"])
def create_project(body: ProjectIn, caller: Admin, service: Service) -> CreatedProject:
    """Create a project from a label list or a taxonomy, with its consensus policy; returns the
    project and its first owner's token (admin only)."""
    if body.labels is not None:
        labels = LabelSpace(body.labels, source="labels")
    else:
        labels = read_label_space("\n".join(body.taxonomy or []), "taxonomy", taxonomy=True)
    return _create(service, body.name, labels, body)


@router.post("/projects/upload", status_code=201, response_model=CreatedProject, tags=["setup"])
def create_project_from_file(
    caller: Admin,
    service: Service,
    name: Annotated[str, Form(min_length=1, max_length=200, pattern=r"\S")],
    file: Annotated[UploadFile, File(description="One label per line, or a taxonomy ('A > B > C' or Google's)")],
    settings: Annotated[str, Form(description="ProjectSettings as JSON: policy, gold_rate, lease_seconds, ...")] = "{}",
) -> CreatedProject:
    """Create a project from an uploaded label list or taxonomy file (admin only)."""
    try:
        parsed = ProjectSettings.model_validate_json(settings)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", "settings", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    source = file.filename or "upload"
    try:
        text = file.file.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", source=source) from None
    return _create(service, name, read_label_space(text, source), parsed)


@router.get("/projects", response_model=list[ProjectBrief], tags=["setup"])
def list_projects(caller: SignedIn, service: Service) -> list[ProjectBrief]:
    """The admin sees every project; anyone else their own."""
    if caller.admin:
        infos = [p for p in service.list_projects() if p.name != ADMIN_PROJECT]
    else:
        infos = [service.get_project(caller.annotator.project_id)]
    return [ProjectBrief.model_validate(project_out(p).model_dump()) for p in infos]


@router.get("/projects/{project_id:int}", response_model=ProjectOut | ProjectBrief, tags=["setup"])
def get_project(project_id: ProjectId, caller: Anyone, service: Service) -> ProjectOut | ProjectBrief:
    """The project with its policy (owners); its name and labels (annotators and reviewers)."""
    out = project_out(service.get_project(project_id))
    if caller.admin or caller.annotator.role == "owner":
        return out
    return ProjectBrief.model_validate(out.model_dump())


@router.patch("/projects/{project_id:int}", response_model=ProjectUpdated, tags=["setup"])
def update_project(project_id: ProjectId, body: ProjectPatch, caller: Owner, service: Service) -> ProjectUpdated:
    """Change a project's name or settings (owners): only the fields sent change, the policy's one
    by one. After a policy or ``model_votes`` change the open items are decided again, in this
    request for a small project, else by the next refit (``left_to_refit``); accepted items stay
    accepted. The label space never changes."""
    update = service.update_project(project_id, **body.changes())
    return ProjectUpdated(
        project=project_out(update.project),
        changed=update.changed,
        redecided=update.redecided,
        left_to_refit=update.left_to_refit,
    )


@router.get("/me", response_model=MeOut, tags=["setup"])
def me(caller: SignedIn) -> MeOut:
    """Who the token belongs to; annotators and reviewers see no skill or gold record (owners do)."""
    info = caller.annotator
    if info.role == "owner":
        return MeOut(annotator=info, admin=caller.admin)
    return MeOut(annotator=Member.model_validate(info, from_attributes=True), admin=caller.admin)


def _store_items(service: LabelingService, project_id: ProjectId, rows: list[ItemIn], model: tuple[str, str] | None):
    count = service.import_items(project_id, rows, model=model)
    return ImportOut(
        imported=count,
        gold=sum(r.gold is not None for r in rows),
        predictions=sum(bool(r.predictions) for r in rows),
    )


@router.post("/projects/{project_id:int}/items", status_code=201, response_model=ImportOut, tags=["setup"])
def import_items(project_id: ProjectId, body: ItemsIn, caller: Owner, service: Service) -> ImportOut:
    """Import items as JSON records (``id``, ``data``, optional ``gold``, ``hint``, ``predictions``)."""
    rows = [ItemIn(r.id, r.data, r.gold, r.hint, r.predictions) for r in body.items]
    model = (body.model.name, body.model.version) if body.model else None
    return _store_items(service, project_id, rows, model)


@router.post("/projects/{project_id:int}/items/upload", status_code=201, response_model=ItemsUploadOut, tags=["setup"])
def upload_items(
    project_id: ProjectId,
    caller: Owner,
    service: Service,
    limits: Limits,
    file: Annotated[UploadFile, File(description="CSV, TSV, JSONL, Label Studio JSON or Toloka TSV")],
    format: Annotated[str | None, Form(description=f"One of {', '.join(ITEM_FORMATS)}; default: from the name")] = None,
    model_version: Annotated[str, Form(max_length=200)] = "imported",
) -> ItemsUploadOut:
    """Import an item file: CSV/TSV/JSONL (an ``id`` column, optional ``gold`` and ``hint``), Label
    Studio tasks (with ``predictions``, and ``annotations`` stored as answers), or Toloka tasks
    (``INPUT:*``, ``GOLDEN:*``, ``HINT:*``); ``.gz`` files are gunzipped, within the upload limits."""
    name = file.filename or "upload"
    items = read_item_upload(file.file, name, format, limits)
    rows, model = _items_in(items, model_version)
    answers = [AnswerIn(i.external_id, a.annotator, a.label, a.review) for i in items for a in i.annotations]
    source = f"{name} annotations"
    if answers:  # a bad annotation fails before any item is stored
        service.check_answers(project_id, answers, source=source)
    imported = _store_items(service, project_id, rows, model)
    stored = service.import_answers(project_id, answers, source=source) if answers else None
    return ItemsUploadOut(**imported.model_dump(), answers=stored)


def _items_in(items: list[ImportedItem], version: str) -> tuple[list[ItemIn], tuple[str, str] | None]:
    """Service rows; the first model named in the file is the one whose predictions are kept."""
    model = next((p.model for i in items for p in i.predictions), None)
    rows = [
        ItemIn(
            i.external_id,
            i.payload,
            i.gold,
            i.hint,
            {p.label: p.score for p in i.predictions if p.model == model} or None,
        )
        for i in items
    ]
    return rows, (model, version) if model is not None else None


@router.post("/projects/{project_id:int}/answers", status_code=201, response_model=AnswersImported, tags=["setup"])
def import_answers(project_id: ProjectId, body: AnswersIn, caller: Owner, service: Service) -> AnswersImported:
    """Import answers given before (``item``, ``annotator`` name, ``label``, optional ``review``):
    annotators are created when new, a second answer of an annotator to an item is reported and
    not stored, and the items are decided again."""
    rows = [AnswerIn(r.item, r.annotator, r.label, r.review) for r in body.answers]
    return service.import_answers(project_id, rows)


@router.post(
    "/projects/{project_id:int}/answers/upload", status_code=201, response_model=AnswersImported, tags=["setup"]
)
def upload_answers(
    project_id: ProjectId,
    caller: Owner,
    service: Service,
    limits: Limits,
    file: Annotated[UploadFile, File(description="A task,worker,label table (CSV, TSV, JSONL, Parquet) or Toloka TSV")],
) -> AnswersImported:
    """Import an answers file: a crowd-kit frame (``task``, ``worker``, ``label`` columns) or a Toloka
    assignments TSV (``ASSIGNMENT:task_id``, ``ASSIGNMENT:worker_id``, ``OUTPUT:*``); ``.gz`` files are
    gunzipped, within the upload limits."""
    name = file.filename or "upload"
    table = parse_answer_table(file.file, name, limits)
    rows = [AnswerIn(t, w, label) for t, w, label in zip(table["task"], table["worker"], table["label"], strict=True)]
    return service.import_answers(project_id, rows, source=name)


@router.post("/projects/{project_id:int}/gold", status_code=201, response_model=CountOut, tags=["setup"])
def add_gold(project_id: ProjectId, body: GoldListIn, caller: Owner, service: Service) -> CountOut:
    """Make imported items gold: their true label (and a hint for reviewers and feedback)."""
    return CountOut(count=service.add_gold(project_id, [GoldIn(g.item, g.label, g.hint) for g in body.gold]))


@router.post("/projects/{project_id:int}/predictions", status_code=201, response_model=ModelVersionInfo, tags=["setup"])
def add_predictions(project_id: ProjectId, body: PredictionsIn, caller: Owner, service: Service) -> ModelVersionInfo:
    """Store a model version's probabilities per item; it suggests pre-labels and (if the project
    says so) votes."""
    return service.add_model_predictions(project_id, body.model, body.version, body.probabilities, top_k=body.top_k)


@router.post("/projects/{project_id:int}/annotators", status_code=201, response_model=TokenOut, tags=["annotators"])
def add_annotator(project_id: ProjectId, body: AnnotatorIn, caller: Owner, service: Service) -> TokenOut:
    """A new annotator (or reviewer, or owner) and their token, shown this once."""
    info, token = service.add_annotator(project_id, body.name, role=body.role, kind=body.kind)
    return TokenOut(annotator=info, token=token)


@router.get("/projects/{project_id:int}/annotators", response_model=list[AnnotatorInfo], tags=["annotators"])
def list_annotators(project_id: ProjectId, caller: Owner, service: Service) -> list[AnnotatorInfo]:
    """Every annotator with role, status, skill, answers and gold record."""
    return service.annotator_skills(project_id)


def _annotator_in(service: LabelingService, project_id: ProjectId, annotator_id: AnnotatorId):
    info = service.get_annotator(annotator_id)
    if info.project_id != project_id:
        raise NotFoundError(f"no annotator {annotator_id} in project {project_id}")
    return info


@router.patch(
    "/projects/{project_id:int}/annotators/{annotator_id:int}", response_model=AnnotatorInfo, tags=["annotators"]
)
def set_role(
    project_id: ProjectId, annotator_id: AnnotatorId, body: RoleIn, caller: Owner, service: Service, request: Request
) -> AnnotatorInfo:
    """Promote an annotator to reviewer (or change any role)."""
    _annotator_in(service, project_id, annotator_id)
    request.app.state.tokens.forget(annotator_id)
    return service.set_role(annotator_id, body.role)


@router.post(
    "/projects/{project_id:int}/annotators/{annotator_id:int}/tokens",
    status_code=201,
    response_model=TokenOut,
    tags=["annotators"],
)
def new_token(project_id: ProjectId, annotator_id: AnnotatorId, caller: Owner, service: Service) -> TokenOut:
    """Another token for an annotator; earlier ones stay valid until revoked."""
    info = _annotator_in(service, project_id, annotator_id)
    return TokenOut(annotator=info, token=service.new_token(annotator_id))


@router.delete(
    "/projects/{project_id:int}/annotators/{annotator_id:int}/tokens", response_model=CountOut, tags=["annotators"]
)
def revoke_tokens(
    project_id: ProjectId, annotator_id: AnnotatorId, caller: Owner, service: Service, request: Request
) -> CountOut:
    """Revoke every token of an annotator."""
    _annotator_in(service, project_id, annotator_id)
    count = service.revoke_tokens(annotator_id)
    request.app.state.tokens.forget(annotator_id)
    return CountOut(count=count)
