"""The REST API in-process (TestClient) on each database: roles on every route, what an annotator
can never read, problem+json errors, the size limit, imports and exports."""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import re
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
    LabelCheck,
    ModelVersionInfo,
    PlanReport,
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
            json={
                "name": name,
                "labels": LABELS,
                "gold_rate": 0.5,
                "policy": {"target": 0.9, "max_overlap": 3},
                "reviewers_see_gold": True,
            },
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
    ("POST", "/projects/{pid}/tasks/next", None, {ANNOTATOR}),  # its reviewers see gold: no tasks for them
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
    ("POST", "/projects/{pid}/label-errors", None, MANAGE),
    ("GET", "/projects/{pid}/plan", None, MANAGE),
    ("GET", "/projects/{pid}/plan.png", None, MANAGE),
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
    owner = world["tokens"]["owner"]
    token = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "idem"}).json()["token"]
    # earlier tests may have settled every item: one that surely needs answers
    assert call("POST", f"/projects/{pid}/items", owner, json={"items": [{"id": "idem-item"}]}).status_code == 201
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


def test_the_exam_is_a_project_setting(world):
    """New annotators sit the exam unless the owner turns it off, at creation or later."""
    call, admin = world["call"], world["tokens"]["admin"]
    made = call(
        "POST", "/projects", admin, json={"name": "no-exam", "labels": LABELS, "exam": False, "gold_rate": 0.001}
    ).json()
    pid, owner = made["project"]["id"], made["owner"]["token"]
    assert made["project"]["exam"] is False
    items = [{"id": f"i{k}", "data": {}} for k in range(3)] + [
        {"id": f"g{k}", "data": {}, "gold": "cat"} for k in range(9)
    ]
    assert call("POST", f"/projects/{pid}/items", owner, json={"items": items}).status_code == 201
    first = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "a"}).json()["token"]
    assert call("POST", f"/projects/{pid}/tasks/next", first).json()["item"].startswith("i")  # real work
    changed = call("PATCH", f"/projects/{pid}", owner, json={"exam": True}).json()
    assert changed["project"]["exam"] is True and set(changed["changed"]) == {"rules"}
    second = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "b"}).json()["token"]
    assert call("POST", f"/projects/{pid}/tasks/next", second).json()["item"].startswith("g")  # the exam: gold
    assert call("GET", f"/projects/{pid}", owner).json()["exam"] is True


def test_prior_accuracy_and_label_value_are_set_patched_and_decide(world):
    call, admin = world["call"], world["tokens"]["admin"]
    policy = {"target": 0.9, "escalate_early": False, "prior_accuracy": 0.6}
    made = call(
        "POST", "/projects", admin, json={"name": "prior", "labels": LABELS, "gold_rate": 0.0, "policy": policy}
    )
    assert made.status_code == 201, made.text
    pid, owner = made.json()["project"]["id"], made.json()["owner"]["token"]
    assert made.json()["project"]["policy"]["prior_accuracy"] == 0.6
    assert made.json()["project"]["policy"]["label_value"] is None
    annotator = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "a"}).json()["token"]
    call("POST", f"/projects/{pid}/items", owner, json={"items": [{"id": "i", "data": {}}]})
    lease = call("POST", f"/projects/{pid}/tasks/next", annotator).json()["lease_id"]
    call("POST", f"/projects/{pid}/tasks/{lease}/submit", annotator, json={"label": "cat"})
    assert call("GET", f"/projects/{pid}/items/i", owner).json()["status"] == "more"  # 0.6 < 0.9

    raised = call("PATCH", f"/projects/{pid}", owner, json={"policy": {"prior_accuracy": 0.95}})
    assert raised.status_code == 200, raised.text
    assert raised.json()["changed"]["policy"]["to"]["prior_accuracy"] == 0.95 and raised.json()["redecided"] == 1
    assert call("GET", f"/projects/{pid}/items/i", owner).json()["status"] == "accepted"

    valued = call("PATCH", f"/projects/{pid}", owner, json={"policy": {"label_value": 30}})
    assert valued.json()["project"]["policy"]["label_value"] == 30
    kept = call("PATCH", f"/projects/{pid}", owner, json={"policy": {"target": 0.92}}).json()["project"]["policy"]
    assert (kept["label_value"], kept["prior_accuracy"]) == (30, 0.95)  # unsent fields stay
    cleared = call("PATCH", f"/projects/{pid}", owner, json={"policy": {"label_value": None}})
    assert cleared.json()["project"]["policy"]["label_value"] is None  # null: not used

    before = call("GET", f"/projects/{pid}", owner).json()["policy"]
    for field, value in [("prior_accuracy", v) for v in (0, 1, 0.0, 1.0, "x", True)] + [("label_value", 0)]:
        new = {"name": "bad-prior", "labels": LABELS, "policy": {field: value}}
        for method, path, body in (
            ("POST", "/projects", new),
            ("PATCH", f"/projects/{pid}", {"policy": {field: value}}),
        ):
            response = call(method, path, admin if method == "POST" else owner, json=body)
            assert response.status_code == 422, (method, value, response.text)
            assert f"policy.{field}" in response.json()["detail"], response.text
    assert call("GET", f"/projects/{pid}", owner).json()["policy"] == before


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
    assert labels.columns.tolist() == ["task", "label", "confidence", "status", "source", "model_version"]
    assert set(labels["task"]) == {"c1", "c2", "j1", "l1", "t1"}  # gold items too, marked gold
    assert set(labels.loc[labels["status"] == "gold", "task"]) == {"c1", "t1"}
    answers = pd.read_csv(io.StringIO(exports["answers"].text), dtype=str)
    assert answers.columns.tolist()[:3] == ["task", "worker", "label"] and set(answers["worker"]) == {"ann", "1"}
    tasks = json.loads(exports["label-studio"].text)
    assert {t["id"] for t in tasks} == {"c1", "c2", "j1", "l1", "t1"}
    assert {a["completed_by"]["email"] for t in tasks for a in t["annotations"]} == {"ann", "1"}
    assert [json.loads(line)["task"] for line in exports["jsonl"].text.splitlines()] == labels["task"].tolist()
    assert exports["label-studio"].headers["content-type"].startswith("application/json")
    assert call("GET", f"/projects/{pid}/export", owner, params={"format": "xml"}).status_code == 422
    pages = [call("GET", f"/projects/{pid}/results", owner, params={"offset": k, "limit": 2}).json() for k in (0, 2)]
    assert [r["item"] for page in pages for r in page] == labels.loc[labels["status"] != "gold", "task"].tolist()


def test_demo_project_tokens_work(tmp_path):
    service = open_service(f"sqlite:///{tmp_path / 'demo.db'}", seed=0)
    try:
        demo = load_demo(service)
        again = load_demo(service)  # a second start: new tokens for the same project, the old ones revoked
        assert again.project_id == demo.project_id and again.tokens["alice"] != demo.tokens["alice"]
        client = TestClient(create_app(service))
        old = client.post(f"/projects/{demo.project_id}/tasks/next",
                          headers={"Authorization": f"Bearer {demo.tokens['alice']}"})  # fmt: skip
        assert old.status_code == 401
        task = client.post(f"/projects/{demo.project_id}/tasks/next",
                           headers={"Authorization": f"Bearer {again.tokens['alice']}"})  # fmt: skip
        assert task.status_code == 200 and task.json()["payload"]["title"]
        progress = client.get(f"/projects/{demo.project_id}/progress",
                              headers={"Authorization": f"Bearer {again.tokens['owner']}"}).json()  # fmt: skip
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
    ("/projects/{project_id}/label-errors", "post", "200"): LabelCheck,
    ("/projects/{project_id}/plan", "get", "200"): PlanReport,
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


def test_a_refit_while_one_runs_answers_409(world):
    """The refit's claim is the database's: while one is held (here by the service, as ``crowdloop
    refit`` from cron would hold it), the API answers 409; once released it starts one (202)."""
    call, pid, owner = world["call"], world["pid"], world["tokens"]["owner"]
    claim = world["service"].claim_refit(pid)
    try:
        busy = call("POST", f"/projects/{pid}/refit", owner)
        assert busy.status_code == 409 and "refit" in busy.json()["detail"], busy.text
    finally:
        claim.release()
    assert call("POST", f"/projects/{pid}/refit", owner).status_code == 202
    assert call("POST", f"/projects/{pid}/refit", owner).status_code == 202  # the last one was released


def test_me_shows_an_annotator_nothing_that_moves_with_gold(world):
    """An annotator's ``/me`` is the same after a gold answer as after any other (no skill, no gold
    record: comparing them after each submit told which items were gold); owners see the record."""
    call, admin = world["call"], world["tokens"]["admin"]
    made = call("POST", "/projects", admin, json={"name": "me-probe", "labels": LABELS, "gold_rate": 0.5}).json()
    pid, owner = made["project"]["id"], made["owner"]["token"]
    items = [{"id": f"r{k}", "data": {}} for k in range(6)] + [
        {"id": f"g{k}", "data": {}, "gold": "cat"} for k in range(6)
    ]
    assert call("POST", f"/projects/{pid}/items", owner, json={"items": items}).status_code == 201
    token = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "prober"}).json()["token"]
    seen = []
    while (task := call("POST", f"/projects/{pid}/tasks/next", token)).status_code == 200:
        lease = task.json()["lease_id"]
        assert call("POST", f"/projects/{pid}/tasks/{lease}/submit", token, json={"label": "cat"}).status_code == 200
        me = call("GET", "/me", token).json()["annotator"]
        assert not {"skill", "gold_right", "gold_total"} & set(me)
        seen.append({k: v for k, v in me.items() if k != "answers"})
    assert len(seen) >= 7 and all(s == seen[0] for s in seen)  # six real items and some gold
    (record,) = [a for a in call("GET", f"/projects/{pid}/annotators", owner).json() if a["name"] == "prober"]
    assert record["gold_total"] >= 1 and record["answers"] == len(seen)
    assert {"skill", "gold_right", "gold_total"} <= set(call("GET", "/me", owner).json()["annotator"])


def test_reviewers_review_and_see_gold_only_if_the_owner_allows(world):
    """Without the project's ``reviewers_see_gold`` reviewers read and review the escalated and
    reviewed items only (a gold item is not found, like any item not up for review) and may take
    tasks; with it they read gold too and take no tasks; a banned reviewer reads nothing at all."""
    from sqlalchemy import update

    from crowdloop.store.schema import Annotator

    call, admin = world["call"], world["tokens"]["admin"]
    policy = {"target": 0.99, "min_overlap": 2, "max_overlap": 2, "escalate_early": False}
    made = call("POST", "/projects", admin, json={"name": "review-rules", "labels": LABELS, "gold_rate": 0.3,
                                                  "policy": policy}).json()  # fmt: skip
    pid, owner = made["project"]["id"], made["owner"]["token"]
    items = [{"id": "a", "data": {}}, {"id": "b", "data": {}}, {"id": "g", "data": {}, "gold": "cat"}]
    assert call("POST", f"/projects/{pid}/items", owner, json={"items": items}).status_code == 201
    rita = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "rita", "role": "reviewer"}).json()
    task = call("POST", f"/projects/{pid}/tasks/next", rita["token"])  # no gold to read: reviewers may answer
    assert call("POST", f"/projects/{pid}/tasks/{task.json()['lease_id']}/skip", rita["token"]).status_code == 204
    for name, label in (("x", "cat"), ("y", "dog")):  # two answers that disagree: escalated
        token = call("POST", f"/projects/{pid}/annotators", owner, json={"name": name}).json()["token"]
        while (task := call("POST", f"/projects/{pid}/tasks/next", token)).status_code == 200:
            lease = task.json()["lease_id"]
            call("POST", f"/projects/{pid}/tasks/{lease}/submit", token, json={"label": label})
    queue = call("GET", f"/projects/{pid}/review", rita["token"]).json()
    assert {t["item"] for t in queue} == {"a", "b"}
    assert call("GET", f"/projects/{pid}/items/a", rita["token"]).json()["status"] == "escalated"
    gold = call("GET", f"/projects/{pid}/items/g", rita["token"])
    missing = call("GET", f"/projects/{pid}/items/nope", rita["token"])
    assert gold.status_code == missing.status_code == 404
    assert gold.json()["detail"].replace("'g'", "'nope'") == missing.json()["detail"]
    assert call("POST", f"/projects/{pid}/review/g", rita["token"], json={"label": "cat"}).status_code == 404
    assert call("POST", f"/projects/{pid}/review/a", rita["token"], json={"label": "cat"}).status_code == 200
    assert call("GET", f"/projects/{pid}/items/g", owner).json()["is_gold"] is True
    assert call("PATCH", f"/projects/{pid}", owner, json={"reviewers_see_gold": True}).status_code == 200
    assert call("GET", f"/projects/{pid}/items/g", rita["token"]).json()["is_gold"] is True
    assert call("POST", f"/projects/{pid}/tasks/next", rita["token"]).status_code == 403  # and answers nothing
    with world["service"]._sessions() as session, session.begin():
        session.execute(update(Annotator).where(Annotator.id == rita["annotator"]["id"]).values(status="banned"))
    fresh = TestClient(create_app(world["service"], auth_cache_seconds=0))
    headers = {"Authorization": f"Bearer {rita['token']}"}
    for path in ("/me", "/projects", f"/projects/{pid}", f"/projects/{pid}/review", f"/projects/{pid}/items/a"):
        assert fresh.get(path, headers=headers).status_code == 403, path
    # the service refuses too, whatever a server remembers of the token
    assert call("GET", f"/projects/{pid}/review", rita["token"]).status_code == 403
    assert call("GET", f"/projects/{pid}/items/a", rita["token"]).status_code == 403


def test_reads_answer_while_a_long_write_holds_the_database(world):
    """A long write (a refit's page, an import) holds the database: a ``next`` waiting for it
    stalls nobody else, and reads (a token never seen, progress, results, an export) answer
    before the write ends (SQLite read in deferred transactions, off the event loop)."""
    import threading

    from sqlalchemy import update

    from crowdloop.store.schema import Project

    service, admin = world["service"], world["tokens"]["admin"]
    with TestClient(create_app(service, auth_cache_seconds=0)) as client:  # one event loop for all requests

        def call(method, path, token, **kwargs):
            return client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)

        made = call("POST", "/projects", admin, json={"name": "busy", "labels": LABELS}).json()
        pid, owner = made["project"]["id"], made["owner"]["token"]
        call("POST", f"/projects/{pid}/items", owner, json={"items": [{"id": f"i{k}"} for k in range(5)]})
        worker = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "w"}).json()["token"]
        holding, gate, released = threading.Event(), threading.Event(), threading.Event()

        def hold(session) -> None:
            session.execute(update(Project).where(Project.id == pid).values(suggestions=3))
            holding.set()
            gate.wait(5)
            released.set()

        writer = threading.Thread(target=service._run, args=(hold,))
        writer.start()
        assert holding.wait(10)
        waiting: list = []
        stalled = threading.Thread(target=lambda: waiting.append(call("POST", f"/projects/{pid}/tasks/next", worker)))
        stalled.start()
        for path in ("/me", f"/projects/{pid}/progress", f"/projects/{pid}/results", f"/projects/{pid}/export"):
            assert call("GET", path, owner).status_code == 200
            assert not released.is_set(), f"{path} waited for the write to end"
        gate.set()
        writer.join()
        stalled.join()
        assert waiting[0].status_code == 200


def test_api_errors_speak_of_json_fields_not_cli_flags(world):
    call, pid, owner = world["call"], world["pid"], world["tokens"]["owner"]
    bad_gold = call("POST", f"/projects/{pid}/gold", owner, json={"gold": [{"item": "i3", "label": "fish"}]})
    bad_item = call("POST", f"/projects/{pid}/items", owner, json={"items": [{"id": "f1", "gold": "fish"}]})
    for response in (bad_gold, bad_item):
        assert response.status_code == 422 and "fish" in response.json()["detail"], response.text
        assert "--" not in response.json()["detail"]


def test_every_request_is_logged_without_secrets(world, caplog):
    """One line per request: method, path, status and milliseconds; never a token, never a query string."""
    import logging

    call, pid, owner = world["call"], world["pid"], world["tokens"]["owner"]
    with caplog.at_level(logging.INFO, logger="crowdloop.requests"):
        call("GET", f"/projects/{pid}/progress?token=secret-in-a-query", owner)
        call("GET", "/me", "cl_not-a-valid-token-at-all")
    lines = [r.getMessage() for r in caplog.records if r.name == "crowdloop.requests"]
    assert len(lines) == 2, lines
    assert re.fullmatch(rf"GET /projects/{pid}/progress 200 \d+\.\d ms", lines[0]), lines[0]
    assert re.fullmatch(r"GET /me 401 \d+\.\d ms", lines[1]), lines[1]
    assert not any(owner in line or "secret" in line or "cl_" in line for line in lines)
