"""The project's learning loop in the service, on SQLite and PostgreSQL: suggestions hidden for a
share of leases and their anchoring measured, the pool ordered by what an answer is worth, label
errors the model finds sent to review, and the plan from the model versions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sqlalchemy import select

from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.errors import ConfigError
from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, open_service
from crowdloop.service.priorities import pool_weights
from crowdloop.store.schema import Answer, Lease

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
    0.1 / 3 hidden: a difference near 0.58, whose interval excludes 0."""
    rng = np.random.default_rng(0)
    project = service.create_project(name(), LABELS, gold_rate=1.0, rules=LENIENT, hide_rate=0.4)
    truth = {f"g{i}": LABELS.labels[i % 4] for i in range(60)}
    suggested = {k: (v if i % 2 else LABELS.labels[(i + 1) % 4]) for i, (k, v) in enumerate(truth.items())}
    service.import_items(
        project.id,
        [ItemIn(k, {}, gold=v, predictions={suggested[k]: 0.8}) for k, v in truth.items()],
        model=("m", "1"),
    )
    workers = [service.add_annotator(project.id, f"w{j}")[0] for j in range(6)]
    for worker in workers:
        while (task := service.next_task(worker)) is not None:
            if task.suggestions and rng.random() < 0.6:
                label = task.suggestions[0].label
            elif rng.random() < 0.9:
                label = truth[task.item]
            else:
                label = str(rng.choice([x for x in LABELS.labels if x != truth[task.item]]))
            service.submit(worker, task.lease_id, label, duration_ms=3000 if task.suggestions else 6000)
    measures = {m.measure: m for m in service.progress(project.id).suggestions}
    wrong = measures["agreement with a wrong suggestion"]
    assert wrong.n_shown + wrong.n_hidden == 180  # 6 annotators x 30 items with a wrong suggestion
    assert 0.45 < wrong.effect < 0.7 and 0.2 < wrong.low < wrong.effect < wrong.high < 0.9
    assert wrong.hidden < 0.15 < 0.5 < wrong.shown
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
    cover the three topics instead of the first topic imported."""
    project = service.create_project(name(), LABELS, ConsensusPolicy(max_overlap=3), gold_rate=0)
    service.import_items(project.id, topic_items(np.random.default_rng(1), 20))
    worker, _ = service.add_annotator(project.id, "w")
    first = []
    for _ in range(3):
        task = service.next_task(worker)
        first.append(task.item.split("-")[0])
        service.submit(worker, task.lease_id, "cat", duration_ms=3000)
    assert sorted(first) == sorted(TOPICS)


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
