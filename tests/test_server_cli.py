"""The service's database jobs from the command line: ``admin-token`` and ``refit``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from crowdloop.cli import app
from crowdloop.errors import AuthError
from crowdloop.labels import LabelSpace
from crowdloop.server import ADMIN_PROJECT
from crowdloop.service import ItemIn, open_service


def test_admin_token_and_refit(tmp_path):
    db = tmp_path / "crowdloop.db"
    runner = CliRunner()
    first = runner.invoke(app, ["admin-token", "--db", str(db)])
    second = runner.invoke(app, ["admin-token", "--db", str(db)])
    assert first.exit_code == second.exit_code == 0, first.output
    old, new = first.output.strip(), second.output.strip()
    service = open_service(f"sqlite:///{db}", seed=0)
    try:
        with pytest.raises(AuthError):  # rotation: the new token replaces the old one
            service.authenticate(old)
        admin = service.authenticate(new)
        assert admin.role == "owner" and admin.project_id == service.get_project(ADMIN_PROJECT).id
        revoked = runner.invoke(app, ["revoke-token", "--db", str(db), new])
        assert revoked.exit_code == 0 and "admin" in revoked.output, revoked.output
        with pytest.raises(AuthError):
            service.authenticate(new)
        again = runner.invoke(app, ["revoke-token", "--db", str(db), new])
        assert again.exit_code == 1 and "error:" in again.output
        project = service.create_project("p", LabelSpace(["a", "b"]), gold_rate=0.0)
        service.import_items(project.id, [ItemIn(f"i{k}") for k in range(6)])
        for name in ("x", "y"):
            annotator, _ = service.add_annotator(project.id, name)
            while (task := service.next_task(annotator)) is not None:
                service.submit(annotator, task.lease_id, "a")
    finally:
        service.close()
    refit = runner.invoke(app, ["refit", "--db", str(db), "--project", "p"])
    assert refit.exit_code == 0, refit.output
    assert f"project {project.id}:" in refit.output and "2 annotators" in refit.output
    missing = runner.invoke(app, ["refit", "--db", str(db), "--project", "nope"])
    assert missing.exit_code == 1 and "error:" in missing.output
