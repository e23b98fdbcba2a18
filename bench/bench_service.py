"""Load on the labeling service over HTTP: simulated annotators against a real ``crowdloop serve``.

Each run starts a server in a child process on a fresh database (SQLite file; PostgreSQL schema on
127.0.0.1:5432, skipped when it does not answer), creates a project on the shipped retail taxonomy
(34 labels) with ``--items`` items (10% gold, gold rate 0.1, target 0.9, overlap 1-3), and lets
simulated annotators (asyncio + aiohttp on loopback, each 80% right) work for ``--seconds``:
asking for a task and answering it in two requests (*separate*) or answering with ``?next=true``,
which returns the next task (*combined*); without pauses (``--clients`` annotators, the server
saturated) or with answers arriving at a rate (``--paced-clients`` annotators, open loop).
It reports acknowledged answers per second, p50/p99 latency of next-task and submit and the
server's CPU per answer, the median over ``--runs`` runs, for SQLite with one process and
PostgreSQL with 1 and 2 processes; then py-spy samples one SQLite server to say where its time
goes (database, consensus, service, HTTP), and SQLite's trace counts the statements per call.
The server trains the project's model beside the loop (its model worker, a process of its own in
the same process group, whose CPU counts to the server's); ``--no-worker`` measures the loop alone.
The extra tools: ``pip install -r bench/requirements-service.txt`` (aiohttp, py-spy).

    python bench/bench_service.py
    python bench/bench_service.py --runs 3 --seconds 10 --configs sqlite:1,postgresql:2 --loads combined@300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
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


class Annotator:
    """One simulated annotator (80% right), holding at most one leased task."""

    def __init__(self, session: aiohttp.ClientSession, project: dict[str, Any], token: str, seed: int) -> None:
        self.session, self.project = session, project
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rng = np.random.default_rng(seed)
        self.task: dict | None = None

    async def answer(self, combined: bool, out: dict) -> bool:
        """Lease a task unless one is held, then answer it: two requests ("separate"), or one
        ("combined": the answer with ``?next=true`` returns the next task). False: no task."""
        pid = self.project["pid"]
        if self.task is None:
            start = time.perf_counter()
            async with self.session.post(f"/projects/{pid}/tasks/next", headers=self.headers) as reply:
                self.task = await reply.json() if reply.status == 200 else None
            out["next"].append(time.perf_counter() - start)
            if self.task is None:
                out["no_task" if reply.status == 204 else "errors"] += 1
                return False
        truth, labels = self.project["truth"], self.project["labels"]
        right = self.rng.random() < 0.8
        label = truth[self.task["item"]] if right else labels[int(self.rng.integers(len(labels)))]
        url = f"/projects/{pid}/tasks/{self.task['lease_id']}/submit" + ("?next=true" if combined else "")
        start = time.perf_counter()
        async with self.session.post(url, headers=self.headers, json={"label": label}) as reply:
            body = await reply.json() if reply.status == 200 else None
        out["submit"].append(time.perf_counter() - start)
        out["submits" if body is not None else "errors"] += 1
        self.task = body.get("next_task") if combined and body is not None else None
        return True


async def load(base: str, project: dict[str, Any], seconds: float, mode: str, rate: float) -> dict[str, Any]:
    """``len(project["tokens"])`` annotators on one keep-alive connection each, for ``seconds``.
    ``rate`` 0: each answers again as soon as the last answer is acknowledged (closed loop: the
    server saturated). Otherwise answers arrive at random (Poisson) times, ``rate`` per second
    on average, each taken by an idle annotator (open loop: latency at that offered rate; when no
    annotator is idle the arrival waits for one, and the answers per second fall short of it)."""
    out: dict[str, Any] = {"next": [], "submit": [], "submits": 0, "errors": 0, "no_task": 0, "waited": []}
    combined = mode == "combined"
    connector = aiohttp.TCPConnector(limit=len(project["tokens"]))
    async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        crowd = [Annotator(session, project, t, k) for k, t in enumerate(project["tokens"])]
        start = time.perf_counter()
        until = start + seconds
        if not rate:

            async def keep_answering(one: Annotator) -> None:
                while time.perf_counter() < until:
                    if not await one.answer(combined, out):
                        await asyncio.sleep(0.05)

            await asyncio.gather(*(keep_answering(one) for one in crowd))
        else:
            idle: asyncio.Queue[Annotator] = asyncio.Queue()
            for one in crowd:
                idle.put_nowait(one)

            async def arrival(due: float) -> None:
                one = await idle.get()
                out["waited"].append(time.perf_counter() - due)
                await one.answer(combined, out)
                idle.put_nowait(one)

            gaps = np.random.default_rng(0).exponential(1 / rate, size=int(rate * seconds * 2))
            arrivals, due = [], start
            for gap in gaps:
                due += gap
                if due >= until:
                    break
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                arrivals.append(asyncio.ensure_future(arrival(due)))
            await asyncio.gather(*arrivals)
        out["seconds"] = time.perf_counter() - start
    return out


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The load generator's garbage collector off while it measures: one of its full collections
    (80-400 ms once its heap holds the imports and the project) stops every simulated annotator
    and counts to the latency of every request in flight, as if the server had been slow."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


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


def server_options(args: argparse.Namespace) -> tuple[str, ...]:
    """``crowdloop serve``'s options: without the model worker under ``--no-worker``."""
    return ("--no-worker",) if args.no_worker else ()


def one_run(kind: str, workers: int, load_kind: str, args: argparse.Namespace, folder: Path, seed: int) -> dict:
    """One server on a fresh database under one load: ``load_kind`` is "MODE" (closed loop, as
    many answers as the server takes) or "MODE@RATE" (open loop, RATE answers offered per second)."""
    from crowdloop.server.process import ServerProcess

    mode, _, rate = load_kind.partition("@")
    clients = args.clients if not rate else args.paced_clients
    url, drop = fresh_database(kind, folder)
    try:
        with ServerProcess(url, workers=workers, options=server_options(args)) as server:
            project = setup_project(server.base_url, server.admin_token, args.items, clients, seed)
            group = server.process_group
            load_before, cpu_before, server_before = os.getloadavg()[0], time.process_time(), group_cpu_seconds(group)
            with collector_paused():
                result = asyncio.run(load(server.base_url, project, args.seconds, mode, float(rate or 0)))
            result["client_cpu"] = (time.process_time() - cpu_before) / result["seconds"]
            result["server_cpu_ms_per_submit"] = (
                (group_cpu_seconds(group) - server_before) / max(result["submits"], 1) * 1000
            )
            result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
    finally:
        drop()
    ms = {name: np.asarray(result.pop(name)) * 1000 for name in ("next", "submit", "waited")}
    return {
        "waited_p99_ms": float(np.percentile(ms["waited"], 99)) if ms["waited"].size else float("nan"),
        "submits_per_s": result["submits"] / result["seconds"],
        "next_p50_ms": float(np.percentile(ms["next"], 50)) if ms["next"].size else float("nan"),
        "next_p99_ms": float(np.percentile(ms["next"], 99)) if ms["next"].size else float("nan"),
        "submit_p50_ms": float(np.percentile(ms["submit"], 50)) if ms["submit"].size else float("nan"),
        "submit_p99_ms": float(np.percentile(ms["submit"], 99)) if ms["submit"].size else float("nan"),
        "clients": clients,
        **result,
    }


PARTS = (  # (part, path fragments of the innermost frame), first match wins
    ("database (driver, statements)", ("crowdloop/store/", "sqlalchemy/", "sqlite3", "psycopg")),
    ("consensus (posterior, decision, NumPy)", ("crowdloop/consensus/",
                                                "crowdloop/aggregation/", "numpy/", "scipy/")),
    ("service logic", ("crowdloop/service/", "crowdloop/labels")),
    ("thread pool (requests handed to its threads and back)", ("anyio/", "threading.py", "concurrent/",
                                                               "starlette/concurrency")),
    ("HTTP (uvicorn, Starlette, FastAPI, pydantic)", ("uvicorn/", "starlette/", "fastapi/", "pydantic",
                                                      "h11/", "httptools", "crowdloop/server/", "json/")),
)  # fmt: skip


OTHER = "other (the event loop's Python: asyncio, uvloop's callbacks)"


def where_time_goes(samples: Path) -> dict[str, float]:
    """Share of the server's samples by part of the code its innermost frame is in (py-spy's raw
    output: one line per distinct stack, frames separated by ';', then the sample count). A frame
    whose name holds a line break (a thread or task name) continues on the next line."""
    shares: dict[str, float] = dict.fromkeys([name for name, _ in PARTS] + [OTHER], 0.0)
    total = 0
    for record in re.finditer(r"(.*?) (\d+)$", samples.read_text(), re.MULTILINE | re.DOTALL):
        stack, count = record.groups()
        leaf = stack.rsplit(";", 1)[-1]
        part = next((name for name, keys in PARTS if any(key in leaf for key in keys)), OTHER)
        shares[part] += int(count)
        total += int(count)
    return {name: value / max(total, 1) for name, value in shares.items()} | {"samples": total}


def sampled_run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """A saturated SQLite run (separate requests) with py-spy sampling the server process: the thread
    that holds the interpreter lock (``--gil``), the one running Python. Sampling every thread
    counted the thread pool's idle threads (waiting for work) and the event loop waiting for the
    network (in uvloop's C code, below ``asyncio.Runner.run``) as busy: 64% "event loop"."""
    from crowdloop.server.process import ServerProcess

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return {"skipped": "py-spy is not installed (pip install -r bench/requirements-service.txt)"}
    url, drop = fresh_database("sqlite", folder)
    out = folder / f"{uuid.uuid4().hex}.spy"
    try:
        with ServerProcess(url, workers=1, options=server_options(args)) as server:
            project = setup_project(server.base_url, server.admin_token, args.items, args.clients, 0)
            assert server._process is not None
            command = [spy, "record", "--pid", str(server._process.pid), "--duration", str(int(args.seconds)),
                       "--rate", "250", "--format", "raw", "--output", str(out), "--nonblocking", "--gil"]  # fmt: skip
            sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            with collector_paused():
                asyncio.run(load(server.base_url, project, args.seconds, "separate", 0))
            _, error = sampler.communicate(timeout=60)
            if not out.exists():
                return {"skipped": f"py-spy could not sample the server: {error.strip()[-200:]}"}
            return where_time_goes(out)
    finally:
        out.unlink(missing_ok=True)
        drop()


def calls_per_call(kind: str, folder: Path, n_cycles: int = 200) -> dict[str, float]:
    """Database calls per next task and per submit (``crowdloop.store.trace``: SQL statements on
    SQLite, BEGIN and COMMIT included; round trips on PostgreSQL)."""
    from crowdloop.labels import Taxonomy
    from crowdloop.service import ItemIn, open_service
    from crowdloop.store.trace import database_calls

    url, drop = fresh_database(kind, folder)
    service = open_service(url, seed=0)
    counts = {"next": 0, "submit": 0}
    try:
        labels = taxonomy_lines()
        project = service.create_project("p", Taxonomy.from_paths(labels), gold_rate=0.1)
        leaves = labels[-10:]
        rows = [ItemIn(f"i{k}", {"title": f"product {k}"}, gold=leaves[k % 10] if k % 50 == 0 else None)
                for k in range(2000)]  # fmt: skip
        service.import_items(project.id, rows)
        annotators = [service.authenticate(service.add_annotator(project.id, f"a{k}")[1]) for k in range(8)]
        done = 0
        with database_calls(service.engine) as calls:
            for k in range(n_cycles):
                before = calls.total
                task = service.next_task(annotators[k % len(annotators)])
                counts["next"] += calls.total - before
                if task is None:
                    continue
                before = calls.total
                service.submit(annotators[k % len(annotators)], task.lease_id, leaves[int(task.item[1:]) % 10])
                counts["submit"] += calls.total - before
                done += 1
    finally:
        service.close()
        drop()
    return {"next": counts["next"] / n_cycles, "submit": counts["submit"] / max(done, 1)}


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: median([r[key] for r in runs]) for key in runs[0] if isinstance(runs[0][key], float | int)}


def verdicts(payload: dict[str, Any]) -> list[str]:
    """The targets against the medians: PostgreSQL with 2 processes serves at least SQLite's answers
    per second on the closed loop, at most 1.3x its CPU per answer; submit p99 under 50 ms at 150
    answers/s offered on both."""
    runs = {key: summary(r) for key, r in payload["runs"].items() if not isinstance(r, str)}
    lite, pg = runs.get("sqlite, 1 process | combined"), runs.get("postgresql, 2 processes | combined")
    lines = []
    if lite and pg:
        rate, cpu = (
            pg["submits_per_s"] / lite["submits_per_s"],
            pg["server_cpu_ms_per_submit"] / lite["server_cpu_ms_per_submit"],
        )
        lines.append(f"- closed loop, PostgreSQL (2 processes) against SQLite (1): {rate:.2f}x the answers per second "
                     f"(target >= 1): {'met' if rate >= 1 else '**missed**'}; {cpu:.2f}x the server CPU per answer "
                     f"(target <= 1.3): {'met' if cpu <= 1.3 else '**missed**'}")  # fmt: skip
    for key, med in runs.items():
        if key.endswith("@150"):
            p99 = med["submit_p99_ms"]
            lines.append(f"- {key.split(' | ')[0]}, 150 answers/s offered: submit p99 {p99:.0f} ms (target < 50 ms): "
                         + ("met" if p99 < 50 else "**missed**"))  # fmt: skip
    return lines


def render(payload: dict[str, Any]) -> str:
    """The Markdown report of a result payload (``--render`` redoes it from service.json)."""
    settings = payload["settings"]
    rows = []
    for key, runs in payload["runs"].items():
        server, load_kind = key.split(" | ")
        mode, _, rate = load_kind.partition("@")
        what = f"{mode}, {rate + ' answers/s offered' if rate else 'closed loop (saturated)'}"
        if isinstance(runs, str):
            rows.append([server, what, "skipped: " + runs, *[""] * 10])
            continue
        med = summary(runs)
        rows.append([
            server, what, f"{med['clients']:.0f}", f"{med['submits_per_s']:.0f}", f"{med['next_p50_ms']:.1f}",
            f"{med['next_p99_ms']:.1f}", f"{med['submit_p50_ms']:.1f}", f"{med['submit_p99_ms']:.1f}",
            "-" if not rate else f"{med['waited_p99_ms']:.1f}",
            f"{med['errors']:.0f}", f"{med['server_cpu_ms_per_submit']:.2f}", f"{med['client_cpu']:.0%}",
            f"{med['load_before']:.1f} / {med['load_after']:.1f}",
        ])  # fmt: skip
    headers = ["server", "load", "annotators", "answers/s", "next p50 ms", "next p99 ms", "submit p50 ms",
               "submit p99 ms", "arrival wait p99 ms", "errors", "server CPU ms per answer",
               "load generator CPU (of one core)", "load avg before / after"]  # fmt: skip
    where = payload.get("where", {})
    if "skipped" in where:
        breakdown = f"Where the time goes: not sampled ({where['skipped']})."
    else:
        parts = ", ".join(f"{k} {v:.0%}" for k, v in where.items() if k != "samples")
        breakdown = (f"Where the server's time goes (py-spy sampling the SQLite server's thread that holds the "
                     f"interpreter lock at 250 Hz through a saturated run with separate requests, "
                     f"{where.get('samples', 0):.0f} samples, by the innermost Python frame; C code that keeps the "
                     f"lock counts to its caller; SQLite's own work and threads waiting for work, a lock or the "
                     f"network let it go and are not sampled): {parts}.")  # fmt: skip
    counted = payload.get("statements", {})
    if counted:
        breakdown += (f" SQL statements per call (SQLite's trace callback, BEGIN and COMMIT included): next task "
                      f"{counted['next_statements']:.1f}, submit {counted['submit_statements']:.1f}.")  # fmt: skip
    trips = payload.get("round_trips", {})
    if trips:
        breakdown += (f" Round trips per call on PostgreSQL (libpq's protocol trace; the hot path's statements go in "
                      f"pipeline mode): next task {trips['next']:.1f}, submit {trips['submit']:.1f}.")  # fmt: skip
    worker = ("The servers run without the model worker (`--no-worker`): the loop alone."
              if settings.get("no_worker") else
              "Each server trains the project's model beside the loop (its model worker, a process of its own "
              "whose CPU counts to the server's).")  # fmt: skip
    return "\n".join([
        "# Labeling service under load",
        "",
        f"`{payload['command']}`",
        "",
        f"Simulated annotators (asyncio + aiohttp on loopback, one keep-alive connection each, 80% right) work for "
        f"{settings['seconds']:.0f} s against `crowdloop serve` on a fresh database; project on the shipped 34-label "
        f"taxonomy, {settings['items']} items, gold rate 0.1, target 0.9, overlap 1-3. Loads: *separate* asks for a "
        f"task, then answers it (two requests per answer); *combined* answers with `?next=true`, whose response "
        f"carries the next task (one request per answer). *Closed loop*: {settings['clients']} annotators answer "
        f"again as soon as the last answer is acknowledged, as fast as the server takes them (throughput; latency is "
        f"then mostly queueing); *offered*: answers arrive at random (Poisson) times at the stated rate, each taken "
        f"by an idle one of {settings['paced_clients']} annotators (open loop: the latency at that rate; an arrival "
        f"that finds no idle annotator waits, shown as arrival wait, and the answers per second fall short of the "
        f"offer). {worker} Medians over {settings['runs']} runs; the "
        f"load generator runs on the same 2 cores as the server, its garbage collector paused while it measures (a "
        f"collection of its own stopped every simulated annotator for 80-400 ms, counted to every request in flight). "
        f"Server CPU is measured from outside (/proc, the "
        f"server's process group) and divided by the acknowledged answers.",
        "",
        markdown_table(headers, rows),
        "",
        *verdicts(payload),
        "",
        breakdown,
        "",
        *machine_lines({}),
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="sqlite:1,postgresql:1,postgresql:2", help="database:processes,...")
    parser.add_argument("--loads", default="separate,combined,separate@300,combined@300",
                        help="MODE (closed loop) or MODE@RATE (open loop), MODE separate|combined")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16, help="Annotators in the closed loops.")
    parser.add_argument("--paced-clients", type=int, default=64, help="Annotators in the open loops.")
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--no-worker", action="store_true", help="Serve without the model worker (the loop alone).")
    parser.add_argument("--name", default="service", help="Results file name (results/NAME.md and .json).")
    parser.add_argument("--render", action="store_true", help="Only redo the Markdown from results/NAME.json.")
    args = parser.parse_args()
    if args.render:
        payload = json.loads((RESULTS / f"{args.name}.json").read_text())
        write_results(args.name, render(payload), payload)
        return
    folder = Path(tempfile.gettempdir()) / "crowdloop-bench-service"
    folder.mkdir(parents=True, exist_ok=True)
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    pg_reason = postgres_unavailable() if any(kind == "postgresql" for kind, _ in configs) else None
    settings = {k: v for k, v in vars(args).items() if k not in ("render", "name")}
    payload: dict[str, Any] = {"command": command_line("bench_service.py"), "settings": settings, "runs": {}}
    for kind, workers in configs:
        server = f"{kind}, {workers} process{'es' if workers > 1 else ''}"
        for load_kind in args.loads.split(","):
            key = f"{server} | {load_kind}"
            if kind == "postgresql" and pg_reason:
                payload["runs"][key] = pg_reason
                continue
            payload["runs"][key] = [one_run(kind, workers, load_kind, args, folder, s) for s in range(args.runs)]
            print(key, {k: round(v, 2) for k, v in summary(payload["runs"][key]).items()}, flush=True)
    payload["where"] = sampled_run(args, folder)
    statements = calls_per_call("sqlite", folder)
    payload["statements"] = {"next_statements": statements["next"], "submit_statements": statements["submit"]}
    if any(kind == "postgresql" for kind, _ in configs) and not pg_reason:
        payload["round_trips"] = calls_per_call("postgresql", folder)
    markdown = render(payload)
    print(markdown)
    write_results(args.name, markdown, payload)


if __name__ == "__main__":
    main()
