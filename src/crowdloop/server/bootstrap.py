"""The first token: the admin, owner of the reserved project that holds no items."""

from __future__ import annotations

from crowdloop.errors import NotFoundError
from crowdloop.labels import LabelSpace
from crowdloop.server.auth import ADMIN_PROJECT
from crowdloop.service import LabelingService


def ensure_admin(service: LabelingService) -> str | None:
    """Create the admin on first start; returns its token then (to print once), None afterwards."""
    try:
        service.get_project(ADMIN_PROJECT)
    except NotFoundError:
        project = service.create_project(ADMIN_PROJECT, LabelSpace(["admin"]), gold_rate=0.0)
        return service.add_annotator(project.id, "admin", role="owner")[1]
    return None


def new_admin_token(service: LabelingService) -> str:
    """A new admin token that replaces every earlier one (lost or leaked: they stop working);
    creates the admin if there is none yet. Servers that remember a token (``TokenCache``) accept
    the old one for a few seconds more."""
    token = ensure_admin(service)
    if token is not None:
        return token
    project = service.get_project(ADMIN_PROJECT)
    admin = next(a for a in service.annotator_skills(project.id) if a.role == "owner")
    return service.rotate_token(admin.id)
