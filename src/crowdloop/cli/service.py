"""The labeling service: ``serve``, ``refit``, ``admin-token``."""

from __future__ import annotations

import os
import secrets
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
) -> None:
    """Run the labeling service: web pages at /, the REST API (docs at /docs). On first start it prints the admin
    token, which creates projects; keep it."""
    run(require_server)
    from crowdloop.server.app import MAX_BODY_VARIABLE, REQUEST_LOG_VARIABLE
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
    import uvicorn

    uvicorn.run(
        "crowdloop.server.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


@app.command()
def refit(
    db: DbOption = None,
    project: Annotated[str | None, typer.Option(help="Project id or name (default: every project).")] = None,
) -> None:
    """Full refit of annotator skills, model temperatures and calibration, then every open item
    re-decided (run it periodically, e.g. from cron). One refit of a project runs at a time: while
    another runs (the API's, or an earlier cron job's) this one stops with an error."""
    from crowdloop.service import refit_projects

    reports = run(lambda: refit_projects(existing_database(db), project))
    for report in reports:
        console.print(
            f"project {report.project_id}: {report.skill_model}, {report.annotators} annotators, "
            f"{report.items_redecided} items re-decided, calibrated={report.calibrated} ({report.seconds:.1f} s)",
            highlight=False,
        )


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
