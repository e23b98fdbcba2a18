"""Load on the labeling service over HTTP: simulated annotators against a real ``crowdloop serve``.

Each run starts a server in a child process on a fresh database (SQLite file; PostgreSQL schema on
127.0.0.1:5432, skipped when it does not answer), creates a project on the shipped retail taxonomy
(34 labels) with ``--items`` items (10% gold, gold rate 0.1, target 0.9, overlap 1-3), and lets
``--clients`` simulated annotators (asyncio + httpx on loopback, each 80% right, no think time)
loop next task -> submit for ``--seconds``. It reports acknowledged submits per second and the
p50/p99 latency of next-task and submit, the median over ``--runs`` runs, for SQLite with one
process and PostgreSQL with 1 and 2 processes. Then a profile (cProfile) of the same request
path in-process says where the time of a request goes: database, serialization, consensus, HTTP.

    python bench/bench_service.py
    python bench/bench_service.py --runs 3 --seconds 10 --clients 16 --configs sqlite:1,postgresql:2
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import RESULTS, command_line, machine_lines, markdown_table, median, write_results

POSTGRES_URL = os.environ.get("CROWDLOOP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def taxonomy_lines() -> list[str]:
    path = Path(str(resources.files("crowdloop") / "examples" / "example_taxonomy.txt"))
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def fresh_database(kind: str, folder: Path) -> tuple[str, Any]:
    """A URL to an empty database and a function that drops it."""
    if kind == "sqlite":
        path = folder / f"{uuid.uuid4().hex}.db"
        return f"sqlite:///{path}", lambda: [p.unlink(missing_ok=True) for p in folder.glob(path.name + "*")]
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()

    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", drop


def postgres_unavailable() -> str | None:
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            connection.exec_driver_sql("select 1")
        engine.dispose()
    except Exception as exc:  # any failure means: skip PostgreSQL, saying why
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def setup_project(base: str, admin: str, n_items: int, n_clients: int, seed: int) -> dict[str, Any]:
    """The project, its items (with their true labels kept here) and one token per client."""
    rng = np.random.default_rng(seed)
    labels = taxonomy_lines()
    with httpx.Client(base_url=base, timeout=120) as client:
        made = client.post(
            "/projects",
            headers={"Authorization": f"Bearer {admin}"},
            json={
                "name": "bench",
                "taxonomy": labels,
                "gold_rate": 0.1,
                "policy": {"target": 0.9, "min_overlap": 1, "max_overlap": 3},
            },
        )
        made.raise_for_status()
        pid, owner = made.json()["project"]["id"], made.json()["owner"]["token"]
        auth = {"Authorization": f"Bearer {owner}"}
        leaves = [label for label in labels if not any(other.startswith(label + " > ") for other in labels)]
        truth = {f"i{k:06d}": leaves[int(rng.integers(len(leaves)))] for k in range(n_items)}
        items = [
            {"id": item, "data": {"title": f"product {item}"}, "gold": label if k % 10 == 0 else None}
            for k, (item, label) in enumerate(truth.items())
        ]
        for start in range(0, len(items), 5000):
            client.post(f"/projects/{pid}/items", headers=auth, json={"items": items[start : start + 5000]})
        tokens = [
            client.post(f"/projects/{pid}/annotators", headers=auth, json={"name": f"a{k}"}).json()["token"]
            for k in range(n_clients)
        ]
    return {"pid": pid, "truth": truth, "labels": leaves, "tokens": tokens}


async def annotator(base: str, project: dict[str, Any], token: str, until: float, seed: int, out: dict) -> None:
    rng = np.random.default_rng(seed)
    pid, truth, labels = project["pid"], project["truth"], project["labels"]
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        while time.perf_counter() < until:
            start = time.perf_counter()
            task = await client.post(f"/projects/{pid}/tasks/next")
            out["next"].append(time.perf_counter() - start)
            if task.status_code != 200:
                out["no_task" if task.status_code == 204 else "errors"] += 1
                await asyncio.sleep(0.05)
                continue
            body = task.json()
            right = rng.random() < 0.8
            label = truth[body["item"]] if right else labels[int(rng.integers(len(labels)))]
            start = time.perf_counter()
            answer = await client.post(f"/projects/{pid}/tasks/{body['lease_id']}/submit", json={"label": label})
            out["submit"].append(time.perf_counter() - start)
            if answer.status_code == 200:
                out["submits"] += 1
            else:
                out["errors"] += 1


async def load(base: str, project: dict[str, Any], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"next": [], "submit": [], "submits": 0, "errors": 0, "no_task": 0}
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(*(annotator(base, project, t, until, k, out) for k, t in enumerate(project["tokens"])))
    out["seconds"] = time.perf_counter() - start
    return out


def group_cpu_seconds(group: int) -> float:
    """CPU seconds (user + system) used so far by the processes of a process group (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # fields after the name: state, ppid, pgrp, ..., utime at 11, stime at 12
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def one_run(kind: str, workers: int, args: argparse.Namespace, folder: Path, seed: int) -> dict[str, Any]:
    from crowdloop.server.process import ServerProcess

    url, drop = fresh_database(kind, folder)
    try:
        with ServerProcess(url, workers=workers) as server:
            project = setup_project(server.base_url, server.admin_token, args.items, args.clients, seed)
            group = server.process_group
            load_before, cpu_before, server_before = os.getloadavg()[0], time.process_time(), group_cpu_seconds(group)
            result = asyncio.run(load(server.base_url, project, args.seconds))
            result["client_cpu"] = (time.process_time() - cpu_before) / result["seconds"]
            result["server_cpu_ms_per_submit"] = (
                (group_cpu_seconds(group) - server_before) / max(result["submits"], 1) * 1000
            )
            result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
    finally:
        drop()
    ms = {name: np.asarray(result.pop(name)) * 1000 for name in ("next", "submit")}
    return {
        "submits_per_s": result["submits"] / result["seconds"],
        "next_p50_ms": float(np.percentile(ms["next"], 50)) if ms["next"].size else float("nan"),
        "next_p99_ms": float(np.percentile(ms["next"], 99)) if ms["next"].size else float("nan"),
        "submit_p50_ms": float(np.percentile(ms["submit"], 50)) if ms["submit"].size else float("nan"),
        "submit_p99_ms": float(np.percentile(ms["submit"], 99)) if ms["submit"].size else float("nan"),
        **result,
    }


GROUPS = (
    ("database (SQLAlchemy, driver, store)", ("sqlalchemy", "sqlite3", "psycopg", "crowdloop/store/")),
    ("serialization (pydantic, JSON)", ("pydantic", "json", "crowdloop/server/schemas")),
    ("consensus (engine, NumPy)", ("crowdloop/consensus", "crowdloop/aggregation", "numpy", "scipy")),
    ("service logic", ("crowdloop/service",)),
)


def profile(n_cycles: int, folder: Path) -> dict[str, float]:
    """Share of the CPU time (own time of each function) by part, over ``n_cycles`` next-task +
    submit cycles on SQLite, run in this thread as a route runs them: authenticate the token, call
    the service, validate the response model and encode the JSON (the HTTP framework's share is
    the rest of the latency; it runs in other threads, which cProfile does not see)."""
    from sqlalchemy import event

    from crowdloop.labels import Taxonomy
    from crowdloop.server import ensure_admin
    from crowdloop.server.schemas import SubmitOut, TaskOut
    from crowdloop.service import open_service

    url, drop = fresh_database("sqlite", folder)
    service = open_service(url, seed=0)
    statements = dict.fromkeys(("next", "submit"), 0)
    phase = ["setup"]

    @event.listens_for(service.engine, "before_cursor_execute")
    def count(*_: Any) -> None:
        if phase[0] in statements:
            statements[phase[0]] += 1

    try:
        ensure_admin(service)
        labels = taxonomy_lines()
        project = service.create_project("p", Taxonomy.from_paths(labels), gold_rate=0.1)
        from crowdloop.service import ItemIn

        leaves = labels[-10:]
        rows = [ItemIn(f"i{k}", {"title": f"product {k}"}, gold=leaves[k % 10] if k % 50 == 0 else None)
                for k in range(2000)]  # fmt: skip
        service.import_items(project.id, rows)
        tokens = [service.add_annotator(project.id, f"a{k}")[1] for k in range(8)]

        def cycles(offset: int) -> float:
            start = time.process_time()
            for k in range(offset, offset + n_cycles):
                annotator = service.authenticate(tokens[k % len(tokens)])
                phase[0] = "next"
                task = service.next_task(annotator)
                phase[0] = "auth"
                if task is None:
                    continue
                TaskOut.model_validate(task).model_dump_json()
                annotator = service.authenticate(tokens[k % len(tokens)])
                phase[0] = "submit"
                out = service.submit(annotator, task.lease_id, leaves[int(task.item[1:]) % 10])  # the true label
                phase[0] = "auth"
                SubmitOut.model_validate(out).model_dump_json()
            return time.process_time() - start

        cpu = cycles(0)  # without the profiler (the statements of these cycles are counted)
        per_cycle = {f"{k}_statements": v / n_cycles for k, v in statements.items()}
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        cycles(n_cycles)
        profiler.disable()
    finally:
        service.close()
        drop()
    stats = pstats.Stats(profiler)
    shares = dict.fromkeys([name for name, _ in GROUPS] + ["other"], 0.0)
    total = 0.0
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += own
        where = f"{filename}:{function}"
        group = next((name for name, keys in GROUPS if any(key in where for key in keys)), "other")
        shares[group] += own
    others = sorted(((own, f"{Path(f).name}:{fn}") for (f, _, fn), (_, _, own, _, _) in stats.stats.items()
                     if not any(key in f"{f}:{fn}" for _, keys in GROUPS for key in keys)), reverse=True)  # fmt: skip
    top_other = ", ".join(f"{name} {own / total:.0%}" for own, name in others[:5])
    shares = {k: v / total for k, v in shares.items()}
    return {"cycle_cpu_ms": cpu / n_cycles * 1000, **shares, "top_other": top_other, **per_cycle}


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: median([r[key] for r in runs]) for key in runs[0] if isinstance(runs[0][key], float | int)}


def render(payload: dict[str, Any]) -> str:
    """The Markdown report of a result payload (``--render`` redoes it from service.json)."""
    settings, shares = payload["settings"], payload["profile"]
    rows = []
    for name, runs in payload["configs"].items():
        if isinstance(runs, str):
            rows.append([name, "skipped: " + runs, "", "", "", "", "", "", "", ""])
            continue
        med = summary(runs)
        rows.append([
            name, f"{med['submits_per_s']:.0f}", f"{med['next_p50_ms']:.1f}", f"{med['next_p99_ms']:.1f}",
            f"{med['submit_p50_ms']:.1f}", f"{med['submit_p99_ms']:.1f}", f"{med['errors']:.0f}",
            f"{med.get('server_cpu_ms_per_submit', float('nan')):.1f}", f"{med.get('client_cpu', float('nan')):.0%}",
            f"{med['load_before']:.1f} / {med['load_after']:.1f}",
        ])  # fmt: skip
    headers = ["server", "submits/s", "next p50 ms", "next p99 ms", "submit p50 ms", "submit p99 ms", "errors",
               "server CPU ms per next + submit", "load generator CPU (of one core)",
               "load avg before / after"]  # fmt: skip
    parts = ", ".join(f"{k} {v:.0%}" for k, v in shares.items() if k in dict(GROUPS) or k == "other")
    counted = (
        f" SQL statements per call (SQLAlchemy cursor events, BEGIN included): next task "
        f"{shares['next_statements']:.1f}, submit {shares['submit_statements']:.1f}."
        if "next_statements" in shares
        else ""
    )
    verdict = []
    sqlite = payload["configs"].get("sqlite, 1 process")
    if isinstance(sqlite, list):
        med = summary(sqlite)
        met = med["submits_per_s"] >= 300 and max(med["next_p99_ms"], med["submit_p99_ms"]) < 50
        verdict = [
            f"Target (>= 300 submits/s with p99 < 50 ms on SQLite, more on PostgreSQL with 2 processes): "
            f"{'met' if met else 'not met'} in this run: SQLite gave {med['submits_per_s']:.0f} submits/s with "
            f"p99 {med['next_p99_ms']:.0f} ms (next) and {med['submit_p99_ms']:.0f} ms (submit), at a load average "
            f"of {med['load_before']:.0f} on 2 cores. The server's own CPU, measured from outside, is "
            f"{med['server_cpu_ms_per_submit']:.1f} ms per next + submit cycle (HTTP included): one uncontended "
            f"core would serve about {1000 / med['server_cpu_ms_per_submit']:.0f} cycles/s; the server used "
            f"{med['submits_per_s'] * med['server_cpu_ms_per_submit'] / 10:.0f}% of one core during the run, the "
            f"load generator {med['client_cpu']:.0%}, and the rest of the machine went to other jobs. The request "
            f"path in one thread without HTTP takes {shares['cycle_cpu_ms']:.1f} ms of CPU per cycle.",
            "",
        ]
    return "\n".join([
        "# Labeling service under load",
        "",
        f"`{payload['command']}`",
        "",
        f"{settings['clients']} simulated annotators (asyncio + httpx on loopback, no think time) loop next task -> "
        f"submit for {settings['seconds']:.0f} s against `crowdloop serve` on a fresh database; project on the "
        f"shipped 34-label taxonomy, {settings['items']} items, gold rate 0.1, target 0.9, overlap 1-3. Medians "
        f"over {settings['runs']} runs; the load generator runs on the same 2 cores as the server.",
        "",
        markdown_table(headers, rows),
        "",
        "Where the time of one next task + submit goes (cProfile of the route's work: token, service call, "
        f"response model and JSON; own CPU time by module, {settings['profile_cycles']} cycles on SQLite in one "
        f"thread, {shares['cycle_cpu_ms']:.1f} ms of CPU per cycle without the profiler): {parts} (the largest "
        f"others: {shares['top_other']}).{counted}",
        "",
        *verdict,
        *machine_lines({}),
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="sqlite:1,postgresql:1,postgresql:2", help="database:processes,...")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--profile-cycles", type=int, default=300)
    parser.add_argument("--render", action="store_true", help="Only redo the Markdown from results/service.json.")
    args = parser.parse_args()
    if args.render:
        payload = json.loads((RESULTS / "service.json").read_text())
        write_results("service", render(payload), payload)
        return
    folder = Path(tempfile.gettempdir()) / "crowdloop-bench-service"
    folder.mkdir(parents=True, exist_ok=True)
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    pg_reason = postgres_unavailable() if any(kind == "postgresql" for kind, _ in configs) else None
    settings = {k: v for k, v in vars(args).items() if k != "render"}
    payload: dict[str, Any] = {"command": command_line("bench_service.py"), "settings": settings, "configs": {}}
    for kind, workers in configs:
        name = f"{kind}, {workers} process{'es' if workers > 1 else ''}"
        if kind == "postgresql" and pg_reason:
            payload["configs"][name] = pg_reason
            continue
        payload["configs"][name] = [one_run(kind, workers, args, folder, seed) for seed in range(args.runs)]
        print(name, {k: round(v, 2) for k, v in summary(payload["configs"][name]).items()}, flush=True)
    payload["profile"] = profile(args.profile_cycles, folder)
    markdown = render(payload)
    print(markdown)
    write_results("service", markdown, payload)


if __name__ == "__main__":
    main()
