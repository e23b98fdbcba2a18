"""The REST API in-process (TestClient) on each database: roles on every route, what an annotator
can never read, problem+json errors, the size limit, imports and exports."""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import time
import uuid

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from crowdloop.server import create_app, ensure_admin
from crowdloop.server.demo import load_demo
from crowdloop.service import (
    AnnotatorInfo,
    ItemState,
    ModelVersionInfo,
    Progress,
    ResultRow,
    ReviewTask,
    SubmitOut,
    TaskOut,
    open_service,
)
from crowdloop.service.answer_import import AnswersImported

LABELS = ["cat", "dog", "bird"]
MAX_BODY = 200_000


@pytest.fixture(scope="module")
def world(database_url):
    """Two projects on one server: owner, reviewer, two annotators and a spare in the first; one
    annotator in the second."""
    service = open_service(database_url, seed=0)
    admin = ensure_admin(service)
    client = TestClient(create_app(service, max_body_bytes=MAX_BODY))

    def call(method, path, token=None, headers=None, **kwargs):
        headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        return client.request(method, path, headers=headers, **kwargs)

    def project(name):
        response = call(
            "POST",
            "/projects",
            admin,
            json={"name": name, "labels": LABELS, "gold_rate": 0.5, "policy": {"target": 0.9, "max_overlap": 3}},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["project"]["id"], body["owner"]["token"]

    pid, owner = project("first")
    pid2, owner2 = project("second")
    tokens = {"admin": admin, "owner": owner}
    ids = {}
    for name, role in (
        ("reviewer", "reviewer"),
        ("annotator", "annotator"),
        ("annotator2", "annotator"),
        ("spare", "annotator"),
    ):
        response = call("POST", f"/projects/{pid}/annotators", owner, json={"name": name, "role": role})
        assert response.status_code == 201, response.text
        tokens[name], ids[name] = response.json()["token"], response.json()["annotator"]["id"]
    tokens["other"] = call("POST", f"/projects/{pid2}/annotators", owner2, json={"name": "x"}).json()["token"]
    items = [{"id": f"i{k}", "data": {"text": f"item {k}"}} for k in range(12)]
    items.append({"id": "g0", "data": {"text": "a control item"}, "gold": "bird", "hint": "it flies"})
    assert call("POST", f"/projects/{pid}/items", owner, json={"items": items}).status_code == 201
    assert call("POST", f"/projects/{pid2}/items", owner2, json={"items": items[:2]}).status_code == 201
    yield {"service": service, "client": client, "call": call, "pid": pid, "pid2": pid2, "tokens": tokens, "ids": ids}
    service.close()


OWNER, REVIEWER, ANNOTATOR, ADMIN = "owner", "reviewer", "annotator", "admin"
MANAGE = {OWNER, ADMIN}
# method, path, body, callers admitted; {pid}, {spare} filled in. Every route of the app is listed.
ROUTES = [
    ("POST", "/projects", lambda: {"name": uuid.uuid4().hex, "labels": ["a", "b"]}, {ADMIN}),
    ("POST", "/projects/upload", None, {ADMIN}),
    ("GET", "/projects", None, {OWNER, REVIEWER, ANNOTATOR, ADMIN, "other"}),
    ("GET", "/me", None, {OWNER, REVIEWER, ANNOTATOR, ADMIN, "other"}),
    ("GET", "/projects/{pid}", None, {OWNER, REVIEWER, ANNOTATOR, ADMIN}),
    ("PATCH", "/projects/{pid}", lambda: {"lease_seconds": 600}, MANAGE),
    ("POST", "/projects/{pid}/items", lambda: {"items": [{"id": uuid.uuid4().hex}]}, MANAGE),
    ("POST", "/projects/{pid}/items/upload", None, MANAGE),
    (
        "POST",
        "/projects/{pid}/answers",
        lambda: {"answers": [{"item": "g0", "annotator": uuid.uuid4().hex, "label": "bird"}]},
        MANAGE,
    ),
    ("POST", "/projects/{pid}/answers/upload", None, MANAGE),
    ("POST", "/projects/{pid}/gold", lambda: {"gold": [{"item": "i11", "label": "cat"}]}, MANAGE),
    (
        "POST",
        "/projects/{pid}/predictions",
        lambda: {"model": "m", "version": "1", "probabilities": {"i10": {"cat": 0.5, "dog": 0.3, "bird": 0.2}}},
        MANAGE,
    ),
    ("POST", "/projects/{pid}/annotators", lambda: {"name": uuid.uuid4().hex}, MANAGE),
    ("GET", "/projects/{pid}/annotators", None, MANAGE),
    ("PATCH", "/projects/{pid}/annotators/{spare}", lambda: {"role": "annotator"}, MANAGE),
    ("POST", "/projects/{pid}/annotators/{spare}/tokens", None, MANAGE),
    ("DELETE", "/projects/{pid}/annotators/{spare}/tokens", None, MANAGE),
    ("POST", "/projects/{pid}/tasks/next", None, {REVIEWER, ANNOTATOR}),
    ("POST", "/projects/{pid}/tasks/no-such-lease/submit", lambda: {"label": "cat"}, {REVIEWER, ANNOTATOR}),
    ("POST", "/projects/{pid}/tasks/no-such-lease/skip", None, {REVIEWER, ANNOTATOR}),
    ("GET", "/projects/{pid}/review", None, {OWNER, REVIEWER, ADMIN}),
    ("POST", "/projects/{pid}/review/i9", lambda: {"label": "dog"}, {OWNER, REVIEWER}),
    ("GET", "/projects/{pid}/items/i1", None, {OWNER, REVIEWER, ADMIN}),
    ("GET", "/projects/{pid}/progress", None, MANAGE),
    ("GET", "/projects/{pid}/results", None, MANAGE),
    ("GET", "/projects/{pid}/events", None, MANAGE),
    ("GET", "/projects/{pid}/export", None, MANAGE),
    ("POST", "/projects/{pid}/refit", None, MANAGE),
]
UPLOADS = {
    "/projects/upload": lambda: {"data": {"name": uuid.uuid4().hex}, "files": {"file": ("labels.txt", b"a\nb\n")}},
    "/projects/{pid}/items/upload": lambda: {
        "files": {"file": (f"{uuid.uuid4().hex}.csv", b"id,t\n" + uuid.uuid4().hex.encode() + b",x\n")}
    },
    "/projects/{pid}/answers/upload": lambda: {
        "files": {"file": ("answers.csv", b"task,worker,label\ng0," + uuid.uuid4().hex.encode() + b",bird\n")}
    },
}
CALLERS = ["nobody", "bad-token", ADMIN, OWNER, REVIEWER, ANNOTATOR, "other"]


def test_the_table_lists_every_route(world):
    paths = world["client"].app.openapi()["paths"]
    routes = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    listed = {
        (
            m,
            p.replace("{pid}", "{project_id}")
            .replace("{spare}", "{annotator_id}")
            .replace("no-such-lease", "{lease_id}")
            .replace("i9", "{item}")
            .replace("i1", "{item}"),
        )
        for m, p, _, _ in ROUTES
    }
    assert routes == listed


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path", "body", "admitted"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_roles_on_every_route(world, caller, method, path, body, admitted):
    token = {"nobody": None, "bad-token": "not-a-token"}.get(caller, world["tokens"].get(caller))
    url = path.format(pid=world["pid"], spare=world["ids"]["spare"])
    kwargs = UPLOADS[path]() if path in UPLOADS else {"json": body()} if body else {}
    response = world["call"](method, url, token, **kwargs)
    if caller in ("nobody", "bad-token"):
        expected = 401
        assert response.headers["www-authenticate"] == "Bearer"
    elif caller in admitted:
        # admitted: whatever the route answers, it is not an auth refusal nor a crash
        assert response.status_code not in (401, 403, 404) or "no-such-lease" in url, response.text
        assert response.status_code < 500, response.text
        return
    elif caller == "other" and "{pid}" in path:
        expected = 404  # another project is invisible
    else:
        expected = 403
    assert response.status_code == expected, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == expected


def test_another_project_is_invisible(world):
    call, other = world["call"], world["tokens"]["other"]
    for path in ("/projects/{pid}", "/projects/{pid}/review", "/projects/{pid}/items/i1", "/projects/{pid}/export"):
        assert call("GET", path.format(pid=world["pid"]), other).status_code == 404
    assert call("POST", f"/projects/{world['pid']}/tasks/next", other).status_code == 404
    assert [p["id"] for p in call("GET", "/projects", other).json()] == [world["pid2"]]


def test_an_annotator_never_sees_gold_answers_or_consensus(world):
    call, pid = world["call"], world["pid"]
    mine, theirs = world["tokens"]["annotator"], world["tokens"]["annotator2"]
    # the other annotator answers everything they are given
    while (task := call("POST", f"/projects/{pid}/tasks/next", theirs)).status_code == 200:
        assert (
            call(
                "POST", f"/projects/{pid}/tasks/{task.json()['lease_id']}/submit", theirs, json={"label": "bird"}
            ).status_code
            == 200
        )
    seen = []
    while (task := call("POST", f"/projects/{pid}/tasks/next", mine)).status_code == 200:
        body = task.json()
        seen.append(body)
        assert set(body) == {"lease_id", "item", "payload", "suggestions", "expires_at"}
        text = json.dumps(body)
        assert "it flies" not in text and "gold" not in text and "status" not in text and "confidence" not in text
        if body["item"] == "g0":  # the gold item: its true label is nowhere in the task
            assert "bird" not in text
        out = call("POST", f"/projects/{pid}/tasks/{body['lease_id']}/submit", mine, json={"label": "cat"})
        assert out.status_code == 200
        assert set(out.json()) == {"answer_id", "lease_id", "item", "label", "duplicate", "annotator_status"}
        assert out.json()["label"] == "cat"
    assert task.status_code == 204
    assert "g0" in {t["item"] for t in seen}  # the gold item was served, looking like any other
    for path in (
        "items/g0",
        "items/i0",
        "review",
        "results",
        "progress",
        "export?format=answers",
        "events",
        "annotators",
    ):
        assert call("GET", f"/projects/{pid}/{path}", mine).status_code == 403, path
    brief = call("GET", f"/projects/{pid}", mine).json()
    assert set(brief) == {"id", "name", "labels", "is_taxonomy"}


def test_submit_with_next_answers_and_leases_in_one_request(world):
    call, pid, service = world["call"], world["pid"], world["service"]
    token = call("POST", f"/projects/{pid}/annotators", world["tokens"]["owner"], json={"name": "chain"}).json()[
        "token"
    ]
    # fresh items to chain through (earlier tests may have settled the others)
    fresh = [{"id": f"chain-{k}"} for k in range(3)]
    assert call("POST", f"/projects/{pid}/items", world["tokens"]["owner"], json={"items": fresh}).status_code == 201
    task = call("POST", f"/projects/{pid}/tasks/next", token).json()
    answered = []
    while task is not None:
        out = call("POST", f"/projects/{pid}/tasks/{task['lease_id']}/submit?next=true", token, json={"label": "cat"})
        assert out.status_code == 200, out.text
        body = out.json()
        assert body["item"] == task["item"] and body["label"] == "cat" and not body["duplicate"]
        if not answered:  # a retry finds the stored answer and the same next task, leased once
            again = call("POST", f"/projects/{pid}/tasks/{task['lease_id']}/submit?next=true", token,
                         json={"label": "cat"}).json()  # fmt: skip
            assert again["duplicate"] and again["next_task"] == body["next_task"]
        answered.append(body["item"])
        task = body["next_task"]
        if task is not None:  # the next task looks exactly like one from tasks/next
            assert set(task) == {"lease_id", "item", "payload", "suggestions", "expires_at"}
            assert task["item"] not in answered
    assert len(answered) == len(set(answered)) > 1
    assert call("POST", f"/projects/{pid}/tasks/next", token).status_code == 204  # nothing left, no lease held
    chain = next(a for a in service.annotator_skills(pid) if a.name == "chain")
    assert chain.answers == len(answered)  # every answer stored once


def test_submit_is_idempotent_and_checks_labels(world):
    call, pid, service = world["call"], world["pid"], world["service"]
    token = call("POST", f"/projects/{pid}/annotators", world["tokens"]["owner"], json={"name": "idem"}).json()["token"]
    task = call("POST", f"/projects/{pid}/tasks/next", token).json()
    url = f"/projects/{pid}/tasks/{task['lease_id']}/submit"
    bad = call("POST", url, token, json={"label": "horse"})
    assert bad.status_code == 422 and "horse" in bad.json()["detail"]
    first = call("POST", url, token, json={"label": "dog", "idempotency_key": "k1"})
    again = call("POST", url, token, json={"label": "dog", "idempotency_key": "k1"})
    assert first.status_code == again.status_code == 200
    assert not first.json()["duplicate"] and again.json()["duplicate"]
    assert first.json()["answer_id"] == again.json()["answer_id"]
    answers = service.answers_frame(pid)
    assert ((answers["worker"] == "idem") & (answers["task"] == task["item"])).sum() == 1


@pytest.mark.parametrize(
    ("request_kwargs", "status", "detail"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"items": []}}, 422, "items"),
        ({"json": {"items": [{"id": "i0"}]}}, 400, "i0"),  # already imported
        ({"json": {"items": [{"id": "x", "gold": "horse"}]}}, 422, "horse"),
        ({"json": {"items": [{"id": "y", "unknown_field": 1}]}}, 422, "unknown_field"),
        ({"json": {"items": [{"id": "z", "predictions": {"cat": 1.5}}]}}, 422, "predictions"),
        ({"content": b"[" * (MAX_BODY + 1), "headers": {"content-type": "application/json"}}, 413, "limit"),
    ],
)
def test_problem_details(world, request_kwargs, status, detail):
    response = world["call"]("POST", f"/projects/{world['pid']}/items", world["tokens"]["owner"], **request_kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and detail in body["detail"]


def test_size_limit_on_a_chunked_body(world):
    def chunks():
        for _ in range(50):
            yield b" " * 10_000

    response = world["call"](
        "POST",
        f"/projects/{world['pid']}/items",
        world["tokens"]["owner"],
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"


def test_conflicts_and_missing_things(world):
    call, admin, owner, pid = world["call"], world["tokens"]["admin"], world["tokens"]["owner"], world["pid"]
    taken = call("POST", "/projects", admin, json={"name": "first", "labels": ["a"]})
    assert taken.status_code == 409 and taken.headers["content-type"] == "application/problem+json"
    both = call("POST", "/projects", admin, json={"name": "n", "labels": ["a"], "taxonomy": ["A > B"]})
    assert both.status_code == 422
    overlap = call(
        "POST", "/projects", admin, json={"name": "n", "labels": ["a"], "policy": {"min_overlap": 4, "max_overlap": 2}}
    )
    assert overlap.status_code == 422 and "max_overlap" in overlap.json()["detail"]
    assert call("GET", "/projects/999999", admin).status_code == 404
    assert call("GET", f"/projects/{pid}/items/nope", owner).status_code == 404
    assert call("GET", "/no/such/route").headers["content-type"] == "application/problem+json"
    bad_tax = call(
        "POST",
        "/projects/upload",
        admin,
        data={"name": "t"},
        files={"file": ("tax.txt", b"1 - A\n2 - A > B\n3 - C > D\n")},
    )
    assert bad_tax.status_code == 400 and "tax.txt, line 3" in bad_tax.json()["detail"]


def test_project_settings_change_field_by_field(world):
    call, admin = world["call"], world["tokens"]["admin"]
    made = call("POST", "/projects", admin, json={"name": "settings", "labels": LABELS, "gold_rate": 0.0}).json()
    pid, owner = made["project"]["id"], made["owner"]["token"]
    annotator = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "a"}).json()["token"]
    items = [{"id": f"i{k}", "data": {}} for k in range(3)] + [{"id": "g", "data": {}, "gold": "cat"}]
    assert call("POST", f"/projects/{pid}/items", owner, json={"items": items}).status_code == 201

    body = {"gold_rate": 1.0, "name": "settings-2", "policy": {"max_overlap": 4, "prices": {"crowd": 2.0}}}
    changed = call("PATCH", f"/projects/{pid}", owner, json=body)
    assert changed.status_code == 200, changed.text
    out = changed.json()
    assert set(out["changed"]) == {"gold_rate", "name", "policy"}
    assert out["changed"]["gold_rate"] == {"from": 0.0, "to": 1.0}
    assert out["redecided"] == 3 and out["left_to_refit"] == 0
    policy = call("GET", f"/projects/{pid}", owner).json()["policy"]
    assert (policy["max_overlap"], policy["target"], policy["prices"]) == (
        4,
        0.97,
        {"crowd": 2.0, "expert": 10.0, "model": 0.0},
    )
    assert call("POST", f"/projects/{pid}/tasks/next", annotator).json()["item"] == "g"  # gold rate 1 now
    events = call("GET", f"/projects/{pid}/events", owner).json()
    assert [e["kind"] for e in events].count("settings") == 1

    refused = {
        "labels": (["a", "b"], 422, "label space never changes"),
        "taxonomy": (["A > B"], 422, "label space never changes"),
        "owner": ("x", 422, "owner"),
        "gold_rate": (2, 422, "gold_rate"),
        "name": ("first", 409, "exists already"),
    }
    for field, (value, status, detail) in refused.items():
        response = call("PATCH", f"/projects/{pid}", owner, json={field: value})
        assert response.status_code == status and detail in response.text, response.text
        assert response.headers["content-type"] == "application/problem+json"
    crossed = call("PATCH", f"/projects/{pid}", owner, json={"policy": {"min_overlap": 6}})
    assert crossed.status_code == 422 and "max_overlap" in crossed.json()["detail"]
    assert call("PATCH", f"/projects/{pid}", owner, json={"name": "a\u0000b"}).status_code == 422
    assert call("PATCH", f"/projects/{world['pid']}", owner, json={"gold_rate": 0.5}).status_code == 404
    assert call("GET", f"/projects/{pid}", owner).json()["policy"] == policy  # nothing refused was stored


def test_revoked_token_is_refused(world):
    call, owner, pid = world["call"], world["tokens"]["owner"], world["pid"]
    made = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "leaver"}).json()
    assert call("GET", "/me", made["token"]).status_code == 200
    revoked = call("DELETE", f"/projects/{pid}/annotators/{made['annotator']['id']}/tokens", owner)
    assert revoked.json() == {"count": 1}
    assert call("GET", "/me", made["token"]).status_code == 401


def test_imports_and_exports_of_every_format(world):
    call, admin = world["call"], world["tokens"]["admin"]
    created = call(
        "POST",
        "/projects",
        admin,
        json={
            "name": "formats",
            "taxonomy": ["Animal > Cat", "Animal > Dog"],
            "gold_rate": 0.0,
            "policy": {"max_overlap": 2},
        },
    ).json()
    pid, owner = created["project"]["id"], created["owner"]["token"]
    assert created["project"]["is_taxonomy"] and "Animal" in created["project"]["labels"]
    files = {
        "a.csv": b"id,title,gold\nc1,kitten,Animal > Cat\nc2,puppy,\n",
        "b.jsonl": b'{"id": "j1", "data": {"title": "tabby"}}\n',
        "c.json": json.dumps(
            [
                {
                    "id": "l1",
                    "data": {"title": "hound"},
                    "predictions": [
                        {"model_version": "v1", "score": 0.8, "result": [{"value": {"choices": ["Animal > Dog"]}}]}
                    ],
                    "annotations": [{"completed_by": 1, "result": [{"value": {"choices": ["Animal > Dog"]}}]}],
                }
            ]
        ).encode(),
        "d.tsv": b"INPUT:id\tINPUT:title\tGOLDEN:category\nt1\tsiamese\tAnimal > Cat\n",
    }
    counts = {}
    for name, content in files.items():
        response = call("POST", f"/projects/{pid}/items/upload", owner, files={"file": (name, content)})
        assert response.status_code == 201, response.text
        counts[name] = response.json()
    assert counts["a.csv"]["imported"] == 2 and counts["a.csv"]["gold"] == 1
    assert counts["c.json"]["predictions"] == 1 and counts["c.json"]["answers"]["stored"] == 1
    assert counts["d.tsv"]["gold"] == 1
    annotator = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "ann"}).json()["token"]
    while (task := call("POST", f"/projects/{pid}/tasks/next", annotator)).status_code == 200:
        call("POST", f"/projects/{pid}/tasks/{task.json()['lease_id']}/submit", annotator, json={"label": "Animal"})
    exports = {
        fmt: call("GET", f"/projects/{pid}/export", owner, params={"format": fmt})
        for fmt in ("labels", "csv", "jsonl", "answers", "label-studio")
    }
    assert all(r.status_code == 200 for r in exports.values())
    labels = pd.read_csv(io.StringIO(exports["labels"].text), dtype=str)
    assert labels.columns.tolist() == ["task", "label", "confidence", "status"]
    assert set(labels["task"]) == {"c2", "j1", "l1"}  # gold items are not results
    answers = pd.read_csv(io.StringIO(exports["answers"].text), dtype=str)
    assert answers.columns.tolist()[:3] == ["task", "worker", "label"] and set(answers["worker"]) == {"ann", "1"}
    tasks = json.loads(exports["label-studio"].text)
    assert {t["id"] for t in tasks} == {"c2", "j1", "l1"}
    assert {a["completed_by"]["email"] for t in tasks for a in t["annotations"]} == {"ann", "1"}
    assert [json.loads(line)["task"] for line in exports["jsonl"].text.splitlines()] == labels["task"].tolist()
    assert exports["label-studio"].headers["content-type"].startswith("application/json")
    assert call("GET", f"/projects/{pid}/export", owner, params={"format": "xml"}).status_code == 422
    pages = [call("GET", f"/projects/{pid}/results", owner, params={"offset": k, "limit": 2}).json() for k in (0, 2)]
    assert [r["item"] for page in pages for r in page] == labels["task"].tolist()


def test_demo_project_tokens_work(tmp_path):
    service = open_service(f"sqlite:///{tmp_path / 'demo.db'}", seed=0)
    try:
        demo = load_demo(service)
        again = load_demo(service)  # a second start gives new tokens for the same project
        assert again.project_id == demo.project_id and again.tokens["alice"] != demo.tokens["alice"]
        client = TestClient(create_app(service))
        for tokens in (demo.tokens, again.tokens):
            task = client.post(f"/projects/{demo.project_id}/tasks/next",
                               headers={"Authorization": f"Bearer {tokens['alice']}"})  # fmt: skip
            assert task.status_code == 200 and task.json()["payload"]["title"]
        progress = client.get(f"/projects/{demo.project_id}/progress",
                              headers={"Authorization": f"Bearer {demo.tokens['owner']}"}).json()  # fmt: skip
        assert progress["gold_items"] == demo.gold == 10
    finally:
        service.close()


def test_token_cache_forgets_a_token_revoked_elsewhere(world):
    service, pid = world["service"], world["pid"]
    info, token = service.add_annotator(pid, "cached")
    client = TestClient(create_app(service, auth_cache_seconds=0.3))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/me", headers=headers).status_code == 200
    service.revoke_tokens(info.id)  # as another server process would
    assert client.get("/me", headers=headers).status_code == 200  # remembered for 0.3 s at most
    time.sleep(0.35)
    assert client.get("/me", headers=headers).status_code == 401


def test_openapi_docs_and_bearer_scheme(world):
    client = world["client"]
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["HTTPBearer"]["description"],
    }
    errors = schema["paths"]["/projects/{project_id}/tasks/next"]["post"]["responses"]["401"]["content"]
    assert list(errors) == ["application/problem+json"]


SERVICE_RESULTS = {
    ("/projects/{project_id}/tasks/next", "post", "200"): TaskOut,
    ("/projects/{project_id}/tasks/{lease_id}/submit", "post", "200"): SubmitOut,
    ("/projects/{project_id}/review", "get", "200"): ReviewTask,
    ("/projects/{project_id}/review/{item}", "post", "200"): ItemState,
    ("/projects/{project_id}/items/{item}", "get", "200"): ItemState,
    ("/projects/{project_id}/progress", "get", "200"): Progress,
    ("/projects/{project_id}/results", "get", "200"): ResultRow,
    ("/projects/{project_id}/annotators", "get", "200"): AnnotatorInfo,
    ("/projects/{project_id}/annotators/{annotator_id}", "patch", "200"): AnnotatorInfo,
    ("/projects/{project_id}/predictions", "post", "201"): ModelVersionInfo,
    ("/projects/{project_id}/answers", "post", "201"): AnswersImported,
}


def test_openapi_documents_service_results_as_they_are(world):
    """A route answering with a service result documents that dataclass: its fields, its docstring
    and the descriptions its fields carry."""
    schema = world["client"].get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for (path, method, status), result in SERVICE_RESULTS.items():
        body = schema["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
        name = body.get("$ref", body.get("items", {}).get("$ref", "")).rsplit("/", 1)[-1]
        assert name == result.__name__, path
        component = components[name]
        assert set(component["properties"]) == {f.name for f in dataclasses.fields(result)}, name
        assert component["description"] == inspect.cleandoc(result.__doc__), name
        for f in dataclasses.fields(result):
            assert component["properties"][f.name].get("description") == f.metadata.get("description"), (name, f.name)
    submit = components["SubmitOut"]
    assert submit["properties"]["next_task"]["description"].startswith("With `?next=true`")
    assert "next_task" not in submit["required"]
    imported = components["AnswersImported"]["properties"]
    assert all(imported[f]["description"] for f in ("duplicates", "annotators_created", "items_changed"))
    assert components["TokenOut"]["properties"]["annotator"] == {"$ref": "#/components/schemas/AnnotatorInfo"}
