"""The service's database jobs from the command line: ``admin-token``, ``refit`` and ``worker``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdloop.cli import app
from crowdloop.cli.service import WORKER_NICENESS
from crowdloop.consensus import ConsensusPolicy
from crowdloop.errors import AuthError
from crowdloop.labels import LabelSpace
from crowdloop.server import ADMIN_PROJECT
from crowdloop.server.process import ServerProcess
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
        policy = ConsensusPolicy(min_overlap=2, max_overlap=2, escalate_early=False)  # both answer every item
        project = service.create_project("p", LabelSpace(["a", "b"]), policy, gold_rate=0.0)
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


def test_the_server_writes_its_request_log_on_stderr(tmp_path, monkeypatch, capsys):
    """What ``crowdloop serve`` runs in each process logs every request on stderr (``--no-request-log``: none)."""
    import logging

    from fastapi.testclient import TestClient

    from crowdloop.server.app import REQUEST_LOG, REQUEST_LOG_VARIABLE, app_from_environment

    monkeypatch.setenv("CROWDLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'log.db'}")
    for setting, lines in (("0", 0), ("1", 1)):
        monkeypatch.setenv(REQUEST_LOG_VARIABLE, setting)
        app = app_from_environment()
        try:
            TestClient(app).get("/me", headers={"Authorization": "Bearer cl_a-token-nobody-has-0123456789"})
        finally:  # the logger as it was: later tests capture it their way
            app.state.service.close()
            handlers, REQUEST_LOG.handlers[:] = list(REQUEST_LOG.handlers), []
            REQUEST_LOG.propagate = True
            REQUEST_LOG.setLevel(logging.NOTSET)
        err = capsys.readouterr().err
        assert len([line for line in err.splitlines() if "GET /me 401" in line]) == lines, err
        assert "cl_a-token" not in err and (lines == 0 or handlers)


def test_refit_of_every_project_skips_one_whose_refit_runs_and_goes_on(tmp_path):
    """``crowdloop refit`` over every project: a project another refit holds is reported skipped,
    the projects after it are refit, and the exit code (75) says a refit was left to the other one."""
    from crowdloop.service.jobs import REFIT

    db = tmp_path / "crowdloop.db"
    service = open_service(f"sqlite:///{db}", seed=0)
    runner = CliRunner()
    try:
        policy = ConsensusPolicy(min_overlap=2, max_overlap=2, escalate_early=False)
        ids = []
        for name in ("first", "busy", "last"):
            project = service.create_project(name, LabelSpace(["a", "b"]), policy, gold_rate=0.0)
            service.import_items(project.id, [ItemIn(f"i{k}") for k in range(4)])
            for who in ("x", "y"):
                annotator, _ = service.add_annotator(project.id, who)
                while (task := service.next_task(annotator)) is not None:
                    service.submit(annotator, task.lease_id, "a")
            ids.append(project.id)
        first, busy, last = ids
        held = service.claim(busy, REFIT)  # a refit of "busy" runs (the API's, or an earlier cron job's)
        assert held is not None
        try:
            result = runner.invoke(app, ["refit", "--db", str(db)])
        finally:
            held.release()
        assert result.exit_code == 75, result.output
        assert f"project {first}: " in result.output and f"project {last}: " in result.output
        assert f"project {busy}: skipped" in result.output and "already running" in result.output
        refits = {p: [e for e in service.events(p) if e["kind"] == "refit"] for p in ids}
        assert refits[first] and refits[last] and not refits[busy]
        again = runner.invoke(app, ["refit", "--db", str(db)])  # nothing else runs now: every project refit
        assert again.exit_code == 0 and "skipped" not in again.output, again.output
        assert any(e["kind"] == "refit" for e in service.events(busy))
    finally:
        service.close()


def test_the_model_worker_yields_the_processor_to_the_server(tmp_path):
    """``crowdloop worker`` lowers its own CPU priority (what ``serve`` starts beside the server),
    so that training never slows the annotators' requests."""
    db = tmp_path / "crowdloop.db"
    open_service(f"sqlite:///{db}").close()
    command = [sys.executable, "-c", "from crowdloop.cli import app; app()", "worker", "--db", str(db), "--once"]
    done = subprocess.run([*command, "--nice", "3"], capture_output=True, text=True, timeout=120, check=True)
    idle = ", idle scheduling" if hasattr(os, "SCHED_IDLE") else ","
    assert f"nice {min(os.nice(0) + 3, 19)}{idle}" in " ".join(done.stderr.split())
    default = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    assert f"nice {min(os.nice(0) + WORKER_NICENESS, 19)}," in " ".join(default.stderr.split())


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _state(pid: int) -> str:
    """The process's state letter ("Z": exited, not yet reaped), or "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGKILL])
def test_the_model_worker_stops_when_its_server_is_gone(tmp_path, ending):
    """A SIGTERM to ``crowdloop serve`` alone (what a supervisor sends its main process): uvicorn
    shuts down and raises the signal again, so the server's own clean-up never stops the worker it
    started; after a SIGKILL nothing of the server runs at all. Either way the worker sees that its
    server is gone and stops by itself."""
    with ServerProcess(f"sqlite:///{tmp_path / 'crowdloop.db'}") as server:
        deadline = time.monotonic() + 30
        while not (workers := children(server._process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert workers, "serve started no model worker"
        os.kill(server._process.pid, ending)
        server._process.wait(30)
        deadline = time.monotonic() + 30
        while any(_state(w) not in ("", "Z") for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [w for w in workers if Path(f"/proc/{w}").exists() and _state(w) != "Z"]
        for w in alive:  # never leave one behind, whatever the outcome
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)
        assert not alive, "the model worker outlived its server"
