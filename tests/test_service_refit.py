"""The full refit job: skills from EM over all answers, the model's temperature, the calibrator of
the online decision, branch skills and routing by them, ``refit_projects`` (``crowdloop refit``)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import update

from crowdloop.consensus import ConsensusPolicy
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
    gold = {f"g{i}": str(rng.choice(LABELS)) for i in range(30)}
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
    assert report.annotators == 4 and report.calibrated
    assert min(after["good1"], after["good2"], after["good3"]) > after["poor"] + 0.3
    assert after["poor"] < 0.55 and before["poor"] < 0.55  # gold caught the poor annotator; the EM agrees
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
