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
        answered = service.answers_frame(project.id)["worker"].nunique()
    finally:
        service.close()
    refit = runner.invoke(app, ["refit", "--db", str(db), "--project", "p"])
    assert refit.exit_code == 0, refit.output
    assert f"project {project.id}:" in refit.output and f"{answered} annotators" in refit.output
    missing = runner.invoke(app, ["refit", "--db", str(db), "--project", "nope"])
    assert missing.exit_code == 1 and "error:" in missing.output


def test_serve_without_the_server_extra_says_how_to_install_it(monkeypatch):
    """``pip install crowdloop`` without ``[server]``: one line naming the extra, not a traceback."""
    import sys

    for name in [m for m in sys.modules if m == "crowdloop.server" or m.startswith("crowdloop.server.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if it were not installed
    result = CliRunner().invoke(app, ["serve", "--db", "unused.db"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'crowdloop[server]'" in lines[0], result.output


def test_commands_that_need_a_database_refuse_to_create_one(tmp_path, monkeypatch):
    """``crowdloop refit`` in an empty folder says there is no database instead of making one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CROWDLOOP_DATABASE_URL", raising=False)
    for command in (["refit"], ["revoke-token", "cl_" + "x" * 40]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1 and "no database" in result.output and "crowdloop serve" in result.output
    assert not list(tmp_path.iterdir())


def test_the_demo_is_the_same_after_a_restart(tmp_path):
    """``serve --demo`` twice: the same project and items; the new tokens replace the old ones."""
    from crowdloop.server.demo import load_demo

    service = open_service(f"sqlite:///{tmp_path / 'demo.db'}", seed=0)
    try:
        first, second = load_demo(service), load_demo(service)
        assert (first.project_id, first.items, first.gold) == (second.project_id, second.items, second.gold)
        assert first.items == 60 and first.gold == 10
        assert first.tokens.keys() == second.tokens.keys() == {"owner", "reviewer", "alice", "bob"}
        for name in first.tokens:
            with pytest.raises(AuthError):
                service.authenticate(first.tokens[name])
            assert service.authenticate(second.tokens[name]).name == name
    finally:
        service.close()
