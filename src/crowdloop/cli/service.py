"""The labeling service: ``serve``, ``refit``, ``admin-token``."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from crowdloop.cli.common import app, console, run
from crowdloop.errors import ConfigError

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database: a SQLite file or a SQLAlchemy URL (postgresql+psycopg://...). "
        "Default: $CROWDLOOP_DATABASE_URL, else ./crowdloop.db.",
    ),
]


def require_server() -> None:
    """The labeling service's dependencies, or one error line saying how to install them."""
    try:
        import alembic  # noqa: F401
        import fastapi  # noqa: F401
        import jinja2  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the labeling service needs {exc.name or 'its server dependencies'}: pip install 'crowdloop[server]'"
        ) from None


def existing_database(db: str | None) -> str:
    """``database_url(db)``, refused when it names an SQLite file that does not exist (only
    ``serve`` and ``admin-token`` create a database)."""
    require_server()
    from sqlalchemy.engine import make_url

    url = database_url(db)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        raise ConfigError(
            f"no database at {parsed.database}: `crowdloop serve` (or `crowdloop admin-token`) creates it; "
            "or give --db (or $CROWDLOOP_DATABASE_URL)"
        )
    return url


WORKER_NICENESS = 10
"""How much lower than the server's the model worker's CPU priority is (``service.worker.lower_priority``)."""
PARENT_VARIABLE = "CROWDLOOP_WORKER_PARENT"
"""The process id of the ``crowdloop serve`` that started a model worker, in the worker's
environment: the worker stops when that process is gone (``ModelWorker.orphaned``)."""


class WorkerMode(StrEnum):
    process = "process"
    thread = "thread"


def database_url(db: str | None) -> str:
    """``--db`` as a URL (a plain path is a SQLite file), else the environment, else ./crowdloop.db."""
    from crowdloop.service import DEFAULT_URL, URL_VARIABLE

    if db is None:
        return os.environ.get(URL_VARIABLE) or DEFAULT_URL
    return db if "://" in db else f"sqlite:///{Path(db)}"


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (PostgreSQL for more than one).")] = 1,
    demo: Annotated[bool, typer.Option("--demo", help="Load a demo project and print its tokens.")] = False,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body, in MiB.")] = 64.0,
    request_log: Annotated[
        bool, typer.Option(help="One line per request on stderr: method, path, status, milliseconds.")
    ] = True,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Train each project's model in the background.")
    ] = True,
    worker_mode: Annotated[
        WorkerMode, typer.Option(help="Run the model worker in a process of its own or in a thread of the server.")
    ] = WorkerMode.process,
) -> None:
    """Run the labeling service: web pages at /, the REST API (docs at /docs). On first start it
    prints the admin token, which creates projects; keep it. A background worker trains each
    project's model and labels the items it is sure of: by default a ``crowdloop worker`` process
    beside the server (training holds Python's interpreter lock; in a thread it would slow the
    requests), or a thread of the server (``--worker-mode thread``); ``--no-worker``: none (run
    ``crowdloop worker`` yourself)."""
    run(require_server)
    from crowdloop.server.app import MAX_BODY_VARIABLE, REQUEST_LOG_VARIABLE, WORKER_VARIABLE
    from crowdloop.server.bootstrap import ensure_admin
    from crowdloop.server.demo import load_demo
    from crowdloop.server.sessions import SECRET_VARIABLE
    from crowdloop.service import URL_VARIABLE, open_service

    url = database_url(db)

    def prepare() -> None:
        service = open_service(url)
        try:
            token = ensure_admin(service)
            if token:
                console.print(f"admin token (shown once, keep it): [bold]{token}[/]", highlight=False)
            if demo:
                loaded = load_demo(service)
                console.print(
                    f"demo project {loaded.project_id}: {loaded.items} items ({loaded.gold} gold); tokens:",
                    highlight=False,
                )
                for name, value in loaded.tokens.items():
                    console.print(f"  {name:9s} {value}", highlight=False)
        finally:
            service.close()

    run(prepare)
    if url.startswith("sqlite") and workers > 1:
        console.print("[yellow]note:[/] SQLite serializes writes; use PostgreSQL for several workers")
    console.print(f"serving {_safe(url)} on http://{host}:{port} (pages: /, API docs: /docs)")
    os.environ[URL_VARIABLE] = url
    os.environ[MAX_BODY_VARIABLE] = str(int(max_body_mb * 1024 * 1024))
    os.environ.setdefault(SECRET_VARIABLE, secrets.token_hex(32))  # one secret for every worker's sessions
    os.environ[REQUEST_LOG_VARIABLE] = "1" if request_log else "0"
    os.environ[WORKER_VARIABLE] = "1" if worker and worker_mode == WorkerMode.thread else "0"
    import uvicorn

    child = None
    if worker and worker_mode == WorkerMode.process:
        command = [sys.executable, "-c", "from crowdloop.cli import app; app()", "worker", "--db", url]
        parent = {PARENT_VARIABLE: str(os.getpid())}  # the worker stops when this process is gone
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, env={**os.environ, **parent})
    try:
        uvicorn.run(
            "crowdloop.server.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
    finally:
        if child is not None:
            child.terminate()
            child.wait(30)


BUSY_EXIT = 75
"""``crowdloop refit``'s exit code when it skipped a project whose refit was already running
(sysexits' EX_TEMPFAIL: nothing failed, try again later)."""


@app.command()
def refit(
    db: DbOption = None,
    project: Annotated[str | None, typer.Option(help="Project id or name (default: every project).")] = None,
) -> None:
    """Full refit of annotator skills, model temperatures and calibration, then every open item
    re-decided (run it periodically, e.g. from cron). One refit of a project runs at a time: a
    project whose refit is already running (the API's, or an earlier cron job's) is reported
    skipped, and the other projects are refit. Exit code: 0 when every project was refit, 75
    (EX_TEMPFAIL: try again later) when one was skipped, 1 on an error."""
    from crowdloop.service import RefitSkipped, refit_projects

    reports = run(lambda: refit_projects(existing_database(db), project))
    for report in reports:
        if isinstance(report, RefitSkipped):
            console.print(f"project {report.project_id}: skipped, {report.reason}", highlight=False)
            continue
        console.print(
            f"project {report.project_id}: {report.skill_model}, {report.annotators} annotators, "
            f"{report.items_redecided} items re-decided, calibrated={report.calibrated} ({report.seconds:.1f} s)",
            highlight=False,
        )
    if any(isinstance(report, RefitSkipped) for report in reports):
        raise typer.Exit(BUSY_EXIT)


@app.command("worker")
def model_worker(
    db: DbOption = None,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between passes over the projects.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="Lower the priority of the worker's threads by this much (Unix nice; Linux: idle "
            "scheduling too); 0: the server's priority.",
        ),
    ] = WORKER_NICENESS,
) -> None:
    """Train each project's model, predict its open items and label the ones it is sure of, as a
    process of its own (beside servers started with --no-worker; one job per project at a time,
    whatever the number of workers). Every thread of it runs at a lower CPU priority (``--nice``;
    on Linux also idle scheduling: only when no other thread wants the core) so that training yields
    the processor to the server's requests: annotators never wait for the model. Ctrl-C
    stops it; a job cut short resumes on the next start."""
    from crowdloop.service import open_service
    from crowdloop.service.worker import ModelWorker, freeze_startup_heap, lower_priority

    priority = lower_priority(nice)
    parent = os.environ.get(PARENT_VARIABLE)  # started by crowdloop serve: stop with it

    def job() -> None:
        service = open_service(database_url(db))
        worker = ModelWorker(service, interval=interval, parent=int(parent) if parent else None)
        freeze_startup_heap()
        console.print(f"model worker on {_safe(database_url(db))} (process {os.getpid()}, {priority})", highlight=False)
        try:
            if once:
                reports = worker.run_once()
            else:
                worker.run_forever()
                reports = []
            for r in reports:
                console.print(
                    f"project {r.project_id}: version {r.version} {r.state}, {r.training_size} labels, "
                    f"gold accuracy {_figure(r.gold_accuracy)}, {r.automated} labelled by the model, "
                    f"{r.audited} audited ({r.seconds:.1f} s)",
                    highlight=False,
                )
        except KeyboardInterrupt:
            worker.stop()
        finally:
            service.close()

    run(job)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@app.command("admin-token")
def admin_token(db: DbOption = None) -> None:
    """Print a new admin token; every earlier one stops working (creates the admin on a new database)."""
    run(require_server)
    from crowdloop.server.bootstrap import new_admin_token
    from crowdloop.service import open_service

    def job() -> str:
        service = open_service(database_url(db))
        try:
            return new_admin_token(service)
        finally:
            service.close()

    typer.echo(run(job))


@app.command("revoke-token")
def revoke_token(
    token: Annotated[str, typer.Argument(help="The token to revoke (the admin's or any member's).")],
    db: DbOption = None,
) -> None:
    """Revoke one API token, e.g. a leaked one (the admin's: `crowdloop admin-token` gives a new one)."""

    def job():
        from crowdloop.service import open_service

        service = open_service(existing_database(db))
        try:
            return service.revoke_token(token)
        finally:
            service.close()

    who = run(job)
    console.print(f"revoked a token of {who.name!r} ({who.role}, project {who.project_id})", highlight=False)


def _safe(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
