"""A real server in a child process: many annotators at once over HTTP, then SIGKILL in the middle
of the load; after a restart every acknowledged answer is there, once, and no item got more
answers than its policy allows."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pandas as pd

from crowdloop.server.process import ServerProcess
from crowdloop.service import open_service

LABELS = ["cat", "dog", "bird"]
MAX_OVERLAP = 3
N_ANNOTATORS = 8


def setup_project(base: str, admin: str) -> tuple[int, dict[str, str]]:
    auth = {"Authorization": f"Bearer {admin}"}
    made = httpx.post(
        f"{base}/projects",
        headers=auth,
        json={
            "name": "live",
            "labels": LABELS,
            "gold_rate": 0.1,
            "policy": {"target": 0.95, "min_overlap": 2, "max_overlap": MAX_OVERLAP},
        },
    ).json()
    pid, owner = made["project"]["id"], made["owner"]["token"]
    auth = {"Authorization": f"Bearer {owner}"}
    items = [{"id": f"i{k:03d}", "data": {"n": k}} for k in range(120)]
    items += [{"id": f"g{k}", "gold": LABELS[k % 3]} for k in range(10)]
    assert httpx.post(f"{base}/projects/{pid}/items", headers=auth, json={"items": items}).status_code == 201
    tokens = {}
    for k in range(N_ANNOTATORS):
        response = httpx.post(f"{base}/projects/{pid}/annotators", headers=auth, json={"name": f"a{k}"})
        tokens[f"a{k}"] = response.json()["token"]
    return pid, tokens


def annotate(base: str, pid: int, name: str, token: str, acknowledged: list, stop: threading.Event, seed: int):
    """Answer tasks until told to stop or the server is gone; record every 2xx submit."""
    rng = np.random.default_rng(seed)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10.0) as client:
        while not stop.is_set():
            try:
                task = client.post(f"/projects/{pid}/tasks/next")
                if task.status_code == 204:
                    return
                if task.status_code == 403 and "banned" in task.text:
                    return  # random answers fail the gold: the quality check bans the annotator
                assert task.status_code == 200, task.text
                lease, item = task.json()["lease_id"], task.json()["item"]
                label = LABELS[int(rng.integers(3))]
                out = client.post(f"/projects/{pid}/tasks/{lease}/submit", json={"label": label})
            except httpx.TransportError:
                return  # the server was killed
            if out.status_code == 200:
                acknowledged.append((item, name, label))
            else:
                assert out.status_code == 409, out.text  # e.g. an expired lease, never a crash


def test_killed_server_loses_no_acknowledged_answer(database_url, tmp_path):
    workers = 1 if database_url.startswith("sqlite") else 2
    acknowledged: list[tuple[str, str, str]] = []
    stop = threading.Event()
    with ServerProcess(database_url, workers=workers) as server:
        pid, tokens = setup_project(server.base_url, server.admin_token)
        threads = [
            threading.Thread(target=annotate, args=(server.base_url, pid, name, token, acknowledged, stop, k))
            for k, (name, token) in enumerate(tokens.items())
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 120 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()  # SIGKILL in the middle of the load
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
    assert len(acknowledged) >= 120, "the load did not get going"
    service = open_service(database_url)  # the database as a restarted server finds it
    try:
        stored = service.answers_frame(pid)[["task", "worker", "label"]].astype(str)
    finally:
        service.close()
    pairs = stored[["task", "worker"]]
    assert not pairs.duplicated().any(), "an answer was counted twice"
    sent = pd.DataFrame(acknowledged, columns=["task", "worker", "label"])
    merged = sent.merge(stored, on=["task", "worker"], how="left", suffixes=("", "_stored"))
    assert merged["label_stored"].notna().all(), "an acknowledged answer was lost"
    assert (merged["label"] == merged["label_stored"]).all()
    real = stored[~stored["task"].str.startswith("g")]
    assert real.groupby("task").size().max() <= MAX_OVERLAP, "an item got more answers than its policy allows"
