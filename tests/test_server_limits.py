"""The API against hostile and awkward input on each database: compressed uploads capped once
decompressed, tokens checked before a body is read, payloads no response could carry, item ids
with slashes, and exports that keep gold items and defuse spreadsheet formulas."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from crowdloop.server import create_app, ensure_admin
from crowdloop.service import open_service
from crowdloop.store.schema import Answer, Item, Lease, utcnow

LABELS = ["cat", "dog", "=cmd"]


@pytest.fixture(scope="module")
def world(database_url):
    service = open_service(database_url, seed=0)
    admin = ensure_admin(service)
    app = create_app(service, auth_cache_seconds=0)
    client = TestClient(app)

    def call(method, path, token=None, **kwargs):
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        return client.request(method, path, headers=headers, **kwargs)

    created = call(
        "POST",
        "/projects",
        admin,
        json={"name": "limits", "labels": LABELS, "gold_rate": 0.0, "reviewers_see_gold": True},
    )
    assert created.status_code == 201, created.text
    pid, owner = created.json()["project"]["id"], created.json()["owner"]["token"]
    tokens = {"admin": admin, "owner": owner}
    for name, role in (("rita", "reviewer"), ("ann", "annotator")):
        tokens[name] = call("POST", f"/projects/{pid}/annotators", owner, json={"name": name, "role": role}).json()[
            "token"
        ]
    yield {"service": service, "app": app, "call": call, "pid": pid, "tokens": tokens}
    service.close()


def _count(service, table, **where) -> int:
    with service.engine.connect() as connection:
        statement = select(func.count()).select_from(table)
        for column, value in where.items():
            statement = statement.where(getattr(table.c, column) == value)
        return connection.execute(statement).scalar_one()


def _gzip_rows(header: bytes, row: bytes, rows: int) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        gz.write(header)
        for _ in range(rows // 50_000):
            gz.write(row * 50_000)
    return out.getvalue()


@pytest.mark.parametrize(
    ("route", "name", "header", "row"),
    [
        ("answers/upload", "answers.csv.gz", b"task,worker,label\n", b"item0001,worker01,cat\n"),
        ("items/upload", "items.csv.gz", b"id,title\n", b"item00000001,a title\n"),
    ],
)
def test_a_gzip_bomb_is_refused_with_413_within_a_second(world, route, name, header, row):
    bomb = _gzip_rows(header, row, 4_000_000)  # ~90 MB of rows in a few hundred KB
    assert len(bomb) < 500_000
    started = time.process_time()  # CPU time: the machine may be busy with other work
    response = world["call"](
        "POST", f"/projects/{world['pid']}/{route}", world["tokens"]["owner"], files={"file": (name, bomb)}
    )
    elapsed = time.process_time() - started
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json" and name in response.json()["detail"]
    assert elapsed < 1.0, elapsed
    assert _count(world["service"], Answer.__table__) == 0 and _count(world["service"], Item.__table__) == 0


def test_a_body_is_not_read_before_its_token_is_checked(world):
    """ASGI-level: the app answers 401 without once asking for the body of a 62 MB request."""
    app, path = world["app"], f"/projects/{world['pid']}/items"

    def run(token: str | None) -> tuple[int, int]:
        asked, sent = [], []

        async def receive():
            asked.append(1)
            return {"type": "http.request", "body": b'{"items": [{"id": "x"}]}', "more_body": False}

        async def send(message):
            sent.append(message)

        headers = [(b"content-type", b"application/json"), (b"content-length", str(62 * 2**20).encode())]
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": headers, "scheme": "http", "server": ("test", 80), "client": ("test", 1),
                 "http_version": "1.1", "root_path": ""}  # fmt: skip
        asyncio.run(app(scope, receive, send))
        return sent[0]["status"], len(asked)

    assert run(None) == (401, 0)
    assert run("x" * 40) == (401, 0)  # an unknown token: refused as early
    assert run(world["tokens"]["ann"])[0] == 403  # a known token goes on to the route's own checks
    started = time.process_time()
    response = world["call"]("POST", path, content=b"[" + b"1," * (30 * 2**20) + b"1]")
    assert response.status_code == 401 and time.process_time() - started < 2.0


POISONS = {
    "a lone surrogate": ({"title": "\udfff"}, "payload.title contains a lone surrogate"),
    "a key with a lone surrogate": ({"\ud800": 1}, "a key of payload contains a lone surrogate"),
    "nesting 256 deep": ({"deep": json.loads("[" * 255 + "]" * 255)}, "nested more than 64 levels"),
}


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_payloads_no_response_can_carry_are_refused_at_import(world, poison):
    payload, message = POISONS[poison]
    call, pid, owner = world["call"], world["pid"], world["tokens"]["owner"]
    before = _count(world["service"], Item.__table__)
    lines = [
        json.dumps({"id": f"ok-{poison}", "data": {"t": "fine"}}),
        json.dumps({"id": f"bad-{poison}", "data": payload}),
    ]
    response = call(
        "POST", f"/projects/{pid}/items/upload", owner, files={"file": ("p.jsonl", "\n".join(lines).encode())}
    )
    assert response.status_code == 400, response.text
    assert "item 2" in response.json()["detail"] and message in response.json()["detail"]
    body = '{"items": [{"id": "fine"}, {"id": "bad", "data": ' + json.dumps(payload) + "}]}"
    response = call("POST", f"/projects/{pid}/items", owner, content=body, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert _count(world["service"], Item.__table__) == before  # nothing of the batch is stored


def test_an_item_stored_before_the_checks_never_leaves_a_lease_behind(world):
    """Items whose payload no response can carry (stored as imports once allowed) answer a clear
    409, no lease is committed for them, and the Label Studio export streams past them."""
    service, call, pid = world["service"], world["call"], world["pid"]
    legacy = {"legacy-deep": {"deep": json.loads("[" * 300 + "]" * 300)}, "legacy-surrogate": {"t": "\udfff"}}
    for external_id, payload in legacy.items():
        with service.engine.begin() as connection:
            connection.execute(
                insert(Item.__table__),
                [{"project_id": pid, "external_id": external_id, "payload": payload, "is_gold": False,
                  "status": "more", "label": None, "confidence": None, "answer_count": 0, "open_leases": 0,
                  "needed": 1, "priority": 1e9, "branch": -1, "updated_at": utcnow()}],
            )  # fmt: skip
        for _ in range(2):
            response = call("POST", f"/projects/{pid}/tasks/next", world["tokens"]["ann"])
            assert response.status_code == 409 and external_id in response.json()["detail"], response.text
        assert _count(service, Lease.__table__) == 0
        export = call("GET", f"/projects/{pid}/export", world["tokens"]["owner"], params={"format": "label-studio"})
        assert export.status_code == 200
        assert {t["id"]: t["data"] for t in json.loads(export.text)}[external_id] == {**payload, "id": external_id}
        with service.engine.begin() as connection:
            connection.execute(Item.__table__.delete().where(Item.__table__.c.external_id == external_id))


def test_item_ids_with_slashes_can_be_read_and_reviewed(world):
    call, pid, tokens = world["call"], world["pid"], world["tokens"]
    items = [{"id": "shop/shoes/1", "data": {"t": "a"}}, {"id": "/lead", "data": {"t": "b"}}]
    assert call("POST", f"/projects/{pid}/items", tokens["owner"], json={"items": items}).status_code == 201
    for path in ("shop/shoes/1", "shop%2Fshoes%2F1", "/lead"):
        response = call("GET", f"/projects/{pid}/items/{path}", tokens["rita"])
        assert response.status_code == 200, (path, response.text)
        assert response.json()["item"] == ("/lead" if path == "/lead" else "shop/shoes/1")
    response = call("POST", f"/projects/{pid}/review/shop/shoes/1", tokens["rita"], json={"label": "dog"})
    assert response.status_code == 200, response.text
    state = response.json()
    assert state["status"] == "reviewed" and state["label"] == "dog"
    assert state["confidence"] == 1.0  # a review settles the item: final, as refit takes it (truth)
    response = call("POST", f"/projects/{pid}/review/%2Flead", tokens["rita"], json={"label": "cat"})
    assert response.status_code == 200 and response.json()["item"] == "/lead"


def test_exports_keep_gold_items_carry_payloads_and_defuse_formulas(world):
    call, admin = world["call"], world["tokens"]["admin"]
    settings = {"name": "exports", "labels": LABELS, "gold_rate": 0.0, "reviewers_see_gold": True}
    created = call("POST", "/projects", admin, json=settings).json()
    pid, owner = created["project"]["id"], created["owner"]["token"]
    items = [
        {"id": "=HYPERLINK(1)", "data": {"title": "@SUM(A1)", "n": 3}},
        {"id": "g1", "data": {"title": "a cat"}, "gold": "cat", "hint": "whiskers"},
        {"id": "i2", "data": {"title": "-2+3"}},
    ]
    assert call("POST", f"/projects/{pid}/items", owner, json={"items": items}).status_code == 201
    reviewer = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "+rev", "role": "reviewer"})
    assert (
        call("POST", f"/projects/{pid}/review/i2", reviewer.json()["token"], json={"label": "=cmd"}).status_code == 200
    )

    def export(fmt: str) -> str:
        response = call("GET", f"/projects/{pid}/export", owner, params={"format": fmt})
        assert response.status_code == 200, response.text
        return response.text

    labels = pd.read_csv(io.StringIO(export("labels")), dtype=str, keep_default_na=False)
    assert labels["task"].tolist() == ["'=HYPERLINK(1)", "g1", "i2"]
    assert (
        labels.set_index("task").loc["g1", "status"] == "gold" and labels.set_index("task").loc["g1", "label"] == "cat"
    )
    assert labels.set_index("task").loc["i2", "label"] == "'=cmd"
    assert float(labels.set_index("task").loc["i2", "confidence"]) == 1.0
    table = pd.read_csv(io.StringIO(export("csv")), dtype=str, keep_default_na=False).set_index("task")
    assert table.loc["'=HYPERLINK(1)", "title"] == "'@SUM(A1)" and table.loc["i2", "title"] == "'-2+3"
    assert table.loc["g1", "gold"] == "cat" and table.loc["i2", "gold"] == ""
    records = {r["task"]: r for r in map(json.loads, export("jsonl").splitlines())}
    assert records["=HYPERLINK(1)"]["data"] == {"title": "@SUM(A1)", "n": 3} and records["g1"]["gold"] == "cat"
    answers = pd.read_csv(io.StringIO(export("answers")), dtype=str)
    assert answers["worker"].tolist() == ["'+rev"] and answers["label"].tolist() == ["'=cmd"]
    tasks = {t["id"]: t for t in json.loads(export("label-studio"))}
    assert tasks["g1"]["meta"] == {
        "label": "cat",
        "confidence": 1.0,
        "status": "gold",
        "answers": 0,
        "hint": "whiskers",
    }
    # the round trip: a new project takes the tasks back, gold included
    copy = call("POST", "/projects", admin, json={"name": "exports-copy", "labels": LABELS}).json()
    cid, cowner = copy["project"]["id"], copy["owner"]["token"]
    files = {"file": ("tasks.json", export("label-studio").encode())}
    imported = call("POST", f"/projects/{cid}/items/upload", cowner, files=files).json()
    assert imported["imported"] == 3 and imported["gold"] == 1
    back = call("GET", f"/projects/{cid}/export", cowner, params={"format": "jsonl"}).text
    assert {r["task"]: r["gold"] for r in map(json.loads, back.splitlines())} == {
        "=HYPERLINK(1)": None,
        "g1": "cat",
        "i2": None,
    }


def test_a_taxonomy_too_deep_is_refused_at_once(world):
    line = " > ".join(f"n{i}" for i in range(2000))
    started = time.process_time()
    response = world["call"](
        "POST",
        "/projects/upload",
        world["tokens"]["admin"],
        data={"name": "deep"},
        files={"file": ("deep.txt", f"A > B\n{line}\n".encode())},
    )
    assert response.status_code == 400 and time.process_time() - started < 1.0, response.text
    assert "deep.txt, line 2: a path 2000 levels deep" in response.json()["detail"]
