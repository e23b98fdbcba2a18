"""The whole labeling loop through the HTTP API: a simulated crowd works a product project on a
running ``crowdloop serve`` while the server's model worker trains, votes and labels.

The crowd reads titles the way the product demo's crowd does (``simulation.taxonomy_crowd`` with
``PRODUCT_ARCHETYPES``: experts, good and sloppy annotators, spammers and a colluding ring, wrong
answers mostly sibling categories): every annotator's answer to every item is drawn up front from
the real category, so whoever the server hands an item gives the answer that annotator would give.
Annotators take a task, think, and answer with ``?next=true`` (one request per answer); an expert
reviewer settles escalated items with their true category. Think times are drawn per answer from a
lognormal with mean ``think_seconds`` (``THINK_SPREAD``: people's response times are skewed, Luce
1986), and each annotator starts at a random moment of the first think time: annotators who all
thought exactly as long and started together sent their requests in bursts of up to twenty at once,
so the loop's p99 latency measured the queue of a burst, not the server (16 simultaneous first
requests took 25-55 ms; the p99 ratio of two runs of one setup varied from 1.09 to 1.61). The run ends when
every item is settled. ``run_loop`` returns the figures (accuracy on items that are not gold, paid
human answers per item, escalations, the model's share and accuracy, cost, answers per second,
latencies) and a timeline of the project's progress.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd

from crowdloop.labels import Taxonomy
from crowdloop.simulation.taxonomy_crowd import PRODUCT_ARCHETYPES, simulate_taxonomy_crowd

THINK_SPREAD = 0.5
"""Standard deviation of the log think time (a lognormal with that spread: the slowest tenth of the
answers take about twice as long as the median one)."""


@dataclass(frozen=True)
class LoopSetup:
    """The project (``target``, overlaps, ``gold_share`` of the items gold, the project's
    ``audit_rate``) and the crowd (``annotators``, ``think_seconds`` per answer, a reviewer)."""

    target: float = 0.97
    min_overlap: int = 1
    max_overlap: int = 3
    gold_share: float = 0.1
    audit_rate: float = 0.05
    annotators: int = 20
    think_seconds: float = 0.5  # mean
    timeout_seconds: float = 1800.0


@dataclass
class LoopRun:
    """Figures of one run (``figures``), the progress over time (``timeline``: one row per poll)
    and the model versions the server trained."""

    figures: dict[str, float]
    timeline: pd.DataFrame
    versions: list[dict[str, Any]] = field(default_factory=list)


def _crowd_answers(taxonomy: Taxonomy, paths: Sequence[str], n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Every annotator's answer (label name) to every item: an (items, annotators) array."""
    frame, _ = simulate_taxonomy_crowd(
        taxonomy, n_workers=n, answers_per_item=n, archetypes=PRODUCT_ARCHETYPES, truth=list(paths),
        random_state=seed,
    )  # fmt: skip
    names = sorted(frame["worker"].unique(), key=lambda w: int(w.rsplit("-", 1)[1]))
    column = {name: k for k, name in enumerate(names)}
    table = np.empty((len(paths), n), dtype=object)
    table[frame["task"].to_numpy(), frame["worker"].map(column).to_numpy()] = frame["label"].to_numpy(object)
    return table, names


def think_times(mean: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` think times, lognormal with mean ``mean`` and log-scale spread ``THINK_SPREAD``."""
    return mean * rng.lognormal(-(THINK_SPREAD**2) / 2, THINK_SPREAD, n)


class _Annotator(threading.Thread):
    def __init__(self, run: _Run, token: str, column: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.run_, self.column = run, column
        self.rng = np.random.default_rng([seed, column])
        self.client = httpx.Client(base_url=run.base, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def run(self) -> None:
        r, task = self.run_, None
        pid = r.project_id
        r.done.wait(self.rng.uniform(0, r.setup.think_seconds))  # people do not all start at once
        while not r.done.is_set():
            if task is None:
                start = time.perf_counter()
                reply = self.client.post(f"/projects/{pid}/tasks/next")
                r.latency("next", time.perf_counter() - start)
                if reply.status_code != 200:
                    r.done.wait(0.25)
                    continue
                task = reply.json()
            r.done.wait(think_times(r.setup.think_seconds, self.rng, 1)[0])
            label = r.answers[r.index[task["item"]], self.column]
            start = time.perf_counter()
            reply = self.client.post(
                f"/projects/{pid}/tasks/{task['lease_id']}/submit", params={"next": "true"}, json={"label": label}
            )
            r.latency("submit", time.perf_counter() - start)
            task = reply.json().get("next_task") if reply.status_code == 200 else None
            if reply.status_code == 200:
                r.count()
        self.client.close()


class _Run:
    def __init__(self, base: str, setup: LoopSetup, answers: np.ndarray, index: dict[str, int]) -> None:
        self.base, self.setup, self.answers, self.index = base, setup, answers, index
        self.project_id = 0
        self.done = threading.Event()
        self._lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {"next": [], "submit": []}
        self.submits = 0

    def latency(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.latencies[kind].append(seconds)

    def count(self) -> None:
        with self._lock:
            self.submits += 1


def run_loop(
    base_url: str, admin_token: str, titles: Sequence[str], paths: Sequence[str], setup: LoopSetup, seed: int
) -> LoopRun:
    """Create a project of the products (``titles`` in categories ``paths``: ``A > B > C``) on the
    server at ``base_url``, let the simulated crowd and reviewer work until every item is settled,
    and measure it (module docstring)."""
    rng = np.random.default_rng(seed)
    taxonomy = Taxonomy.from_paths(sorted(set(paths)))
    n = len(titles)
    keys = [f"p{k:06d}" for k in range(n)]
    gold = rng.random(n) < setup.gold_share
    answers, names = _crowd_answers(taxonomy, paths, setup.annotators, seed)
    run = _Run(base_url, setup, answers, {k: i for i, k in enumerate(keys)})
    admin = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=300)
    policy = {"target": setup.target, "min_overlap": setup.min_overlap, "max_overlap": setup.max_overlap,
              "partial": False}  # fmt: skip
    made = admin.post("/projects", json={"name": f"loop-{seed}-{time.time_ns()}", "taxonomy": sorted(set(paths)),
                                         "gold_rate": setup.gold_share, "audit_rate": setup.audit_rate,
                                         "policy": policy})  # fmt: skip
    made.raise_for_status()
    run.project_id = pid = made.json()["project"]["id"]
    owner = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {made.json()['owner']['token']}"}, timeout=300
    )
    items = [{"id": k, "data": {"title": t}, "gold": p if g else None}
             for k, t, p, g in zip(keys, titles, paths, gold, strict=True)]  # fmt: skip
    for start in range(0, n, 5000):
        owner.post(f"/projects/{pid}/items", json={"items": items[start : start + 5000]}).raise_for_status()
    tokens = [owner.post(f"/projects/{pid}/annotators", json={"name": name}).json()["token"] for name in names]
    reviewer = owner.post(f"/projects/{pid}/annotators", json={"name": "reviewer", "role": "reviewer"}).json()
    review = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {reviewer['token']}"}, timeout=120)
    truth = dict(zip(keys, paths, strict=True))
    crowd = [_Annotator(run, token, k, seed) for k, token in enumerate(tokens)]
    started = time.perf_counter()
    for one in crowd:
        one.start()
    timeline = []
    while time.perf_counter() - started < setup.timeout_seconds:
        for task in review.get(f"/projects/{pid}/review", params={"limit": 50}).json():
            review.post(f"/projects/{pid}/review/{task['item']}", json={"label": truth[task["item"]]})
        progress = owner.get(f"/projects/{pid}/progress").json()
        counts = progress["status_counts"]
        timeline.append({
            "seconds": time.perf_counter() - started, "settled": counts.get("accepted", 0) + counts.get("reviewed", 0),
            "items": progress["items"], "answers_per_item": progress["paid_answers_per_item"],
            "automated_share": progress["automated_share"], "versions": len(progress["model_versions"]),
        })  # fmt: skip
        if counts.get("more", 0) + counts.get("escalated", 0) == 0:
            break
        time.sleep(1.0)
    elapsed = time.perf_counter() - started
    run.done.set()
    for one in crowd:
        one.join(30)
    progress = owner.get(f"/projects/{pid}/progress").json()
    results = pd.DataFrame(owner.get(f"/projects/{pid}/results", params={"limit": 100_000}).json())
    for client in (admin, owner, review):
        client.close()
    results = results[results["status"].isin(["accepted", "reviewed"])]
    right = results["label"].to_numpy(object) == results["item"].map(truth).to_numpy(object)
    model = (results["source"] == "model").to_numpy()
    latency = {k: np.asarray(v) for k, v in run.latencies.items()}
    both = np.concatenate(list(latency.values())) if run.submits else np.zeros(1)
    figures = {
        "items": float(progress["items"]),
        "settled": float(len(results) / max(progress["items"], 1)),
        "accuracy": float(right.mean()) if len(right) else float("nan"),
        "answers_per_item": float(progress["paid_answers_per_item"]),
        "escalated": float((results["status"] == "reviewed").mean()) if len(results) else float("nan"),
        "automated": float(model.mean()) if len(model) else 0.0,
        "automated_accuracy": float(right[model].mean()) if model.any() else float("nan"),
        "cost_per_item": float(progress["cost_per_item"]),
        "answers_per_second": run.submits / elapsed,
        "p50_ms": float(np.percentile(both, 50) * 1000),
        "p99_ms": float(np.percentile(both, 99) * 1000),
        "seconds": elapsed,
        "versions": float(len(progress["model_versions"])),
    }
    return LoopRun(figures, pd.DataFrame(timeline), progress["model_versions"])
