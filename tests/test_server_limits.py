"""The API against hostile and awkward input on each database: compressed uploads capped once
decompressed, tokens checked before a body is read, payloads no response could carry, item ids
with slashes, and exports that keep gold items and defuse spreadsheet formulas."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from crowdloop.server import create_app, ensure_admin
from crowdloop.service import open_service
from crowdloop.store.schema import Item, Lease, utcnow

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

    created = call("POST", "/projects", admin, json={"name": "limits", "labels": LABELS, "gold_rate": 0.0})
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
    """An item whose payload is too deep for a response (stored as imports once allowed) answers a
    clear 409, and no lease is committed for it."""
    service, call, pid = world["service"], world["call"], world["pid"]
    with service.engine.begin() as connection:
        connection.execute(
            insert(Item.__table__),
            [{"project_id": pid, "external_id": "legacy", "payload": {"deep": json.loads("[" * 300 + "]" * 300)},
              "is_gold": False, "status": "more", "label": None, "confidence": None, "answer_count": 0,
              "open_leases": 0, "needed": 1, "priority": 1e9, "branch": -1, "updated_at": utcnow()}],
        )  # fmt: skip
    for _ in range(2):
        response = call("POST", f"/projects/{pid}/tasks/next", world["tokens"]["ann"])
        assert response.status_code == 409 and "legacy" in response.json()["detail"], response.text
    assert _count(service, Lease.__table__) == 0
    with service.engine.begin() as connection:
        connection.execute(Item.__table__.delete().where(Item.__table__.c.external_id == "legacy"))
