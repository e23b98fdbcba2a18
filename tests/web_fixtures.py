"""What the browser tests and the web bench share: a real ``crowdloop serve --demo`` with a
project over a generated 5,595-category taxonomy beside the demo, and Debian's chromium."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from crowdloop.server.process import ServerProcess
from crowdloop.simulation.taxonomies import synthetic_taxonomy


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class WebServer:
    base: str
    admin: str
    demo_id: int
    demo_tokens: dict[str, str]
    shop_id: int
    shop_tokens: dict[str, str]
    paths: list[str]
    shop_truth: dict[str, str] = field(default_factory=dict)
    xss_id: int = 0
    xss_tokens: dict[str, str] = field(default_factory=dict)


def _post(base: str, token: str, path: str, body: dict) -> dict:
    response = httpx.post(f"{base}{path}", headers={"Authorization": f"Bearer {token}"}, json=body, timeout=60)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _team(base: str, owner: str, project: int, names: dict[str, str]) -> dict[str, str]:
    return {n: _post(base, owner, f"/projects/{project}/annotators", {"name": n, "role": r})["token"]
            for n, r in names.items()}  # fmt: skip


def start_server(db: Path, *, seed: int = 3, shop_items: int = 30) -> tuple[ServerProcess, WebServer]:
    """``crowdloop serve --demo`` on a SQLite file, with a taxonomy project ``shop`` (every answer
    goes to review; each item has a model's three suggestions, shown on every task) and a project ``xss`` whose item
    title is a script."""
    os.environ["CROWDLOOP_SEED"] = str(seed)  # the gold draws of the server: the same tasks every run
    try:
        process = ServerProcess(f"sqlite:///{db}", options=("--demo",)).start()
    finally:
        os.environ.pop("CROWDLOOP_SEED", None)
    tokens = dict(re.findall(r"^\s+(\w+)\s+(\S+)$", "\n".join(process.startup_lines), flags=re.M))
    base, admin = process.base_url, process.admin_token
    assert admin is not None
    demo_id = int(re.search(r"demo project (\d+)", "\n".join(process.startup_lines)).group(1))

    paths = synthetic_taxonomy()
    policy = {"target": 0.99, "min_overlap": 1, "max_overlap": 1}
    made = _post(base, admin, "/projects", {"name": "shop", "taxonomy": paths, "gold_rate": 0.0,
                                             "model_votes": False, "policy": policy,
                                             "hide_rate": 0.0})  # fmt: skip
    shop_id, owner = made["project"]["id"], made["owner"]["token"]
    rng = np.random.default_rng(seed)
    inner = {p.rsplit(" > ", 1)[0] for p in paths if " > " in p}
    leaves = [p for p in paths if p not in inner]
    truth = {f"p{k:02d}": str(rng.choice(leaves)) for k in range(shop_items)}
    items = []
    for item, path in truth.items():
        others = rng.choice(len(paths), size=2, replace=False)
        predictions = {path: 0.6, paths[others[0]]: 0.25, paths[others[1]]: 0.15}
        items.append({"id": item, "data": {"title": f"{path.rsplit(' > ', 1)[-1]} no. {item}"},
                      "predictions": predictions})  # fmt: skip
    _post(base, owner, f"/projects/{shop_id}/items", {"items": items, "model": {"name": "m", "version": "1"}})
    shop_tokens = {"owner": owner, **_team(base, owner, shop_id, {"carol": "annotator", "dave": "annotator",
                                                                  "rita": "reviewer"})}  # fmt: skip

    made = _post(base, admin, "/projects", {"name": "xss", "labels": ["yes", "no"], "gold_rate": 0.0})
    xss_id, xss_owner = made["project"]["id"], made["owner"]["token"]
    payload = {
        "title": "<script>alert(1)</script>",
        "picture": f"{base}/static/none.png",
        "link": "https://example.org/item?a=1&b=<b>",
        "note": '<img src=x onerror="alert(2)">',
    }
    _post(base, xss_owner, f"/projects/{xss_id}/items", {"items": [{"id": "x1", "data": payload}]})
    xss_tokens = {"owner": xss_owner, **_team(base, xss_owner, xss_id, {"eve": "annotator"})}
    web = WebServer(base, admin, demo_id, tokens, shop_id, shop_tokens, paths, truth, xss_id, xss_tokens)
    return process, web
