"""The pages' routes: sign-in and out, language, and one page per job (label, review, progress,
annotators, settings, data, events). Each admits the roles its REST counterparts admit and calls
the same service methods (or the REST route functions themselves, where a form does what a route
does)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import numpy as np
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from crowdloop.consensus import ConsensusPolicy, Prices
from crowdloop.consensus.policy import Bounds, bounds_of
from crowdloop.errors import AuthError, ConflictError, CrowdloopError
from crowdloop.planning.curve import power_law
from crowdloop.quality.crowd import wilson_interval
from crowdloop.server.auth import ADMIN_PROJECT, Caller, Service, admin_project_id, call, session_annotator
from crowdloop.server.routes import projects
from crowdloop.server.routes.results import MEDIA
from crowdloop.server.schemas import ProjectPatch, RoleIn
from crowdloop.server.sessions import COOKIE, csrf_ok, request_session
from crowdloop.server.web import plots
from crowdloop.server.web.common import LANG_COOKIE, LANGUAGES, PageError, language, page_caller, render, translator
from crowdloop.service import ROLES, LabelingService

router = APIRouter(include_in_schema=False)
MEASURES = {  # the anchoring measures (``crowdloop.models.prelabels.anchoring_effect``) and their messages
    "agreement with suggestion": "measure.agreement",
    "accuracy": "measure.accuracy",
    "agreement with a wrong suggestion": "measure.agreement_wrong",
    "anchoring rate on wrong suggestions": "measure.anchoring_rate",
    "median seconds (ratio shown / hidden)": "measure.seconds",
}
EVENTS_READ = 10_000  # the latest events the pages read for ban reasons, escalation reasons and the time plot


def same_site(request: Request) -> bool:
    """A form post from a page of this server (browsers send ``Sec-Fetch-Site`` or ``Origin``)."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return False
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def local_path(target: str | None) -> str:
    """``target`` when it is a path on this server (no open redirect), else ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@router.get("/")
async def home(request: Request, service: Service) -> Response:
    """Where the caller works: annotators label, reviewers review, owners see progress, the admin
    picks a project."""
    try:
        annotator = await session_annotator(request)
    except AuthError:
        return redirect("/signin")
    if annotator.project_id == await admin_project_id(request) and annotator.role == "owner":
        infos = [p for p in await call(service.list_projects) if p.name != ADMIN_PROJECT]
        return render(request, "projects.html", {"projects": infos, "me": annotator, "admin": True})
    page = {"annotator": "label", "reviewer": "review"}.get(annotator.role)
    return redirect(f"/p/{annotator.project_id}" + (f"/{page}" if page else ""))


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    return render(request, "signin.html", {})


@router.post("/signin")
async def signin(request: Request, service: Service, token: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Exchange a token for a session cookie (the token goes no further: not in a URL, not in a log)."""
    t = translator(language(request))
    if not same_site(request):
        return render(request, "signin.html", {"error": t("signin.cross_site")}, status=403)
    try:
        annotator, token_id = await call(service.authenticate_token, token.strip())
    except CrowdloopError:
        return render(request, "signin.html", {"error": t("signin.wrong")}, status=401)
    value, _ = request.app.state.sessions.issue(annotator.id, token_id)
    response = redirect("/")
    response.set_cookie(
        COOKIE, value, max_age=request.app.state.sessions.seconds, httponly=True, samesite="strict",
        secure=request.url.scheme == "https", path="/",
    )  # fmt: skip
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    session = request_session(request)
    if session is not None and not await csrf_ok(request, session):
        raise PageError(403, "this form needs the session's CSRF token")
    response = redirect("/signin")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/lang")
async def choose_language(
    request: Request, lang: Annotated[str, Form()], back: Annotated[str, Form(alias="next")] = "/"
) -> Response:
    """Keep the language chosen in a cookie (a year); a post from another site changes nothing."""
    response = redirect(local_path(back))
    if lang in LANGUAGES and same_site(request):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", path="/")
    return response


def _nav(caller: Any, project_id: int, page: str) -> dict[str, Any]:
    role = "owner" if caller.admin else caller.annotator.role
    return {"me": caller.annotator, "admin": caller.admin, "role": role, "project_id": project_id, "page": page}


async def _events(service: LabelingService, project_id: int) -> list[dict[str, Any]]:
    return await call(service.events, project_id, limit=EVENTS_READ)


@router.get("/p/{project_id:int}/label")
async def label_page(project_id: int, request: Request, service: Service) -> Response:
    """One task at a time (annotators and reviewers; the tasks come from the REST loop)."""
    try:
        caller = await page_caller(request, project_id, "annotator", "reviewer")
    except PageError:
        banned = await _banned_page(request, service, project_id)
        if banned is None:
            raise
        return banned
    info = await call(service.get_project, project_id)
    t = translator(language(request))
    data = {
        "project": project_id,
        "taxonomy": info.is_taxonomy,
        "labels": [str(x) for x in info.labels.labels],
        "messages": _script_messages(t),
    }
    return render(request, "label.html", {**_nav(caller, project_id, "label"), "project": info, "data": data})


async def _banned_page(request: Request, service: LabelingService, project_id: int) -> Response | None:
    """For a member of the project whom the quality checks (or the owner) stopped: why, from the
    event log (the API answers them 403 everywhere)."""
    session = request_session(request)
    if session is None:
        return None
    try:
        me = await call(service.token_annotator, session.token_id)  # the status now, not as cached
    except AuthError:  # the session's token is revoked: it signs in again
        return None
    if me.id != session.annotator_id or me.project_id != project_id or me.status == "active":
        return None
    t = translator(language(request))
    bans = [e for e in await _events(service, project_id) if e["kind"] == "banned" and e["annotator"] == me.name]
    reason = t(f"ban.{bans[0]['detail'].get('reason', '')}") if bans else None
    context = {"project": await call(service.get_project, project_id), "banned": True, "reason": reason}
    return render(request, "label.html", {**_nav(Caller(me, False), project_id, "label"), **context}, status=403)


def _script_messages(t: Any) -> dict[str, str]:
    """The messages the pages' scripts show (in the page's language)."""
    keys = (
        "js.no_tasks", "js.search", "js.skip", "js.submitted", "js.error", "js.top", "js.this_branch",
        "js.no_match", "js.queue_empty", "js.expired", "js.keys_taxonomy", "js.keys_flat", "js.disputed", "js.model",
    )  # fmt: skip
    return {key: t(key) for key in keys}


@router.get("/p/{project_id:int}/review")
async def review_page(project_id: int, request: Request, service: Service) -> Response:
    """Escalated and disputed items with the crowd's answers, the model's suggestions (its label, for
    a disputed item) and why they are there."""
    caller = await page_caller(request, project_id, "owner", "reviewer")
    info = await call(service.get_project, project_id)
    queue = await call(service.review_queue, project_id, limit=200)
    reasons: dict[str, str] = {}
    for event in await _events(service, project_id):  # newest first: the latest escalation's reason
        if event["kind"] == "escalated" and event["item"] is not None:
            reasons.setdefault(event["item"], (event["detail"] or {}).get("reason", ""))
    t = translator(language(request))
    data = {
        "project": project_id,
        "taxonomy": info.is_taxonomy,
        "labels": [str(x) for x in info.labels.labels],
        "queue": [
            {
                **asdict(task),
                "disputed": task.model_label is not None,
                "reason": task.reason or reasons.get(task.item, ""),
            }
            for task in queue
        ],
        "messages": _script_messages(t),
        "can_settle": not caller.admin,
    }
    return render(request, "review.html", {**_nav(caller, project_id, "review"), "project": info, "data": data})


@router.get("/p/{project_id:int}")
async def progress_page(project_id: int, request: Request, service: Service) -> Response:
    """Where the project stands, with plots: items by status, answers per item, confidence of the
    settled items, decisions over time."""
    caller = await page_caller(request, project_id, "owner")
    t = translator(language(request))
    info = await call(service.get_project, project_id)
    progress = await call(service.progress, project_id)
    rows = await call(lambda: list(service.results(project_id)))
    answers = np.fromiter((r.answers for r in rows), dtype=np.int64, count=len(rows))
    settled = np.fromiter(
        (r.confidence for r in rows if r.status in ("accepted", "reviewed") and r.confidence is not None), float
    )
    top = max(int(answers.max(initial=0)), info.policy.max_overlap) + 1
    statuses = {
        s: progress.status_counts.get(s, 0) for s in ("more", "accepted", "escalated", "disputed", "reviewed", "gold")
    }
    names = {s: t(f"status.{s}") for s in statuses}
    events = await _events(service, project_id)
    plots_ = {
        "status": plots.stacked_bar(statuses, names, t("progress.by_status")),
        "answers": plots.histogram(
            answers, np.arange(top + 1) - 0.5, t("progress.items"), t("progress.answers_per_item"), centres=True
        ),
        "confidence": plots.histogram(
            settled, np.linspace(0.5, 1.0, 11), t("progress.items"), t("progress.confidence"), "{:.2f}"
        ),
        "time": plots.lines(_decisions_over_time(events, names), t("progress.items"), t("progress.minutes")),
    }
    if progress.model_versions:
        plots_.update(_version_plots(progress.model_versions, t))
    plan = await _plan(service, project_id)
    if plan is not None:
        plots_["plan"] = _plan_plot(plan, t)
    models = await call(service.model_versions, project_id)
    context = {"project": info, "progress": progress, "plots": plots_, "models": models, "statuses": names,
               "plan": plan, "measures": {m: t(key) for m, key in MEASURES.items()}}  # fmt: skip
    return render(request, "progress.html", {**_nav(caller, project_id, "progress"), **context})


async def _plan(service: LabelingService, project_id: int) -> Any:
    """The learning curve and plan, or None while too few model versions exist to fit one."""
    try:
        return await call(service.plan, project_id)
    except ConflictError:
        return None


def _version_plots(versions: list[Any], t: Any) -> dict[str, Any]:
    """The project's own model over its versions, against the items settled when each was trained:
    accuracy on gold and the share of settled items it labelled; paid answers and cost per settled item."""
    ordered = sorted(versions, key=lambda v: v.created_at)
    settled = np.array([v.at_settled for v in ordered], dtype=np.float64)
    per_item = np.maximum(settled, 1.0)
    accurate = [(s, v.gold_accuracy) for s, v in zip(settled, ordered, strict=True) if v.gold_accuracy is not None]
    accuracy = (np.array([a for a, _ in accurate]), np.array([b for _, b in accurate]))
    automated = np.array([v.at_automated for v in ordered], dtype=np.float64) / per_item
    answers = np.array([v.at_answers for v in ordered], dtype=np.float64) / per_item
    cost = np.array([v.at_cost_per_item for v in ordered], dtype=np.float64)
    shares = {t("progress.gold_accuracy"): accuracy, t("progress.automated_share"): (settled, automated)}
    spending = {t("progress.answers_per_item"): (settled, answers), t("progress.cost_per_item"): (settled, cost)}
    return {
        "versions": plots.curves(shares, t("progress.share"), t("progress.settled"), high=1.0, marked=list(shares)),
        "spending": plots.curves(spending, t("progress.per_item"), t("progress.settled"), marked=list(spending)),
    }


def _plan_plot(plan: Any, t: Any) -> Any:
    """The learning curve: the versions' accuracy on gold against the labels they trained on, the
    fitted ``a - b n^-c`` out to the labels the target needs (or twice today's), and the target."""
    labels = np.array([p.labels for p in plan.points], dtype=np.float64)
    accuracy = np.array([p.accuracy for p in plan.points], dtype=np.float64)
    needed = plan.labels_needed.estimate
    far = max(float(labels.max()) * 2.0, float(needed or 0.0))
    n = np.linspace(float(labels.min()), far, 40)
    fitted = power_law(n, plan.curve["a"], plan.curve["b"], plan.curve["c"])
    series = {
        t("progress.measured"): (labels, accuracy),
        t("progress.fitted"): (n, fitted),
        t("progress.target"): (np.array([n[0], far]), np.full(2, plan.target)),
    }
    return plots.curves(series, t("progress.gold_accuracy"), t("progress.labels"), high=1.0,
                        marked=[t("progress.measured")])  # fmt: skip


def _decisions_over_time(
    events: list[dict[str, Any]], names: dict[str, str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Cumulative decisions of each kind against minutes since the first one read."""
    kinds = ("accepted", "escalated", "reviewed")
    chosen = [e for e in reversed(events) if e["kind"] in kinds and isinstance(e["at"], datetime)]
    if not chosen:
        return {names[k]: (np.empty(0), np.empty(0)) for k in kinds}
    times = np.array([e["at"].timestamp() for e in chosen])
    minutes = (times - times[0]) / 60.0
    kind = np.array([e["kind"] for e in chosen])
    return {names[k]: (minutes[kind == k], np.arange(1, int((kind == k).sum()) + 1)) for k in kinds}


def _annotator_rows(annotators: list[Any]) -> list[dict[str, Any]]:
    right = np.array([a.gold_right for a in annotators], dtype=np.float64)
    total = np.array([a.gold_total for a in annotators], dtype=np.float64)
    low, high = wilson_interval(right, total)
    return [{"a": a, "low": float(lo), "high": float(hi)} for a, lo, hi in zip(annotators, low, high, strict=True)]


async def _annotators_page(
    request: Request, service: LabelingService, caller: Any, project_id: int, **extra: Any
) -> Response:
    annotators = await call(service.annotator_skills, project_id)
    context = {"rows": _annotator_rows(annotators), "roles": ROLES, **extra}
    context["project"] = await call(service.get_project, project_id)
    return render(request, "annotators.html", {**_nav(caller, project_id, "annotators"), **context})


@router.get("/p/{project_id:int}/annotators")
async def annotators_page(project_id: int, request: Request, service: Service) -> Response:
    """Annotators with skill (and its 95% Wilson interval from the gold record), bans, roles and tokens."""
    caller = await page_caller(request, project_id, "owner")
    return await _annotators_page(request, service, caller, project_id)


@router.post("/p/{project_id:int}/annotators")
async def add_annotator(
    project_id: int,
    request: Request,
    service: Service,
    name: Annotated[str, Form()],
    role: Annotated[str, Form()] = "annotator",
) -> Response:
    """A new annotator; the token is shown on this page, once."""
    caller = await page_caller(request, project_id, "owner")
    try:
        body = projects.AnnotatorIn(name=name, role=role)
        made = await call(projects.add_annotator, project_id, body, caller, service)
    except (ValidationError, CrowdloopError) as exc:
        return await _annotators_page(request, service, caller, project_id, error=_error_text(exc))
    return await _annotators_page(request, service, caller, project_id, token=made)


@router.post("/p/{project_id:int}/annotators/{annotator_id:int}/{action}")
async def annotator_action(
    project_id: int,
    annotator_id: int,
    action: str,
    request: Request,
    service: Service,
    role: Annotated[str, Form()] = "",
) -> Response:
    """``role`` (promote or change), ``token`` (another token), ``revoke`` (every token), ``rotate``
    (revoke, then a new one): the REST routes' own functions."""
    caller = await page_caller(request, project_id, "owner")
    token = None
    try:
        if action == "role":
            await call(projects.set_role, project_id, annotator_id, RoleIn(role=role), caller, service, request)
        elif action in ("revoke", "rotate"):
            await call(projects.revoke_tokens, project_id, annotator_id, caller, service, request)
        elif action != "token":
            raise PageError(404, f"no action {action!r}")
        if action in ("token", "rotate"):
            token = await call(projects.new_token, project_id, annotator_id, caller, service)
    except (ValidationError, CrowdloopError) as exc:
        return await _annotators_page(request, service, caller, project_id, error=_error_text(exc))
    return await _annotators_page(request, service, caller, project_id, token=token, done=action)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
    return str(exc)


SETTINGS_FIELDS = {
    "name": ("name", str),
    "target": ("policy.target", float),
    "min_overlap": ("policy.min_overlap", int),
    "max_overlap": ("policy.max_overlap", int),
    "escalate_early": ("policy.escalate_early", bool),
    "partial": ("policy.partial", bool),
    "prior_accuracy": ("policy.prior_accuracy", float),
    "price_crowd": ("policy.prices.crowd", float),
    "price_expert": ("policy.prices.expert", float),
    "price_model": ("policy.prices.model", float),
    "label_value": ("policy.label_value", float),
    "gold_rate": ("gold_rate", float),
    "lease_seconds": ("lease_seconds", int),
    "model_votes": ("model_votes", bool),
    "suggestions": ("suggestions", int),
}
"""Form field -> where it goes in the API's ``ProjectPatch`` (the same validation as PATCH)."""


def _policy_bounds(path: str) -> Bounds | None:
    """The engine's declared bounds of the policy setting at ``path`` (None for other settings)."""
    *owner, name = path.split(".")
    settings = {("policy",): ConsensusPolicy, ("policy", "prices"): Prices}.get(tuple(owner))
    try:
        return None if settings is None else bounds_of(settings, name)
    except KeyError:
        return None


SETTINGS_BOUNDS = {field: _policy_bounds(path) for field, (path, _) in SETTINGS_FIELDS.items()}
"""Form field -> its bounds, for the field's help text and an empty optional field."""


def _settings_values(info: Any) -> dict[str, Any]:
    """The form's values: each field's setting of ``info`` (an empty text for a setting not used)."""
    values = {}
    for field, (path, _) in SETTINGS_FIELDS.items():
        value = info
        for part in path.split("."):
            value = getattr(value, part)
        values[field] = "" if value is None else value
    return values


def _patch_body(form: dict[str, str]) -> dict[str, Any]:
    """The form as the JSON body of PATCH /projects/{id} would be: unchecked boxes false, numbers
    as numbers, an optional setting left empty null (not used), anything else as the text sent
    (for the API's model to refuse with its message); a field the form lacks stays as it is."""
    body: dict[str, Any] = {}
    for field, (path, kind) in SETTINGS_FIELDS.items():
        if kind is not bool and field not in form:
            continue
        value: Any = field in form if kind is bool else form[field].strip()
        bounds = SETTINGS_BOUNDS[field]
        if value == "" and bounds is not None and bounds.optional:
            value = None
        elif kind in (int, float):
            value = _number(value)
        node = body
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return body


def _number(text: str) -> Any:
    """``text`` as the JSON number it spells, else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float) and not isinstance(value, bool) else text


@router.get("/p/{project_id:int}/settings")
async def settings_page(project_id: int, request: Request, service: Service) -> Response:
    caller = await page_caller(request, project_id, "owner")
    info = await call(service.get_project, project_id)
    context = {"project": info, "values": _settings_values(info), "fields": SETTINGS_FIELDS, "bounds": SETTINGS_BOUNDS}
    return render(request, "settings.html", {**_nav(caller, project_id, "settings"), **context})


@router.post("/p/{project_id:int}/settings")
async def save_settings(project_id: int, request: Request, service: Service) -> Response:
    """The policy fields through the API's own ``ProjectPatch`` and ``update_project``."""
    caller = await page_caller(request, project_id, "owner")
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    errors: dict[str, str] = {}
    updated = None
    try:
        body = ProjectPatch.model_validate(_patch_body(form))
        updated = await call(projects.update_project, project_id, body, caller, service)
    except ValidationError as exc:
        where = {path: field for field, (path, _) in SETTINGS_FIELDS.items()}
        for e in exc.errors(include_url=False):
            path = ".".join(str(p) for p in e["loc"])
            errors[where.get(path, "form")] = e["msg"]
    except CrowdloopError as exc:
        errors["form"] = str(exc)
    info = await call(service.get_project, project_id)
    values = {**_settings_values(info), **(form if errors else {})}
    if errors:
        for field, (_, kind) in SETTINGS_FIELDS.items():
            if kind is bool:
                values[field] = field in form
    context = {"project": info, "values": values, "fields": SETTINGS_FIELDS, "bounds": SETTINGS_BOUNDS,
               "errors": errors, "updated": updated}  # fmt: skip
    return render(
        request, "settings.html", {**_nav(caller, project_id, "settings"), **context}, status=422 if errors else 200
    )


async def _data_page(request: Request, service: LabelingService, caller: Any, project_id: int, **extra: Any):
    status = extra.pop("status", 200)
    info = await call(service.get_project, project_id)
    context = {"project": info, "formats": list(MEDIA), **extra}
    return render(request, "data.html", {**_nav(caller, project_id, "data"), **context}, status=status)


@router.get("/p/{project_id:int}/data")
async def data_page(project_id: int, request: Request, service: Service) -> Response:
    """Import (items, answers) and export (download buttons)."""
    caller = await page_caller(request, project_id, "owner")
    return await _data_page(request, service, caller, project_id)


@router.post("/p/{project_id:int}/data/{kind}")
async def upload(
    project_id: int,
    kind: str,
    request: Request,
    service: Service,
    file: Annotated[UploadFile, File()],
    format: Annotated[str, Form()] = "",
) -> Response:
    """An items or answers file through the REST upload routes' functions; their errors name the rows."""
    caller = await page_caller(request, project_id, "owner")
    limits = request.app.state.upload_limits
    try:
        if kind == "items":
            out = await call(
                projects.upload_items, project_id=project_id, caller=caller, service=service, limits=limits,
                file=file, format=format or None,
            )  # fmt: skip
        elif kind == "answers":
            out = await call(
                projects.upload_answers, project_id=project_id, caller=caller, service=service, limits=limits, file=file
            )
        else:
            raise PageError(404, f"no upload of {kind!r}")
    except CrowdloopError as exc:
        return await _data_page(request, service, caller, project_id, error=str(exc), status=400)
    return await _data_page(request, service, caller, project_id, imported=jsonable_encoder(out))


@router.get("/p/{project_id:int}/events")
async def events_page(project_id: int, request: Request, service: Service) -> Response:
    """The latest decisions of the event log."""
    caller = await page_caller(request, project_id, "owner")
    info = await call(service.get_project, project_id)
    events = await call(service.events, project_id, limit=300)
    return render(request, "events.html", {**_nav(caller, project_id, "events"), "project": info, "events": events})
