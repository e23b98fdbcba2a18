"""The full refit job: skills from EM over all answers, the model's temperature, the calibrator of
the online decision, branch skills and routing by them, ``refit_projects`` (``crowdloop refit``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.consensus.decider import Decider, Opinions
from crowdloop.consensus.fitting import MIN_CALIBRATION_STATES, StoredAnswers, refit
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service import ItemIn, open_service, refit_projects
from crowdloop.store.schema import Annotator

LABELS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def service(database_url: str):
    svc = open_service(database_url, seed=5)
    yield svc
    svc.close()


def test_refit_learns_skills_temperature_and_calibration(service, database_url: str) -> None:
    rng = np.random.default_rng(1)
    policy = ConsensusPolicy(target=0.9, min_overlap=2, max_overlap=3, escalate_early=False)
    project = service.create_project("refit", LabelSpace(LABELS), policy, gold_rate=0.35)
    truth = {f"i{i}": str(rng.choice(LABELS)) for i in range(45)}
    gold = {f"g{i}": str(rng.choice(LABELS)) for i in range(40)}
    items = [ItemIn(k, {}) for k in truth] + [ItemIn(k, {}, gold=v) for k, v in gold.items()]
    service.import_items(project.id, items)
    truth |= gold
    # a model right 80% of the time, and far too sure of itself (0.99 on its pick)
    picks = {k: v if rng.random() < 0.8 else str(rng.choice([x for x in LABELS if x != v])) for k, v in truth.items()}
    probabilities = {k: {p: 0.99, **{x: 0.01 / 3 for x in LABELS if x != p}} for k, p in picks.items()}
    version = service.add_model_predictions(project.id, "m", "1", probabilities)
    skills = {"good1": 0.9, "good2": 0.9, "good3": 0.85, "poor": 0.35}
    people = {name: service.add_annotator(project.id, name)[0] for name in skills}
    for _ in range(400):
        progressed = False
        for name, who in people.items():
            task = service.next_task(who)
            if task is None:
                continue
            right = rng.random() < skills[name]
            label = truth[task.item] if right else str(rng.choice([x for x in LABELS if x != truth[task.item]]))
            service.submit(who, task.lease_id, label, duration_ms=3000)
            progressed = True
        if not progressed:
            break
    before = {a.name: a.skill for a in service.annotator_skills(project.id)}
    (report,) = refit_projects(database_url, project.name)
    after = {a.name: a.skill for a in service.annotator_skills(project.id)}
    assert report.annotators == 4
    assert not report.calibrated  # fewer than MIN_CALIBRATION_STATES gold states: the raw posterior stays
    assert min(after["good1"], after["good2"], after["good3"]) > after["poor"] + 0.25
    assert after["poor"] < 0.6 and before["poor"] < 0.6  # gold catches the poor annotator
    temperature = report.temperatures[str(version.id)]
    assert temperature < 0.9  # an overconfident model is cooled down
    assert service.model_versions(project.id)[0].temperature == pytest.approx(temperature)
    assert any(e["kind"] == "refit" for e in service.events(project.id))


def test_routing_sends_items_to_annotators_skilled_in_their_branch(service) -> None:
    taxonomy = Taxonomy.from_paths(["Audio > Headphones", "Audio > Speakers", "Home > Lamps", "Home > Sofas"])
    policy = ConsensusPolicy(target=0.99, min_overlap=1, max_overlap=3)
    project = service.create_project("routing", taxonomy, policy, gold_rate=0)
    rows = [
        ItemIn(f"{branch}{i}", {}, predictions={leaf: 0.6})
        for i in range(6)
        for branch, leaf in (("audio", "Audio > Headphones"), ("home", "Home > Lamps"))
    ]
    service.import_items(project.id, rows, model=("m", "1"))
    audio_expert, _ = service.add_annotator(project.id, "audio-expert")
    home_expert, _ = service.add_annotator(project.id, "home-expert")
    audio, home = taxonomy.code("Audio"), taxonomy.code("Home")
    with service._sessions() as session, session.begin():  # skills as a refit on gold would leave them
        for who, good, bad in ((audio_expert, audio, home), (home_expert, home, audio)):
            session.execute(
                update(Annotator).where(Annotator.id == who.id).values(branch_skills={str(good): 0.95, str(bad): 0.4})
            )
    first_audio = [service.next_task(audio_expert).item for _ in range(1)]
    first_home = [service.next_task(home_expert).item for _ in range(1)]
    assert first_audio[0].startswith("audio") and first_home[0].startswith("home")


def test_the_calibrator_makes_the_online_confidence_honest() -> None:
    """Fitted on cross-fitted gold states, the calibrated confidence of held-out items never claims
    more than they deliver, and the items it accepts at target 0.9 are at least 88.5% right."""
    rng = np.random.default_rng(4)
    labels = LabelSpace(LABELS)
    skills = rng.uniform(0.55, 0.9, 12)
    n_items, per_item = 900, 3
    truth = rng.integers(0, len(LABELS), n_items)
    item = np.repeat(np.arange(n_items), per_item)
    worker = np.concatenate([rng.choice(len(skills), per_item, replace=False) for _ in range(n_items)])
    right = rng.random(len(item)) < skills[worker]
    wrong = (truth[item] + rng.integers(1, len(LABELS), len(item))) % len(LABELS)
    label = np.where(right, truth[item], wrong)
    gold = np.arange(300)  # the first 300 items are gold
    stored = StoredAnswers(
        item=item, annotator=worker + 100, label=label, truth_item=gold, truth_label=truth[gold],
        soft=pd.DataFrame(columns=["version", "item", "label", "prob"]),
    )  # fmt: skip
    policy = ConsensusPolicy(target=0.9, max_overlap=per_item)
    result = refit(stored, labels, policy, SkillRules())
    assert result.calibrator is not None and 300 * per_item >= MIN_CALIBRATION_STATES
    # held-out items after one and after two answers, with the skills the loop would use
    online_skill = result.skill
    decider = Decider(labels, policy, typical_skill=result.typical_skill, calibrator=result.calibrator)
    for seen in (1, 2):
        held = np.flatnonzero((item >= 300) & (np.arange(len(item)) % per_item < seen))
        opinions = Opinions.of(n_items - 300, item[held] - 300, label[held], online_skill[worker[held]])
        table = decider.decide(opinions)
        hit = table.label == truth[300:]
        for group in (table.confidence < 0.8, table.confidence >= 0.8):  # low and high confidence alike
            if group.sum() >= 50:  # never claims more than it delivers (it decides on a cautious quantile)
                assert hit[group].mean() >= table.confidence[group].mean() - 0.03
        accepted = table.status == "accepted"
        if seen == 2:  # two agreeing answers can reach the target
            assert accepted.sum() >= 50 and hit[accepted].mean() >= policy.target - 0.015
