"""The web pages in-process (TestClient): sessions and CSRF, the same role checks as the API on
every page, payloads as text, the security headers, both languages, the owner's forms
(settings with the API's validation, annotators and tokens, imports with their errors), the
owner's learning curve, plan and label errors, and disputed items in the review queue."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from crowdloop.consensus import ConsensusPolicy, Prices
from crowdloop.consensus.policy import bounds_of
from crowdloop.labels import LabelSpace
from crowdloop.server import create_app, ensure_admin
from crowdloop.server.demo import load_demo
from crowdloop.server.sessions import COOKIE
from crowdloop.server.web.common import CSP, HERE, LANG_COOKIE, translator
from crowdloop.server.web.pages import SETTINGS_FIELDS, _version_plots
from crowdloop.service import ItemIn, open_service
from crowdloop.service.answer_import import AnswerIn
from crowdloop.service.types import LabelErrorCounts, ModelVersionMetrics

PAGES = ("", "/label", "/review", "/annotators", "/settings", "/data", "/events")
ALLOWED = {
    "owner": {"", "/review", "/annotators", "/settings", "/data", "/events"},
    "reviewer": {"/label", "/review"},
    "alice": {"/label"},
}
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    service = open_service(f"sqlite:///{tmp_path_factory.mktemp('web') / 'crowdloop.db'}", seed=0)
    admin = ensure_admin(service)
    demo = load_demo(service)
    service.import_items(demo.project_id, [ItemIn("xss-1", {"title": XSS})])
    other = service.create_project("other", demo_labels(service, demo.project_id))
    stranger = service.add_annotator(other.id, "stranger")[1]
    app = create_app(service)
    yield {"app": app, "service": service, "admin": admin, "demo": demo, "other": other.id, "stranger": stranger}
    service.close()


def demo_labels(service, project_id):
    return service.get_project(project_id).labels


def client_for(world, token: str | None) -> TestClient:
    client = TestClient(world["app"], base_url="http://testserver")
    if token is not None:
        response = client.post("/signin", data={"token": token}, follow_redirects=False)
        assert response.status_code == 303, response.text
    return client


def csrf_of(client: TestClient, path: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


def test_sign_in_gives_a_signed_http_only_strict_cookie_never_the_token(world):
    token = world["demo"].tokens["alice"]
    client = TestClient(world["app"], base_url="http://testserver")
    response = client.post("/signin", data={"token": token}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    assert token not in cookie and token not in response.headers.get("location", "")
    assert client.get("/", follow_redirects=False).headers["location"] == f"/p/{world['demo'].project_id}/label"
    forged = client.cookies[COOKIE].replace(f"{world['demo'].project_id}.", "1.", 1)
    client.cookies.set(COOKIE, "1" + forged[1:])
    assert client.get("/", follow_redirects=False).headers["location"] == "/signin"


def test_a_wrong_token_or_a_post_from_another_site_signs_nobody_in(world):
    client = TestClient(world["app"], base_url="http://testserver")
    wrong = client.post("/signin", data={"token": "cl_nope"}, follow_redirects=False)
    assert wrong.status_code == 401 and COOKIE not in wrong.headers.get("set-cookie", "")
    token = world["demo"].tokens["alice"]
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = client.post("/signin", data={"token": token}, headers=headers, follow_redirects=False)
        assert refused.status_code == 403 and COOKIE not in refused.headers.get("set-cookie", "")


def test_every_page_admits_the_roles_the_api_admits(world):
    pid = world["demo"].project_id
    for name, allowed in ALLOWED.items():
        client = client_for(world, world["demo"].tokens[name])
        for page in PAGES:
            response = client.get(f"/p/{pid}{page}", follow_redirects=False)
            assert response.status_code == (200 if page in allowed else 403), (name, page)
    stranger = client_for(world, world["stranger"])
    assert all(stranger.get(f"/p/{pid}{page}").status_code == 404 for page in PAGES)
    nobody = client_for(world, None)
    for page in PAGES:
        response = nobody.get(f"/p/{pid}{page}", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/signin"
    admin = client_for(world, world["admin"])
    assert "demo" in admin.get("/").text
    assert admin.get(f"/p/{pid}").status_code == 200
    assert admin.get(f"/p/{pid}/label").status_code == 403  # the admin manages; answering needs a member


def test_the_session_calls_the_api_only_with_its_csrf_header(world):
    pid = world["demo"].project_id
    client = client_for(world, world["demo"].tokens["bob"])
    csrf = csrf_of(client, f"/p/{pid}/label")
    assert client.post(f"/projects/{pid}/tasks/next").status_code == 403
    assert client.post(f"/projects/{pid}/tasks/next", headers={"X-CSRF-Token": "x" + csrf}).status_code == 403
    task = client.post(f"/projects/{pid}/tasks/next", headers={"X-CSRF-Token": csrf})
    assert task.status_code == 200 and set(task.json()) == {"lease_id", "item", "payload", "suggestions", "expires_at"}
    submit = f"/projects/{pid}/tasks/{task.json()['lease_id']}/submit?next=true"
    body = {"label": "Electronics", "duration_ms": 3000}
    assert client.post(submit, json=body).status_code == 403  # a body and a session, no CSRF header
    answered = client.post(submit, json=body, headers={"X-CSRF-Token": csrf})
    assert answered.status_code == 200 and answered.json()["label"] == "Electronics"
    assert client.get("/me").json()["annotator"]["name"] == "bob"  # a read needs no CSRF value
    assert TestClient(world["app"]).post(f"/projects/{pid}/tasks/next").status_code == 401  # no session, no bearer
    owner = client_for(world, world["demo"].tokens["owner"])
    refused = owner.post(f"/p/{pid}/annotators", data={"name": "mallory"})
    assert refused.status_code == 403
    assert "mallory" not in {a.name for a in world["service"].annotator_skills(pid)}
    assert owner.post("/signout", follow_redirects=False).status_code == 403


def test_sign_out_ends_the_session(world):
    client = client_for(world, world["demo"].tokens["reviewer"])
    csrf = csrf_of(client, "/signin")
    response = client.post("/signout", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303 and 'crowdloop_session=""' in response.headers["set-cookie"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/signin"


@pytest.mark.parametrize("action", ["revoke", "rotate"])
def test_revoking_or_rotating_the_token_ends_the_sessions_it_opened(world, action):
    """A session lasts no longer than the token it was opened with: once the owner revokes or
    rotates it, pages send to sign in and the API refuses the cookie; a new token signs in again."""
    service, pid = world["service"], world["demo"].project_id
    info, token = service.add_annotator(pid, f"leaver-{action}")
    client = client_for(world, token)
    csrf = csrf_of(client, f"/p/{pid}/label")
    assert client.post(f"/projects/{pid}/tasks/next", headers={"X-CSRF-Token": csrf}).status_code in (200, 204)
    owner = client_for(world, world["demo"].tokens["owner"])
    done = owner.post(f"/p/{pid}/annotators/{info.id}/{action}", data={"csrf": csrf_of(owner, f"/p/{pid}/annotators")})
    assert done.status_code == 200
    for page in ("/", f"/p/{pid}/label"):
        assert client.get(page, follow_redirects=False).headers["location"] == "/signin"
    assert client.post(f"/projects/{pid}/tasks/next", headers={"X-CSRF-Token": csrf}).status_code == 401
    if action == "rotate":
        fresh = re.search(r'id="new-token"[^>]*>([^<]+)<', done.text).group(1)
        assert client_for(world, fresh).get(f"/p/{pid}/label").status_code == 200


def test_revoking_one_token_ends_only_the_sessions_it_opened(world):
    """``crowdloop revoke-token`` (another process: no cache here to tell) ends the sessions of that
    token; a session the annotator opened with another token goes on."""
    from crowdloop.server import create_app

    service, pid = world["service"], world["demo"].project_id
    info, first = service.add_annotator(pid, "two-tokens")
    second = service.new_token(info.id)
    app = create_app(service, auth_cache_seconds=0)
    ended, kept = client_for({"app": app}, first), client_for({"app": app}, second)
    assert service.revoke_token(first).id == info.id
    assert ended.get(f"/p/{pid}/label", follow_redirects=False).headers["location"] == "/signin"
    assert kept.get(f"/p/{pid}/label", follow_redirects=False).status_code == 200


def test_pages_send_the_csp_and_load_scripts_only_from_files(world):
    pid = world["demo"].project_id
    owner = client_for(world, world["demo"].tokens["owner"])
    reviewer = client_for(world, world["demo"].tokens["reviewer"])
    pages = [owner.get(f"/p/{pid}{p}") for p in ALLOWED["owner"]] + [reviewer.get(f"/p/{pid}/label")]
    pages += [owner.get("/docs"), owner.get("/signin")]
    for response in pages:
        assert response.headers["content-security-policy"] == CSP
        assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP
        for tag in re.findall(r"<script[^>]*>", response.text):
            assert re.search(r'src="/(static|docs/assets)/[\w.-]+\.js"', tag) or 'type="application/json"' in tag, tag
        assert not re.search(r"\son[a-z]+=", response.text)  # no inline event handlers
        assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in response.text


def test_payloads_stay_text_on_every_page(world):
    service, pid = world["service"], world["demo"].project_id
    labels = ("Electronics", "Apparel", "Toys & Games")  # three answers that disagree: the item goes to review
    for k, label in enumerate(labels):
        annotator = service.add_annotator(pid, f"xss-{k}")[0]
        while (task := service.next_task(annotator)) is not None and task.item != "xss-1":
            service.skip(annotator, task.lease_id)
        service.submit(annotator, task.lease_id, label, duration_ms=5000)
    assert service.item_state(pid, "xss-1").status == "escalated"
    owner = client_for(world, world["demo"].tokens["owner"])
    for page in ALLOWED["owner"]:
        assert XSS not in owner.get(f"/p/{pid}{page}").text
    page = client_for(world, world["demo"].tokens["reviewer"]).get(f"/p/{pid}/review").text
    block = re.search(r'id="page-data">(.*?)</script>', page, flags=re.S).group(1)
    assert "<" not in block and XSS not in page
    queue = json.loads(block)["queue"]
    assert any(task["payload"]["title"] == XSS for task in queue)


def test_the_annotator_page_holds_no_gold(world):
    pid = world["demo"].project_id
    alice = client_for(world, world["demo"].tokens["alice"])
    page = alice.get(f"/p/{pid}/label").text
    data = json.loads(re.search(r'id="page-data">(.*?)</script>', page, flags=re.S).group(1))
    assert set(data) == {"project", "taxonomy", "labels", "messages"}
    assert "gold" not in page.lower() and "hint" not in page.lower()


def test_a_banned_annotator_is_told_why(world):
    service, pid = world["service"], world["demo"].project_id
    info, token = service.add_annotator(pid, "speedy")
    for _ in range(12):  # answers in 0.1 s each: implausibly fast after 10 timed answers
        task = service.next_task(service.get_annotator(info.id))
        if (
            task is None
            or service.submit(info, task.lease_id, "Electronics", duration_ms=100).annotator_status != "active"
        ):
            break
    assert service.get_annotator(info.id).status == "banned"
    client = client_for(world, token)
    assert client.get("/", follow_redirects=False).headers["location"] == f"/p/{pid}/label"
    page = client.get(f"/p/{pid}/label")
    assert page.status_code == 403
    assert "too fast" in page.text and 'id="page-data"' not in page.text


def test_russian_is_kept_per_user_and_redirects_stay_local(world):
    pid = world["demo"].project_id
    owner = client_for(world, world["demo"].tokens["owner"])
    response = owner.post("/lang", data={"lang": "ru", "next": f"/p/{pid}/settings"}, follow_redirects=False)
    assert response.headers["location"] == f"/p/{pid}/settings" and "SameSite=strict" in response.headers[
        "set-cookie"
    ].replace("Strict", "strict")
    assert "Целевая уверенность" in owner.get(f"/p/{pid}/settings").text
    assert "Target confidence" in client_for(world, world["demo"].tokens["owner"]).get(f"/p/{pid}/settings").text
    assert "Вход" in TestClient(world["app"]).get("/signin", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).text
    cross = owner.post("/lang", data={"lang": "en"}, headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert "set-cookie" not in cross.headers
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert (
            owner.post("/lang", data={"lang": "en", "next": target}, follow_redirects=False).headers["location"] == "/"
        )


def test_catalogs_have_the_same_messages_and_every_one_the_templates_use():
    en = json.loads((HERE / "messages" / "en.json").read_text())
    ru = json.loads((HERE / "messages" / "ru.json").read_text())
    assert set(en) == set(ru)
    used = set()
    for template in (HERE / "templates").glob("*.html"):
        used |= set(re.findall(r'\bt\("([\w.-]+)"\s*[,)]', template.read_text()))
    used |= set(re.findall(r'"(js\.\w+)"', (HERE / "pages.py").read_text()))
    assert used - set(en) == set()


def test_settings_are_validated_like_the_api_patch(world):
    pid = world["demo"].project_id
    owner = client_for(world, world["demo"].tokens["owner"])
    form = {"csrf": csrf_of(owner, f"/p/{pid}/settings"), "name": "demo", "target": "1.5", "min_overlap": "1",
            "max_overlap": "3", "escalate_early": "on", "partial": "on", "price_crowd": "1", "price_expert": "10",
            "price_model": "0", "gold_rate": "0.15", "lease_seconds": "600", "model_votes": "on",
            "suggestions": "3"}  # fmt: skip
    refused = owner.post(f"/p/{pid}/settings", data=form)
    assert refused.status_code == 422 and "less than 1" in refused.text
    assert world["service"].get_project(pid).policy.target == 0.9
    saved = owner.post(f"/p/{pid}/settings", data={**form, "target": "0.92", "lease_seconds": "900"})
    assert saved.status_code == 200
    info = world["service"].get_project(pid)
    assert info.policy.target == 0.92 and info.lease_seconds == 900 and info.policy.escalate_early


def settings_form(page: str) -> dict[str, str]:
    """What the settings form sends as shown: its text fields and checked boxes."""
    form = dict(re.findall(r'<input id="f-\w+" name="(\w+)" value="([^"]*)"', page))
    return {**form, **{name: "on" for name in re.findall(r'type="checkbox" name="(\w+)" checked', page)}}


def test_settings_show_and_save_every_policy_setting_with_its_bounds(world):
    service, pid = world["service"], world["other"]
    owner = client_for(world, service.add_annotator(pid, "settings-owner", role="owner")[1])
    page = owner.get(f"/p/{pid}/settings").text
    form = settings_form(page)
    policy = service.get_project(pid).policy
    assert (form["prior_accuracy"], form["label_value"]) == (str(policy.prior_accuracy), "")  # "": not used
    bounds = bounds_of(ConsensusPolicy, "prior_accuracy")
    assert f"Allowed: {bounds.interval()}" in page
    form["csrf"] = csrf_of(owner, f"/p/{pid}/settings")

    saved = owner.post(f"/p/{pid}/settings", data={**form, "prior_accuracy": "0.8", "label_value": "25"})
    assert saved.status_code == 200, saved.text
    assert (service.get_project(pid).policy.prior_accuracy, service.get_project(pid).policy.label_value) == (0.8, 25)
    assert float(settings_form(saved.text)["label_value"]) == 25
    cleared = owner.post(f"/p/{pid}/settings", data={**form, "prior_accuracy": "0.8", "label_value": ""})
    assert cleared.status_code == 200 and service.get_project(pid).policy.label_value is None
    for bad, message in (("1", "less than 1"), ("0", "greater than 0"), ("x", "valid number")):
        refused = owner.post(f"/p/{pid}/settings", data={**form, "prior_accuracy": bad})
        assert refused.status_code == 422
        field = re.search(r'<div class="field invalid">\s*<label for="f-(\w+)"', refused.text).group(1)
        assert field == "prior_accuracy" and message in refused.text
        assert settings_form(refused.text)["prior_accuracy"] == bad  # the value sent, to correct
    assert service.get_project(pid).policy.prior_accuracy == 0.8


def test_the_settings_form_has_every_policy_setting():
    on_form = {path for path, _ in SETTINGS_FIELDS.values()}
    for name in (f.name for f in fields(ConsensusPolicy)):
        if name == "prices":
            assert {f"policy.prices.{f.name}" for f in fields(Prices)} <= on_form
        else:
            assert f"policy.{name}" in on_form


def test_tokens_are_shown_once_and_revoke_and_rotate_work(world):
    service, pid = world["service"], world["demo"].project_id
    owner = client_for(world, world["demo"].tokens["owner"])
    csrf = csrf_of(owner, f"/p/{pid}/annotators")
    made = owner.post(f"/p/{pid}/annotators", data={"csrf": csrf, "name": "newbie", "role": "annotator"})
    token = re.search(r'id="new-token"[^>]*>([^<]+)<', made.text).group(1)
    assert made.headers["cache-control"] == "no-store"
    newbie = service.authenticate(token)
    assert token not in owner.get(f"/p/{pid}/annotators").text
    rotated = owner.post(f"/p/{pid}/annotators/{newbie.id}/rotate", data={"csrf": csrf})
    fresh = re.search(r'id="new-token"[^>]*>([^<]+)<', rotated.text).group(1)
    assert service.authenticate(fresh).id == newbie.id
    with pytest.raises(Exception, match="token"):
        service.authenticate(token)
    owner.post(f"/p/{pid}/annotators/{newbie.id}/revoke", data={"csrf": csrf})
    with pytest.raises(Exception, match="token"):
        service.authenticate(fresh)
    promoted = owner.post(f"/p/{pid}/annotators/{newbie.id}/role", data={"csrf": csrf, "role": "reviewer"})
    assert promoted.status_code == 200 and service.get_annotator(newbie.id).role == "reviewer"


def test_imports_show_the_rows_in_error_and_exports_download(world, tmp_path: Path):
    pid = world["demo"].project_id
    owner = client_for(world, world["demo"].tokens["owner"])
    csrf = csrf_of(owner, f"/p/{pid}/data")
    bad = owner.post(
        f"/p/{pid}/data/items", data={"csrf": csrf}, files={"file": ("items.csv", b"id,title\n,x\nb2,y\n")}
    )
    assert bad.status_code == 400 and "row" in bad.text.lower()
    good = owner.post(f"/p/{pid}/data/items", data={"csrf": csrf}, files={"file": ("items.csv", b"id,title\nn1,x\n")})
    assert good.status_code == 200 and "imported 1" in good.text
    answers = owner.post(
        f"/p/{pid}/data/answers", data={"csrf": csrf}, files={"file": ("a.csv", b"task,worker,label\nn1,w1,Nope\n")}
    )
    assert answers.status_code == 400 and "Nope" in answers.text
    export = owner.get(f"/projects/{pid}/export?format=labels")
    assert export.status_code == 200 and export.text.startswith("task,")
    alice = client_for(world, world["demo"].tokens["alice"])
    assert alice.get(f"/projects/{pid}/export?format=labels").status_code == 403


def test_docs_come_from_this_server(world):
    client = TestClient(world["app"])
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/docs.js").status_code == 200


@pytest.fixture(scope="module")
def learning(world):
    """A project whose uploaded model has 4 versions, stored as labels settle (40 gold items, right
    on 20, 26, 30 and 32 of them; 40, 80, 120 and 160 items accepted on three agreeing answers),
    the last of which agrees with the crowd on the accepted items but 3 "cat", where it is sure of "dog"."""
    service = world["service"]
    labels = LabelSpace(["cat", "dog", "cow", "pig"])
    project = service.create_project("learning", labels, ConsensusPolicy(target=0.95), gold_rate=0, model_votes=False)
    gold = {f"g{i}": labels.labels[i % 4] for i in range(40)}
    service.import_items(project.id, [ItemIn(k, {"title": k}, gold=v) for k, v in gold.items()])
    service.import_items(project.id, [ItemIn(f"i{i}", {"title": f"i{i}"}) for i in range(160)])
    disputed = {"i0", "i4", "i8"}
    for version, right in enumerate((20, 26, 30, 32)):
        batch = range(40 * version, 40 * (version + 1))
        service.import_answers(
            project.id, [AnswerIn(f"i{i}", f"w{j}", labels.labels[i % 4]) for i in batch for j in range(3)]
        )
        said = {k: (v if n < right else labels.labels[(labels.labels.index(v) + 1) % 4]) for n, (k, v) in
                enumerate(gold.items())}  # fmt: skip
        predictions = {k: {v: 0.9} for k, v in said.items()}
        if version == 3:
            sure = {f"i{i}": labels.labels[(i + (f"i{i}" in disputed)) % 4] for i in range(160)}
            predictions |= {k: {v: 0.85, **{o: 0.05 for o in labels.labels if o != v}} for k, v in sure.items()}
        service.add_model_predictions(project.id, "m", str(version + 1), predictions)
    tokens = {
        role: service.add_annotator(project.id, role, role=role)[1] for role in ("owner", "reviewer", "annotator")
    }
    return {"id": project.id, "tokens": tokens, "disputed": disputed}


def page_data(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S).group(1))


def test_the_owner_sees_the_learning_curve_the_plan_and_the_label_errors(world, learning):
    pid = learning["id"]
    page = client_for(world, learning["tokens"]["owner"]).get(f"/p/{pid}").text
    plan = world["service"].plan(pid)
    section = page.split('id="plan"', 1)[1].split("</section>", 1)[0]
    assert section.count("<svg") == 1 and section.count("<circle") == len(plan.points) == 4
    words = {"add data": "Add data", "change the model": "Change the model", "target reached": "Target reached"}
    recommendation = re.search(r'id="recommendation">([^<]*)<', section).group(1)
    assert recommendation == words[plan.recommendation] and str(escape(plan.reason)) in section
    errors = page.split('id="label-errors"', 1)[1].split("</div>\n</div>", 1)[0]
    assert re.findall(r'class="value">(\d+)<', errors) == ["3", "3", "0", "0"]  # flagged, pending, fixed, kept
    assert "disputed: 3" in page  # in the items-by-status bar
    assert "Not measured yet" in page and "The project&#39;s model has no version yet." in page
    demo = client_for(world, world["demo"].tokens["owner"]).get(f"/p/{world['demo'].project_id}").text
    assert "Not enough model versions yet" in demo and 'id="recommendation"' not in demo
    russian = client_for(world, learning["tokens"]["owner"])
    russian.cookies.set(LANG_COOKIE, "ru")
    assert "Кривая обучения и план" in russian.get(f"/p/{pid}").text


def test_the_reviewer_settles_a_disputed_item_with_both_labels_and_the_reason(world, learning):
    pid, service = learning["id"], world["service"]
    for role in ("reviewer", "annotator"):
        assert client_for(world, learning["tokens"][role]).get(f"/p/{pid}").status_code == 403
    assert client_for(world, learning["tokens"]["annotator"]).get(f"/p/{pid}/review").status_code == 403
    reviewer = client_for(world, learning["tokens"]["reviewer"])
    page = reviewer.get(f"/p/{pid}/review").text
    assert 'id="badge" class="badge" hidden>disputed<' in page and 'id="model-label"' in page
    queue = {task["item"]: task for task in page_data(page)["queue"]}
    assert set(queue) == learning["disputed"]
    for task in queue.values():
        assert task["disputed"] and (task["label"], task["model_label"]) == ("cat", "dog")
        assert "cat" in task["reason"] and "dog" in task["reason"]
    csrf = csrf_of(reviewer, f"/p/{pid}/review")
    settled = reviewer.post(f"/projects/{pid}/review/i0", json={"label": "dog"}, headers={"X-CSRF-Token": csrf})
    assert settled.status_code == 200 and service.item_state(pid, "i0").status == "reviewed"
    assert service.progress(pid).label_errors == LabelErrorCounts(flagged=3, pending=2, fixed=1, kept=0)
    assert set(item["item"] for item in page_data(reviewer.get(f"/p/{pid}/review").text)["queue"]) == {"i4", "i8"}


def test_the_model_version_plots_follow_the_versions():
    """Accuracy on gold and the automated share against the settled items, and the answers and cost
    per settled item, one point per version in the order they were trained."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    versions = [
        ModelVersionMetrics(
            str(k),
            "active",
            at + timedelta(hours=k),
            100 * k,
            "h",
            40,
            accuracy,
            0.05,
            0.9,
            0,
            at_answers=300 * k,
            at_cost=30.0 * k,
            at_cost_per_item=cost,
            at_settled=100 * k,
            at_automated=automated,
        )
        for k, accuracy, cost, automated in ((2, 0.8, 0.25, 30), (1, 0.7, 0.3, 0))
    ]
    figures = _version_plots(versions, translator("en"))
    share = str(figures["versions"])
    assert "accuracy on gold: 0.80" in share and "automated share: 0.15" in share and share.count("<circle") == 4
    spending = str(figures["spending"])
    assert "answers per item: 3.00" in spending and "cost per item: 0.25" in spending
