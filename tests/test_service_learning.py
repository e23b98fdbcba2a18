"""The project's learning loop in the service, on SQLite and PostgreSQL: suggestions hidden for a
share of leases and their anchoring measured, the pool ordered by what an answer is worth, label
errors the model finds sent to review, and the plan from the model versions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from crowdloop.cli import app
from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.errors import ConfigError, ConflictError
from crowdloop.labels import LabelSpace
from crowdloop.server import create_app
from crowdloop.service import ItemIn, open_service
from crowdloop.service.answer_import import AnswerIn
from crowdloop.service.priorities import pool_weights
from crowdloop.service.types import LabelErrorCounts
from crowdloop.store.schema import Answer, Item, Lease

LABELS = LabelSpace(["cat", "dog", "cow", "pig"])
LENIENT = SkillRules(ban_below=0.0, min_seconds=0.0)  # nobody is banned: the tests look at answers
_names = itertools.count()


@pytest.fixture(scope="module")
def service(database_url: str):
    svc = open_service(database_url, seed=3)
    yield svc
    svc.close()


def name() -> str:
    return f"learning-{next(_names)}"


def test_a_share_of_leases_hides_the_suggestions_and_keeps_them(service) -> None:
    project = service.create_project(name(), LABELS, ConsensusPolicy(max_overlap=5), gold_rate=0, hide_rate=0.5)
    assert project.hide_rate == 0.5
    items = [ItemIn(f"i{i}", {"title": f"item {i}"}, predictions={"cat": 0.7, "dog": 0.2}) for i in range(150)]
    service.import_items(project.id, items, model=("m", "1"))
    worker, _ = service.add_annotator(project.id, "w")
    shown = 0
    for _ in range(150):
        task = service.next_task(worker)
        shown += bool(task.suggestions)
        assert service.next_task(worker).suggestions == task.suggestions  # the held task looks the same
        service.submit(worker, task.lease_id, "cat", duration_ms=3000)
    assert 45 <= shown <= 105  # Binomial(150, 0.5): 6 standard deviations either side
    with service.engine.connect() as connection:
        leases = connection.execute(select(Lease.suggestions, Lease.suggestions_shown)).all()
        answers = connection.execute(select(Answer.suggestions, Answer.suggestions_shown)).all()
    assert len(answers) == 150 and sum(bool(s) for _, s in answers) == shown
    # hidden or shown, the lease and the answer keep what the model suggested
    assert all(s[0]["label"] == "cat" for s, _ in leases) and all(s[0]["label"] == "cat" for s, _ in answers)
    assert service.progress(project.id).suggestions == []  # no item with a known label yet


def test_hide_rate_is_a_checked_setting(service) -> None:
    project = service.create_project(name(), LABELS, gold_rate=0)
    assert project.hide_rate == 0.1  # the default
    assert service.update_project(project.id, hide_rate=1.0).changed == {"hide_rate": {"from": 0.1, "to": 1.0}}
    service.import_items(project.id, [ItemIn("a", {}, predictions={"dog": 0.9})], model=("m", "1"))
    worker, _ = service.add_annotator(project.id, "w")
    assert service.next_task(worker).suggestions == []  # every suggestion hidden
    with pytest.raises(ConfigError, match="hide_rate must be in"):
        service.update_project(project.id, hide_rate=1.5)


def test_progress_reports_the_anchoring_effect_with_an_interval(service) -> None:
    """Annotators who take a shown suggestion 60% of the time, and answer right 90% of the time
    otherwise, on gold items whose suggestion is wrong for half of them; shown answers take 3 s,
    hidden ones 6 s. The agreement with wrong suggestions is about 0.6 + 0.4 * 0.03 shown against
    0.1 / 3 hidden: a difference near 0.58, whose interval excludes 0 (it is about +-0.1 wide)."""
    rng = np.random.default_rng(0)
    project = service.create_project(name(), LABELS, gold_rate=1.0, rules=LENIENT, hide_rate=0.4)
    truth = {f"g{i}": LABELS.labels[i % 4] for i in range(60)}
    suggested = {k: (v if i % 2 else LABELS.labels[(i + 1) % 4]) for i, (k, v) in enumerate(truth.items())}
    service.import_items(
        project.id,
        [ItemIn(k, {}, gold=v, predictions={suggested[k]: 0.8}) for k, v in truth.items()]
        + [ItemIn(f"r{i}", {}) for i in range(10)],  # real work: gold goes out only beside it
        model=("m", "1"),
    )
    workers = [service.add_annotator(project.id, f"w{j}")[0] for j in range(6)]
    for worker in workers:
        while (task := service.next_task(worker)) is not None and task.item in truth:
            if task.suggestions and rng.random() < 0.6:
                label = task.suggestions[0].label
            elif rng.random() < 0.9:
                label = truth[task.item]
            else:
                label = str(rng.choice([x for x in LABELS.labels if x != truth[task.item]]))
            service.submit(worker, task.lease_id, label, duration_ms=3000 if task.suggestions else 6000)
    assert service.progress(project.id).suggestions == []  # measured by the refit, off the request path
    service.refit(project.id)
    measures = {m.measure: m for m in service.progress(project.id).suggestions}
    wrong = measures["agreement with a wrong suggestion"]
    assert wrong.n_shown + wrong.n_hidden == 180  # 6 annotators x 30 items with a wrong suggestion
    # about 108 shown and 72 hidden (which leases hide is random): 4 standard deviations either side
    assert 0.38 < wrong.effect < 0.78 and 0 < wrong.low < wrong.effect < wrong.high < 1
    assert wrong.hidden < 0.15 < 0.4 < wrong.shown
    times = measures["median seconds (ratio shown / hidden)"]
    assert (times.shown, times.hidden, times.effect) == (3.0, 6.0, 0.5)


TOPICS = {
    "audio": ["speaker", "headphones", "amplifier", "microphone"],
    "kitchen": ["kettle", "toaster", "blender", "skillet"],
    "garden": ["shovel", "hose", "rake", "planter"],
}


def topic_items(rng: np.random.Generator, per_topic: int) -> list[ItemIn]:
    """Items whose titles take 3 of their topic's 4 words, imported topic after topic."""
    return [
        ItemIn(f"{topic}-{i}", {"title": " ".join(rng.choice(words, 3, replace=False)), "sku": i})
        for topic, words in TOPICS.items()
        for i in range(per_topic)
    ]


def test_the_cold_start_is_a_diverse_spread(service) -> None:
    """No model, no answers: every item is worth the same to the consensus, and the first tasks
    cover the three topics instead of the first topic imported (20 items each)."""
    project = service.create_project(name(), LABELS, ConsensusPolicy(max_overlap=3), gold_rate=0)
    service.import_items(project.id, topic_items(np.random.default_rng(1), 20))
    worker, _ = service.add_annotator(project.id, "w")
    first = []
    for _ in range(6):
        task = service.next_task(worker)
        first.append(task.item.split("-")[0])
        service.submit(worker, task.lease_id, "cat", duration_ms=3000)
    assert set(first) == set(TOPICS)


def test_the_spread_reads_the_texts_the_model_reads(service) -> None:
    """The spread is over the project's ``text_fields`` (``item_texts``, what its model reads): a
    project without a model (``[]``) has no texts to spread over, and the weights keep the import
    order (the first topic first), where the titles would spread the head over the three topics."""
    project = service.create_project(name(), LABELS, ConsensusPolicy(max_overlap=3), gold_rate=0, text_fields=[])
    service.import_items(project.id, topic_items(np.random.default_rng(1), 20))
    with service.engine.connect() as c:
        rows = c.execute(
            select(Item.external_id).where(Item.project_id == project.id).order_by(Item.learn_weight.desc())
        ).scalars()
        assert list(rows) == [i.external_id for i in topic_items(np.random.default_rng(1), 20)]


def test_the_model_s_uncertain_items_come_first(service) -> None:
    """Predictions stored (not voting: the consensus sees no difference between the items): the
    items the model is unsure of are leased before the ones it is sure of."""
    project = service.create_project(name(), LABELS, ConsensusPolicy(max_overlap=3), gold_rate=0, model_votes=False)
    items = topic_items(np.random.default_rng(2), 14)
    service.import_items(project.id, items)
    unsure = {item.external_id for item in items[::2]}
    predictions = {
        item.external_id: {"cat": 0.4, "dog": 0.35} if item.external_id in unsure else {"cat": 0.97} for item in items
    }
    service.add_model_predictions(project.id, "m", "1", predictions)
    worker, _ = service.add_annotator(project.id, "w")
    leased = []
    for _ in range(len(unsure)):
        task = service.next_task(worker)
        leased.append(task.item)
        service.submit(worker, task.lease_id, "cat", duration_ms=3000)
    assert set(leased) == unsure
    # a refit weighs the pool again, and keeps the order
    service.refit(project.id)
    task = service.next_task(worker)
    assert task is not None and task.item not in unsure  # only the sure items are left for this annotator


def test_relabel_or_new_ranks_disagreeing_answers_with_uncertain_new_items() -> None:
    """Without texts (no spread): an item whose two answers disagree comes before a new item the
    model is unsure of, then a new item the model is sure of, and last an item whose two answers
    agree (q = (0.5 * 0.6 + 1.6 * 1) / 2.1 = 0.90 against (0.5 * 0.95 + 0.8 / 2) / 1.3 = 0.67)."""
    weights = pool_weights(
        np.array(["", "", "", ""], dtype=object),
        consensus=np.array([0, -1, 0, -1]),
        agreement=np.array([0.3, 0.0, 1.0, 0.0]),
        answers=np.array([2, 0, 2, 0]),
        probs=np.array([[0.5, 0.5], [0.5, 0.5], [0.6, 0.4], [0.95, 0.05]]),
        annotator_weight=0.8,
        model_weight=0.5,
    )
    assert list(np.argsort(-weights)) == [0, 1, 3, 2]
    assert weights.max() == 2.0 and weights.min() > 1.0


def test_labels_the_model_disputes_go_to_review_and_the_decision_counts(service) -> None:
    """40 items accepted on three agreeing answers, 6 of them wrong; a model sure of the true labels
    disputes exactly those 6 when its predictions are stored: they wait for a reviewer with both
    labels and the reason, and the reviewers' decisions (fix 4, keep 2) count in the progress."""
    project = service.create_project(name(), LABELS, ConsensusPolicy(target=0.95), gold_rate=0, model_votes=False)
    truth = {f"i{i}": LABELS.labels[i % 4] for i in range(40)}
    wrong = {f"i{i}" for i in range(0, 40, 7)}
    crowd = {k: (LABELS.labels[(LABELS.labels.index(v) + 1) % 4] if k in wrong else v) for k, v in truth.items()}
    service.import_items(project.id, [ItemIn(k, {"title": k}) for k in truth])
    service.import_answers(project.id, [AnswerIn(k, f"w{j}", v) for k, v in crowd.items() for j in range(3)])
    assert service.progress(project.id).status_counts == {"accepted": 40}
    predictions = {k: {v: 0.85, **{o: 0.05 for o in LABELS.labels if o != v}} for k, v in truth.items()}
    service.add_model_predictions(project.id, "m", "1", predictions)
    progress = service.progress(project.id)
    assert progress.status_counts == {"accepted": 34, "disputed": 6}
    assert progress.label_errors == LabelErrorCounts(flagged=6, pending=6, fixed=0, kept=0)
    queue = {task.item: task for task in service.review_queue(project.id)}
    assert set(queue) == wrong
    for item, task in queue.items():
        assert (task.label, task.model_label) == (crowd[item], truth[item])
        assert crowd[item] in task.reason and truth[item] in task.reason
    assert service.check_labels(project.id).disputed == []  # nothing new: the disputed wait for review
    reviewer, _ = service.add_annotator(project.id, "r", role="reviewer")
    for i, item in enumerate(sorted(wrong)):
        assert service.review(reviewer, project.id, item, truth[item] if i < 4 else crowd[item]).status == "reviewed"
    assert service.progress(project.id).label_errors == LabelErrorCounts(flagged=6, pending=0, fixed=4, kept=2)
    assert service.review_queue(project.id) == []
    events = [e for e in service.events(project.id, limit=200) if e["kind"] == "disputed"]
    assert len(events) == 6 and all(e["detail"]["model"] == "m:1" for e in events)


def test_a_late_answer_to_a_disputed_item_leaves_it_to_the_reviewer(service) -> None:
    project = service.create_project(name(), LABELS, ConsensusPolicy(target=0.9, max_overlap=5), gold_rate=0,
                                     model_votes=False)  # fmt: skip
    truth = {f"i{i}": LABELS.labels[i % 4] for i in range(12)}
    service.import_items(project.id, [ItemIn(k, {}) for k in truth])
    late, _ = service.add_annotator(project.id, "late")
    held = service.next_task(late)
    crowd = {k: "pig" if k == held.item else v for k, v in truth.items()}
    service.import_answers(project.id, [AnswerIn(k, f"w{j}", v) for k, v in crowd.items() for j in range(3)])
    probs = {k: {v: 0.9, **{o: 0.1 / 3 for o in LABELS.labels if o != v}} for k, v in truth.items()}
    service.add_model_predictions(project.id, "m", "1", probs)
    if truth[held.item] == "pig":
        pytest.skip("the held item's crowd label is right")
    assert service.item_state(project.id, held.item).status == "disputed"
    service.submit(late, held.lease_id, "pig", duration_ms=3000)
    state = service.item_state(project.id, held.item)
    assert (state.status, state.answers) == ("disputed", 4)


def versions_as_labels_settle(service) -> int:
    """A project whose model has 4 versions, stored as labels settle (40 gold items; 40, 80, 120
    and 160 accepted), right on 20, 26, 30 and 32 of the 40 gold items."""
    project = service.create_project(name(), LABELS, ConsensusPolicy(target=0.95), gold_rate=0, model_votes=False)
    gold = {f"g{i}": LABELS.labels[i % 4] for i in range(40)}
    service.import_items(project.id, [ItemIn(k, {"title": k}, gold=v) for k, v in gold.items()])
    service.import_items(project.id, [ItemIn(f"i{i}", {"title": f"i{i}"}) for i in range(160)])
    with pytest.raises(ConflictError, match="3 label counts"):
        service.plan(project.id)
    for version, right in enumerate((20, 26, 30, 32)):
        batch = range(40 * version, 40 * (version + 1))
        service.import_answers(project.id, [AnswerIn(f"i{i}", f"w{j}", "cat") for i in batch for j in range(3)])
        said = {k: (v if n < right else LABELS.labels[(LABELS.labels.index(v) + 1) % 4]) for n, (k, v) in
                enumerate(gold.items())}  # fmt: skip
        service.add_model_predictions(project.id, "m", str(version + 1), {k: {v: 0.9} for k, v in said.items()})
    return project.id


def test_the_plan_comes_from_the_model_versions(service, tmp_path) -> None:
    """The curve's points, the forecast for 0.9 and its price, and the picture."""
    project_id = versions_as_labels_settle(service)
    report = service.plan(project_id, target=0.9, plot=tmp_path / "plan.png")
    assert [(p.version, p.labels, p.accuracy, p.gold) for p in report.points] == [
        ("1", 80, 0.5, 40), ("2", 120, 0.65, 40), ("3", 160, 0.75, 40), ("4", 200, 0.8, 40)
    ]  # fmt: skip
    assert report.current_labels == 200 and report.model == "m"
    assert report.curve["a"] > 0.8
    # 480 crowd answers (no time: 30 s each, 120 an hour) bought 160 settled items: 3 a label
    assert report.price_per_label == pytest.approx(3.0) and report.annotator_hour_price == pytest.approx(120.0)
    assert report.model_change_range == [80 * 10 * 120.0, 80 * 15 * 120.0]
    assert report.recommendation in ("add data", "change the model")
    if report.labels_needed.estimate is not None:
        assert report.labels_needed.estimate > 200
        assert report.data_cost.estimate == pytest.approx((report.labels_needed.estimate - 200) * 3.0)
    assert (tmp_path / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plan_and_the_label_check_over_rest(service) -> None:
    project_id = versions_as_labels_settle(service)
    _, token = service.add_annotator(project_id, "boss", role="owner")
    client = TestClient(create_app(service))
    auth = {"Authorization": f"Bearer {token}"}
    body = client.get(f"/projects/{project_id}/plan", params={"target": 0.9}, headers=auth).json()
    assert [p["labels"] for p in body["points"]] == [80, 120, 160, 200]
    assert body["recommendation"] in ("add data", "change the model") and body["reason"]
    assert body["asymptote"]["high"] is None or body["asymptote"]["high"] <= 1  # unbounded ends are null
    picture = client.get(f"/projects/{project_id}/plan.png", params={"target": 0.9}, headers=auth)
    assert picture.headers["content-type"] == "image/png" and picture.content[:4] == b"\x89PNG"
    bad = client.get(f"/projects/{project_id}/plan", params={"engineer_hour_ratio": 20}, headers=auth)
    assert bad.status_code == 422
    check = client.post(f"/projects/{project_id}/label-errors", headers=auth).json()
    # the crowd said cat for everything: the newest model (no prediction for those items) has nothing to say
    assert check == {"project_id": project_id, "model": "m:4", "checked": 0, "disputed": []}


def test_the_plan_and_the_label_check_from_the_command_line(service, database_url, tmp_path) -> None:
    project_id = versions_as_labels_settle(service)
    runner = CliRunner()
    picture = tmp_path / "curve.png"
    args = ["--project", str(project_id), "--db", database_url]
    result = runner.invoke(app, ["plan", *args, "--target", "0.9", "--plot", str(picture)])
    assert result.exit_code == 0, result.output
    assert "version 4" in result.output and "200 labels: 0.800 on 40 gold" in result.output
    assert picture.read_bytes()[:4] == b"\x89PNG"
    result = runner.invoke(app, ["errors", *args])
    assert result.exit_code == 0, result.output
    assert "accepted labels checked" in result.output and "m:4" in result.output
    result = runner.invoke(app, ["plan", *args, "--items", str(tmp_path / "x.csv")])
    assert result.exit_code == 1 and "--project plans from the service" in result.output
