"""The service's database jobs from the command line: ``admin-token`` and ``refit``."""

from __future__ import annotations

from typer.testing import CliRunner

from crowdloop.cli import app
from crowdloop.consensus import ConsensusPolicy
from crowdloop.labels import LabelSpace
from crowdloop.server import ADMIN_PROJECT
from crowdloop.service import ItemIn, open_service


def test_admin_token_and_refit(tmp_path):
    db = tmp_path / "crowdloop.db"
    runner = CliRunner()
    first = runner.invoke(app, ["admin-token", "--db", str(db)])
    second = runner.invoke(app, ["admin-token", "--db", str(db)])
    assert first.exit_code == second.exit_code == 0, first.output
    tokens = [first.output.strip(), second.output.strip()]
    service = open_service(f"sqlite:///{db}", seed=0)
    try:
        admins = [service.authenticate(token) for token in tokens]  # both stay valid
        assert {a.role for a in admins} == {"owner"}
        assert {service.get_annotator(a.id).project_id for a in admins} == {service.get_project(ADMIN_PROJECT).id}
        # target 0.9: a second agreeing answer can reach it, cheaper than an expert
        project = service.create_project("p", LabelSpace(["a", "b"]), ConsensusPolicy(target=0.9), gold_rate=0.0)
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
