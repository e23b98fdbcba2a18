"""Answers imported through the REST API (JSON, answer tables, Label Studio annotations) and the
Label Studio export read back, on each database."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from crowdloop.io.items import Annotation, parse_items
from crowdloop.server import create_app, ensure_admin
from crowdloop.service import open_service


@pytest.fixture(scope="module")
def api(database_url):
    service = open_service(database_url, seed=0)
    admin = ensure_admin(service)
    client = TestClient(create_app(service))
    count = iter(range(1000))

    def call(method, path, token, **kwargs):
        return client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    def project():
        body = {"name": f"answers-{next(count)}", "labels": ["cat", "dog"], "gold_rate": 0.0}
        body["policy"] = {"target": 0.8, "min_overlap": 2, "max_overlap": 4}
        created = call("POST", "/projects", admin, json=body).json()
        pid, owner = created["project"]["id"], created["owner"]["token"]
        items = {"items": [{"id": f"t{k}", "data": {"text": f"pet {k}"}} for k in range(4)]}
        assert call("POST", f"/projects/{pid}/items", owner, json=items).status_code == 201
        return pid, owner

    yield call, project
    service.close()


def test_json_answers_accept_items_and_report_duplicates(api) -> None:
    call, project = api
    pid, owner = project()
    rows = [{"item": f"t{k}", "annotator": name, "label": "dog"} for k in range(4) for name in ("a", "b")]
    rows.append({"item": "t0", "annotator": "a", "label": "cat"})
    response = call("POST", f"/projects/{pid}/answers", owner, json={"answers": rows})
    assert response.status_code == 201, response.text
    assert response.json() == {"stored": 8, "duplicates": [9], "annotators_created": ["a", "b"], "items_changed": 4}
    results = call("GET", f"/projects/{pid}/results", owner).json()
    assert {(r["status"], r["label"]) for r in results} == {("accepted", "dog")}
    annotator = call("POST", f"/projects/{pid}/annotators", owner, json={"name": "c"}).json()["token"]
    assert call("POST", f"/projects/{pid}/answers", annotator, json={"answers": rows}).status_code == 403


def test_answer_tables_and_toloka_uploads(api) -> None:
    call, project = api
    pid, owner = project()
    table = b"task,worker,label\nt0,a,cat\nt0,b,cat\n"
    response = call("POST", f"/projects/{pid}/answers/upload", owner, files={"file": ("answers.csv", table)})
    assert response.status_code == 201, response.text
    assert response.json()["stored"] == 2
    toloka = (
        b"INPUT:text\tOUTPUT:result\tASSIGNMENT:task_id\tASSIGNMENT:worker_id\tASSIGNMENT:status\n"
        b"pet 1\tdog\tt1\tw1\tAPPROVED\npet 1\tcat\tt1\tw2\tREJECTED\n"
    )
    response = call("POST", f"/projects/{pid}/answers/upload", owner, files={"file": ("assignments.tsv", toloka)})
    assert response.status_code == 201, response.text
    assert response.json()["stored"] == 1 and response.json()["annotators_created"] == ["w1"]
    bad = b"task,worker,label\nt2,a,cat\nt2,b,cow\n"
    response = call("POST", f"/projects/{pid}/answers/upload", owner, files={"file": ("bad.csv", bad)})
    assert response.status_code == 422
    assert "bad.csv, row 2, field 'label': label 'cow' is not in the label space" in response.json()["detail"]
    response = call("POST", f"/projects/{pid}/answers/upload", owner, files={"file": ("x.csv", b"item,who\nt2,a\n")})
    assert response.status_code == 400 and "x.csv, line 1: missing column task, worker, label" in response.text
    state = call("GET", f"/projects/{pid}/items/t2", owner).json()
    assert state["answers"] == 0


def test_label_studio_upload_stores_annotations_and_exports_them_back(api) -> None:
    call, project = api
    pid, owner = project()
    tasks = [
        {
            "data": {"id": "ls1", "text": "a kitten"},
            "annotations": [
                {"completed_by": {"email": "ann@x.org"}, "result": [{"value": {"choices": ["cat"]}}]},
                {"completed_by": 5, "result": [{"value": {"choices": ["cat"]}}]},
                {"completed_by": 6, "was_cancelled": True, "result": [{"value": {"choices": ["dog"]}}]},
            ],
        }
    ]
    files = {"file": ("tasks.json", json.dumps(tasks).encode())}
    response = call("POST", f"/projects/{pid}/items/upload", owner, files=files)
    assert response.status_code == 201, response.text
    assert response.json()["answers"]["stored"] == 2
    assert response.json()["answers"]["annotators_created"] == ["5", "ann@x.org"]
    export = call("GET", f"/projects/{pid}/export", owner, params={"format": "label-studio"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/json")
    back = {i.external_id: i for i in parse_items(export.text, "label-studio")}
    assert back["ls1"].payload == {"text": "a kitten"}
    assert back["ls1"].annotations == (Annotation("ann@x.org", "cat"), Annotation("5", "cat"))
    bad = [{"data": {"id": "ls2"}, "annotations": [{"result": [{"value": {"choices": ["cow"]}}]}]}]
    response = call("POST", f"/projects/{pid}/items/upload", owner, files={"file": ("b.json", json.dumps(bad))})
    assert response.status_code == 422 and "b.json annotations, row 1, field 'label'" in response.json()["detail"]
    assert call("GET", f"/projects/{pid}/items/ls2", owner).status_code == 404  # nothing stored
