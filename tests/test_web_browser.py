"""The web pages in a real browser (Playwright driving Debian's chromium) against a real
``crowdloop serve --demo``: an annotator labels by keyboard alone, the taxonomy search and
drill-down over 5,595 generated categories, suggestion chips, a reviewer settles an item, the
owner watches progress and downloads an export, a payload's script stays text, no gold shows.
Every page's screenshot goes to the folder printed at the start."""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from web_fixtures import chromium_path, start_server

playwright = pytest.importorskip("playwright.sync_api")
if chromium_path() is None:
    pytest.skip("no chromium on this machine (apt-get install -y chromium)", allow_module_level=True)

TASK_KEYS = {"lease_id", "item", "payload", "suggestions", "expires_at"}


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    process, web = start_server(tmp_path_factory.mktemp("web") / "crowdloop.db")
    try:
        yield web
    finally:
        process.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("web-screenshots")
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, web):
    context = browser.new_context(base_url=web.base, viewport={"width": 1200, "height": 860}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


def sign_in(page, token: str) -> None:
    """By keyboard: the token field has the focus; Enter sends it."""
    page.goto("/signin")
    # chromium applies ``autofocus`` at a rendering step that may come after the load event
    page.wait_for_function("document.activeElement && document.activeElement.id === 'token'")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/signin" not in url)


def current_title(page) -> str:
    return page.locator('#payload .field[data-key="title"] .value').inner_text()


def timings(page) -> dict[str, list[float]]:
    return page.evaluate("window.crowdloop.timings")


def test_annotator_labels_twenty_demo_items_by_keyboard(page, web, shots):
    tasks: list[dict] = []

    def keep(response):
        if "/tasks/" in response.url and response.request.method == "POST" and response.status == 200:
            body = response.json()
            tasks.append(body.get("next_task") if "answer_id" in body else body)

    page.on("response", keep)
    page.clock.install()  # the page's clock runs, and jumps 2.1 s per task: answers under 2 s are banned
    sign_in(page, web.demo_tokens["alice"])
    assert page.url.endswith(f"/p/{web.demo_id}/label")
    cookie = next(c for c in page.context.cookies() if c["name"] == "crowdloop_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert web.demo_tokens["alice"] not in cookie["value"]
    page.wait_for_selector("#payload .field")
    page.screenshot(path=shots / "annotator-demo.png")
    for k in range(20):
        title = current_title(page)
        leaf = title.split(" ", 2)[2].rsplit(", model", 1)[0]  # "Compact red Headphones, model 12"
        page.keyboard.type(leaf)
        first = page.locator(".results li.row").first.inner_text()
        assert leaf in first
        if k == 0:
            page.screenshot(path=shots / "annotator-search.png")
        page.clock.fast_forward(2100)
        page.keyboard.press("Enter")
        page.wait_for_function("n => document.getElementById('count').textContent.endsWith(': ' + n)", arg=k + 1)
    owner = httpx.Client(base_url=web.base, headers={"Authorization": f"Bearer {web.demo_tokens['owner']}"})
    alice = next(a for a in owner.get(f"/projects/{web.demo_id}/annotators").json() if a["name"] == "alice")
    assert alice["answers"] == 20
    served = [t for t in tasks if t]
    assert len(served) >= 20 and all(set(t) == TASK_KEYS for t in served)
    gold_served = [t["item"] for t in served if int(t["item"].split("-")[1]) < 10]  # the demo's gold: demo-000..009
    assert gold_served, "the fixed seed serves gold items among the first 20"
    html = page.content().lower()
    assert "gold" not in html and "hint" not in html
    figures = timings(page)
    print(f"submit -> next task shown: median {statistics.median(figures['submitToShown']):.1f} ms "
          f"over {len(figures['submitToShown'])}; search per keystroke: median "
          f"{statistics.median(figures['search']):.2f} ms over {len(figures['search'])}")  # fmt: skip


def test_taxonomy_search_drill_down_and_chip(page, web, shots):
    sign_in(page, web.shop_tokens["carol"])
    page.wait_for_selector("#payload .field")
    assert page.locator(".chips .chip").count() == 3
    submitted: list[dict] = []
    page.on("request", lambda r: submitted.append(json.loads(r.post_data)) if "/submit" in r.url else None)

    # 1. search: the item's leaf name finds its full path among 5,595 categories
    item = page.locator("#task").get_attribute("data-lease")
    title = current_title(page)
    leaf = title.rsplit(" no. ", 1)[0]
    page.keyboard.type(leaf)
    rows = page.locator(".results li.row")
    paths = [p for p in web.paths if p.rsplit(" > ", 1)[-1] == leaf]
    assert rows.first.inner_text().replace("\n", "").strip().startswith(paths[0].split(" > ")[0])
    page.screenshot(path=shots / "taxonomy-search.png")
    page.keyboard.press("Enter")
    page.wait_for_function("l => document.getElementById('task').dataset.lease !== l", arg=item)
    assert submitted[-1]["label"] in paths
    assert isinstance(submitted[-1]["duration_ms"], int)

    # 2. a chip: key 1 answers the model's first suggestion
    first_chip = page.locator(".chips .chip span").first.inner_text()
    item = page.locator("#task").get_attribute("data-lease")
    page.keyboard.press("1")
    page.wait_for_function("l => document.getElementById('task').dataset.lease !== l", arg=item)
    assert submitted[-1]["label"] == first_chip

    # 3. drill-down: open the first top category (Tab), then its first child that has children
    # (Down, Right); Enter on the first row answers that branch itself (an inner node)
    page.keyboard.press("Tab")
    assert page.locator(".crumbs .crumb").count() == 2
    rows = page.locator(".results li.row")
    opening = next(k for k in range(1, rows.count()) if rows.nth(k).locator(".open").count())
    for _ in range(opening):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    assert page.locator(".crumbs .crumb").count() == 3
    page.screenshot(path=shots / "taxonomy-drill-down.png")
    branch = page.locator(".results li.row .leaf").first.inner_text()
    item = page.locator("#task").get_attribute("data-lease")
    page.keyboard.press("Enter")
    page.wait_for_function("l => document.getElementById('task').dataset.lease !== l", arg=item)
    inner = submitted[-1]["label"]
    assert inner.count(" > ") == 1 and any(p.startswith(inner + " > ") for p in web.paths)
    assert inner.rsplit(" > ", 1)[-1] == branch
    figures = timings(page)["search"]
    print(f"taxonomy search per keystroke (5,595 paths): median {statistics.median(figures):.2f} ms, "
          f"max {max(figures):.2f} ms over {len(figures)}")  # fmt: skip


def test_reviewer_settles_an_escalated_item(page, web, shots):
    bob = httpx.Client(base_url=web.base, headers={"Authorization": f"Bearer {web.shop_tokens['dave']}"})
    task = bob.post(f"/projects/{web.shop_id}/tasks/next").json()
    label = task["suggestions"][1]["label"]
    assert (
        bob.post(f"/projects/{web.shop_id}/tasks/{task['lease_id']}/submit", json={"label": label}).status_code == 200
    )
    sign_in(page, web.shop_tokens["rita"])
    assert page.url.endswith(f"/p/{web.shop_id}/review")
    page.locator(".queue-item", has_text=task["item"]).click()
    page.wait_for_function("i => document.querySelector('.queue-item[aria-current=true] .item-id').textContent === i",
                           arg=task["item"])  # fmt: skip
    assert "dave" in page.locator("#answers").inner_text()
    assert page.locator("#reason").inner_text().strip() not in ("", "\u2013")
    page.screenshot(path=shots / "reviewer.png")
    truth = web.shop_truth[task["item"]]
    before = page.locator(".queue-item").count()
    page.locator("input.search").focus()
    page.keyboard.type(truth.rsplit(" > ", 1)[-1])
    page.keyboard.press("Enter")
    page.wait_for_function("n => document.querySelectorAll('.queue-item').length === n", arg=before - 1)
    owner = httpx.Client(base_url=web.base, headers={"Authorization": f"Bearer {web.shop_tokens['owner']}"})
    state = owner.get(f"/projects/{web.shop_id}/items/{task['item']}").json()
    assert state["status"] == "reviewed"
    assert state["label"].rsplit(" > ", 1)[-1] == truth.rsplit(" > ", 1)[-1]


def test_owner_sees_progress_move_and_downloads_an_export(page, web, shots):
    sign_in(page, web.demo_tokens["owner"])
    assert page.url.endswith(f"/p/{web.demo_id}")
    before = int(page.locator("#fig-answers").inner_text())
    bob = httpx.Client(base_url=web.base, headers={"Authorization": f"Bearer {web.demo_tokens['bob']}"})
    task = bob.post(f"/projects/{web.demo_id}/tasks/next").json()
    label = "Electronics"
    assert (
        bob.post(f"/projects/{web.demo_id}/tasks/{task['lease_id']}/submit", json={"label": label}).status_code == 200
    )
    page.reload()
    assert int(page.locator("#fig-answers").inner_text()) == before + 1
    assert page.locator("svg.plot").count() == 4
    page.screenshot(path=shots / "owner-progress.png", full_page=True)
    for name in ("annotators", "settings", "events"):
        page.goto(f"/p/{web.demo_id}/{name}")
        page.screenshot(path=shots / f"owner-{name}.png", full_page=True)
    page.goto(f"/p/{web.demo_id}/data")
    page.screenshot(path=shots / "owner-data.png")
    with page.expect_download() as download:
        page.locator('a.button[href$="format=labels"]').click()
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 60 and sum(row["source"] == "gold" for row in rows) == 10  # the 60 items, gold included


def test_payload_script_stays_text(page, web, shots):
    sign_in(page, web.xss_tokens["eve"])
    page.wait_for_selector("#payload .field")
    assert current_title(page) == "<script>alert(1)</script>"
    assert page.locator('#payload .field[data-key="note"] .value').inner_text() == '<img src=x onerror="alert(2)">'
    assert page.locator('#payload .field[data-key="picture"] img').count() == 1
    link = page.locator('#payload .field[data-key="link"] a')
    assert link.get_attribute("href") == "https://example.org/item?a=1&b=<b>" and link.get_attribute("rel")
    assert page.locator("#payload script").count() == 0
    page.screenshot(path=shots / "xss.png")
    page.keyboard.press("2")  # a flat label space: number keys
    page.wait_for_selector("#done:not([hidden])")
    assert page.dialogs == []


def test_docs_render_from_this_server_alone(page, web, shots):
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "crowdloop" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock").count() > 10
    assert hosts == {web.base.split("/")[2]}
    page.screenshot(path=shots / "docs.png")


def test_a_banned_annotator_is_told_why(page, web, shots):
    owner = {"Authorization": f"Bearer {web.demo_tokens['owner']}"}
    token = httpx.post(f"{web.base}/projects/{web.demo_id}/annotators", headers=owner, json={"name": "speedy"})
    client = httpx.Client(base_url=web.base, headers={"Authorization": f"Bearer {token.json()['token']}"})
    for _ in range(12):  # answers in 0.1 s: implausibly fast once ten are timed
        task = client.post(f"/projects/{web.demo_id}/tasks/next")
        if task.status_code != 200:
            break
        client.post(f"/projects/{web.demo_id}/tasks/{task.json()['lease_id']}/submit",
                    json={"label": "Electronics", "duration_ms": 100})  # fmt: skip
    sign_in(page, token.json()["token"])
    assert "too fast" in page.locator("#banned").inner_text()
    assert page.locator("#payload").count() == 0
    page.screenshot(path=shots / "banned.png")
