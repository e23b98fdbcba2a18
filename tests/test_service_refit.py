"""The full refit job: skills from EM over all answers, the model's temperature, the calibrator of
the online decision, branch skills and routing by them, ``refit_projects`` (``crowdloop refit``)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.consensus.decider import Decider, Opinions
from crowdloop.consensus.fitting import MIN_CALIBRATION_STATES, StoredAnswers, refit
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service import ItemIn, open_service, refit_projects
from crowdloop.service.intake import soft_columns
from crowdloop.store.schema import Annotator, Item

sys.path.insert(0, str(Path(__file__).parent))
from crowd_loop import answer_in_turns

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
    answer_in_turns(service, people, skills, truth, LABELS, rng, 400)
    before = {a.name: a.skill for a in service.annotator_skills(project.id)}
    (report,) = refit_projects(database_url, project.name)
    after = {a.name: a.skill for a in service.annotator_skills(project.id)}
    assert report.annotators == 4
    assert report.calibrated  # 40 gold items: their states after 1-3 answers and the model's alone
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
        item=item, annotator=worker + 100, label=label, gold_item=gold, gold_label=truth[gold],
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


def test_too_few_gold_states_leave_the_decision_on_the_raw_posterior() -> None:
    rng = np.random.default_rng(2)
    item = np.repeat(np.arange(200), 3)
    stored = StoredAnswers(
        item=item, annotator=rng.integers(0, 6, len(item)), label=rng.integers(0, 4, len(item)),
        gold_item=np.arange(30), gold_label=rng.integers(0, 4, 30),
        soft=pd.DataFrame(columns=["version", "item", "label", "prob"]),
    )  # fmt: skip
    assert MIN_CALIBRATION_STATES > 30 * 3
    assert refit(stored, LabelSpace(LABELS), ConsensusPolicy(max_overlap=3), SkillRules()).calibrator is None


def test_reviews_of_disputed_items_do_not_make_the_decision_more_cautious() -> None:
    """The expert's labels of the items the crowd disagreed on clamp those items, but they are no
    sample of how often a state is right (the decision picked them for disagreeing): with 333 of
    them beside 300 gold items, held-out items after two answers are accepted as often, and their
    calibrated confidence claims what they deliver. Counted as calibration gold, the reviews made
    the curve pessimistic (confidence .946 for items .967 right; 269 accepted instead of 316)."""
    rng = np.random.default_rng(4)
    labels = LabelSpace(LABELS)
    skills = rng.uniform(0.55, 0.9, 12)
    n_items, per_item = 1500, 3
    truth = rng.integers(0, len(LABELS), n_items)
    item = np.repeat(np.arange(n_items), per_item)
    worker = np.concatenate([rng.choice(len(skills), per_item, replace=False) for _ in range(n_items)])
    right = rng.random(len(item)) < skills[worker]
    label = np.where(right, truth[item], (truth[item] + rng.integers(1, len(LABELS), len(item))) % len(LABELS))
    gold = np.arange(300)
    table = label.reshape(n_items, per_item)
    disputed = np.flatnonzero((table != table[:, :1]).any(axis=1))
    reviewed = disputed[(disputed >= 300) & (disputed < 900)]
    policy = ConsensusPolicy(target=0.9, max_overlap=per_item)
    held = np.flatnonzero((item >= 900) & (np.arange(len(item)) % per_item < 2))
    outcome = {}
    for name, review in (("gold", reviewed[:0]), ("gold and reviews", reviewed)):
        stored = StoredAnswers(
            item=item, annotator=worker + 100, label=label, gold_item=gold, gold_label=truth[gold],
            soft=pd.DataFrame(columns=["version", "item", "label", "prob"]),
            reviewed_item=review, reviewed_label=truth[review],
        )  # fmt: skip
        result = refit(stored, labels, policy, SkillRules())
        decider = Decider(labels, policy, typical_skill=result.typical_skill, calibrator=result.calibrator)
        decided = decider.decide(Opinions.of(n_items - 900, item[held] - 900, label[held], result.skill[worker[held]]))
        outcome[name] = decided, decided.label == truth[900:]
    assert len(reviewed) == 333
    decided, hit = outcome["gold and reviews"]
    sure = decided.confidence >= 0.8
    assert decided.confidence[sure].mean() >= hit[sure].mean() - 0.015
    assert (decided.status == "accepted").sum() >= 0.95 * (outcome["gold"][0].status == "accepted").sum()


def test_the_calibrator_knows_the_model_alone() -> None:
    """An item nobody has answered yet is a state the decision sees (the model's vote alone): the
    calibrator learns it on the gold items' model-only states instead of extrapolating its curve
    from one answer and more to none (which put a model 85% right at .72, and in the labeling loop
    sent confident, right predictions to the expert before anyone answered)."""
    rng = np.random.default_rng(3)
    names = [f"l{k}" for k in range(8)]
    labels, k = LabelSpace(names), len(names)
    skills = rng.uniform(0.55, 0.9, 12)
    n_items, per_item = 1500, 2
    truth = rng.integers(0, k, n_items)
    item = np.repeat(np.arange(n_items), per_item)
    worker = np.concatenate([rng.choice(len(skills), per_item, replace=False) for _ in range(n_items)])
    right = rng.random(len(item)) < skills[worker]
    label = np.where(right, truth[item], (truth[item] + rng.integers(1, k, len(item))) % k)
    top = np.where(rng.random(n_items) < 0.85, truth, (truth + rng.integers(1, k, n_items)) % k)
    confidence = rng.uniform(0.8, 0.999, n_items)
    probs = np.repeat(((1 - confidence) / (k - 1))[:, None], k, axis=1)
    probs[np.arange(n_items), top] = confidence
    soft = pd.DataFrame(
        [(7, i, c, probs[i, c]) for i in range(n_items) for c in range(k)], columns=["version", "item", "label", "prob"]
    )
    gold = np.arange(300)
    policy = ConsensusPolicy(target=0.95, max_overlap=3)
    stored = StoredAnswers(
        item=item, annotator=worker + 100, label=label, gold_item=gold, gold_label=truth[gold], soft=soft
    )
    result = refit(stored, labels, policy, SkillRules())
    decider = Decider(labels, policy, typical_skill=result.typical_skill, calibrator=result.calibrator)
    held = np.arange(900, n_items)
    votes = soft_columns([(i - 900, 7, (list(range(k)), probs[i].tolist())) for i in held], result.temperatures)
    none = np.empty(0, dtype=np.int64)
    decided = decider.decide(Opinions.of(len(held), none, none, np.empty(0), votes))
    hit = decided.label == truth[held]
    assert abs(decided.confidence.mean() - hit.mean()) <= 0.05
    assert (decided.status == "more").all()


def test_a_stored_prediction_keeps_the_mass_beyond_its_top_labels() -> None:
    """The service stores a model's top labels only; the refit reads the mass they leave as shared
    by the other labels (as the decision does), so the model's temperature is the one its full
    rows give. Renormalised to its top labels, a row gave the truth zero whenever it lay beyond
    them, and the temperature fell to flatten the model for it (.47 where gold said .73)."""
    rng = np.random.default_rng(8)
    names = [f"l{k}" for k in range(12)]
    labels, k, n_items, top = LabelSpace(names), len(names), 600, 3
    truth = rng.integers(0, k, n_items)
    logits = rng.normal(0, 1.5, (n_items, k))
    logits[np.arange(n_items), truth] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    item = np.repeat(np.arange(n_items), 2)
    worker = rng.integers(0, 10, len(item))
    label = np.where(rng.random(len(item)) < 0.8, truth[item], rng.integers(0, k, len(item)))
    gold = np.arange(200)

    def temperature(kept: int) -> float:
        best = np.argsort(-probs, axis=1)[:, :kept]
        soft = pd.DataFrame(
            [(3, i, c, probs[i, c]) for i in range(n_items) for c in best[i]],
            columns=["version", "item", "label", "prob"],
        )
        stored = StoredAnswers(item, worker, label, gold, truth[gold], soft)
        return refit(stored, labels, ConsensusPolicy(max_overlap=3), SkillRules()).temperatures[3]

    assert (np.argsort(-probs, axis=1)[gold, :top] != truth[gold, None]).all(axis=1).mean() > 0.05
    assert temperature(top) == pytest.approx(temperature(k), rel=0.1)


def _refit_world(service, name: str) -> int:
    """A project with gold answers counted since the last refit (``since_*`` > 0)."""
    rng = np.random.default_rng(7)
    policy = ConsensusPolicy(min_overlap=3, max_overlap=3)  # every annotator answers every item
    project = service.create_project(name, LabelSpace(LABELS), policy, gold_rate=0.5)
    rows = [ItemIn(f"i{i}", {}) for i in range(12)] + [ItemIn(f"g{i}", {}, gold="a") for i in range(8)]
    service.import_items(project.id, rows)
    for name_ in ("x", "y", "z"):
        who, _ = service.add_annotator(project.id, name_)
        while (task := service.next_task(who)) is not None:
            service.submit(who, task.lease_id, "a" if rng.random() < 0.8 else "b")
    return project.id


def test_concurrent_refits_of_a_project_are_exclusive(service, database_url: str, monkeypatch) -> None:
    """Four refits at once (two from another process's service, as cron racing the API would):
    one runs, the others are refused with ConflictError while it runs; the gold evidence since the
    last refit is never subtracted twice (no negative counts, no skill above 1)."""
    import threading

    from crowdloop.errors import ConflictError
    from crowdloop.service import jobs
    from crowdloop.store.schema import Annotator as A

    project_id = _refit_world(service, "exclusive")
    other = open_service(database_url, seed=6)
    arrived = threading.Barrier(4, timeout=3)
    fit = jobs.fit_project

    def slow_fit(*args, **kwargs):  # every refit that got this far waits for the others to read too
        with contextlib.suppress(threading.BrokenBarrierError):
            arrived.wait()
        return fit(*args, **kwargs)

    monkeypatch.setattr(jobs, "fit_project", slow_fit)
    outcomes: list = []

    def one(svc) -> None:
        try:
            outcomes.append(svc.refit(project_id))
        except ConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one, args=(svc,)) for svc in (service, service, other, other)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.close()
    refused = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(outcomes) == 4 and len(refused) == 3, outcomes
    assert all("refit" in str(o) for o in refused)
    with service._sessions() as session:
        rows = session.execute(select(A.since_right, A.since_total).where(A.project_id == project_id)).all()
    assert rows and all(r.since_right == 0 and r.since_total == 0 for r in rows)
    assert all(0 <= a.skill <= 1 for a in service.annotator_skills(project_id))
    monkeypatch.setattr(jobs, "fit_project", fit)
    answered = service.answers_frame(project_id)["worker"].nunique()
    assert service.refit(project_id).annotators == answered  # the claim is released: the next refit runs


def test_a_lapsed_refit_claim_is_taken_over(service) -> None:
    """A claim whose holder died (no renewal before it expires) is taken by the next refit; the
    holder that lost its claim writes nothing."""
    from datetime import timedelta

    from crowdloop.errors import ConflictError

    project_id = _refit_world(service, "lapsed")
    claim = service.claim_refit(project_id)
    with pytest.raises(ConflictError):
        service.claim_refit(project_id)
    claim.stop_renewing()
    later = service._clock() + timedelta(seconds=claim.seconds + 1)
    monkey_clock = service._clock
    service._clock = lambda: later
    try:
        taken = service.claim_refit(project_id)
        with pytest.raises(ConflictError):
            service.refit(project_id, claim=claim)  # the old holder finds its claim gone
        assert (
            service.refit(project_id, claim=taken).annotators == service.answers_frame(project_id)["worker"].nunique()
        )
    finally:
        service._clock = monkey_clock


def test_a_refit_decides_without_holding_up_answers(service, database_url: str, monkeypatch) -> None:
    """The refit decides the open items in a read transaction and writes in a short one: an answer
    submitted while it decides goes through at once (it waited for the whole page before), and the
    item keeps the decision its answer brought, not the refit's older one."""
    import threading
    import time

    from crowdloop.service.item_decisions import ItemDecisions

    project = service.create_project("decide-aside", LabelSpace(LABELS), ConsensusPolicy(max_overlap=3), gold_rate=0)
    service.import_items(project.id, [ItemIn(f"i{i}", {}) for i in range(30)])
    who, _ = service.add_annotator(project.id, "ann")
    for _ in range(10):
        task = service.next_task(who)
        service.submit(who, task.lease_id, "a")
    task = service.next_task(who)
    other = open_service(database_url, seed=9)
    decide, took = ItemDecisions.decide, []

    def decide_while_answering(self, db, project_row, items, **kwargs):
        if len(items) > 1 and not took:  # the refit's page: an answer comes in meanwhile
            thread = threading.Thread(target=lambda: other.submit(who, task.lease_id, "b"))
            start = time.perf_counter()
            thread.start()
            thread.join(10)
            took.append(time.perf_counter() - start)
        return decide(self, db, project_row, items, **kwargs)

    monkeypatch.setattr(ItemDecisions, "decide", decide_while_answering)
    try:
        service.refit(project.id)
    finally:
        other.close()
    assert took and took[0] < 5
    state = service.item_state(project.id, task.item)
    assert state.answers == 1 and state.label == "b"


def test_a_refit_with_nothing_new_rewrites_no_item(service, database_url: str) -> None:
    """Each rewritten row is a new row version (PostgreSQL keeps the old one until vacuum): a
    refit writes only the items whose decision or weight changed."""
    rng = np.random.default_rng(3)
    policy = ConsensusPolicy(target=0.9, min_overlap=2, max_overlap=3, escalate_early=False)
    project = service.create_project("quiet-refit", LabelSpace(LABELS), policy, gold_rate=0.3)
    truth = {f"i{i}": str(rng.choice(LABELS)) for i in range(30)}
    gold = {f"g{i}": str(rng.choice(LABELS)) for i in range(20)}
    service.import_items(project.id, [ItemIn(k, {}) for k in truth] + [ItemIn(k, {}, gold=v) for k, v in gold.items()])
    people = {name: service.add_annotator(project.id, name)[0] for name in ("p1", "p2", "p3")}
    answer_in_turns(service, people, dict.fromkeys(people, 0.8), truth | gold, LABELS, rng, 60)

    def written() -> dict[int, object]:
        with service._sessions() as session:
            rows = session.execute(select(Item.id, Item.updated_at).where(Item.project_id == project.id)).all()
        return dict(rows)

    refit_projects(database_url, project.name)
    before = written()
    refit_projects(database_url, project.name)
    assert written() == before


def test_a_refit_that_moves_the_crowds_skill_leaves_unanswered_items_alone(service) -> None:
    """An item nobody answered is worth the most one answer can be, whatever the crowd's skill: a
    refit that re-estimates the typical skill keeps its stored pool order (no rewritten row), and
    decision still ranks it above the items answered once."""
    from crowdloop.service.item_decisions import redecide_open
    from crowdloop.store.schema import Project, utcnow

    policy = ConsensusPolicy(target=0.95, min_overlap=1, max_overlap=3, escalate_early=False)
    project = service.create_project("skill-moves", LabelSpace(LABELS), policy)
    service.import_items(project.id, [ItemIn(f"i{i}", {}) for i in range(40)])
    people = [service.authenticate(service.add_annotator(project.id, f"p{k}")[1]) for k in range(2)]
    for person in people:  # one answer to a few items: open, less worth asking than the fresh ones
        task = service.next_task(person)
        service.submit(person, task.lease_id, "a")

    def stored() -> dict[str, tuple]:
        with service._sessions() as session:
            rows = session.execute(
                select(
                    Item.external_id, Item.updated_at, Item.priority, Item.needed, Item.answer_count, Item.learn_weight
                ).where(Item.project_id == project.id)
            ).all()
        return {r.external_id: (r.updated_at, r.priority, r.needed, r.answer_count, r.priority / r.learn_weight)
                for r in rows}  # fmt: skip

    before = stored()
    for skill in (0.62, 0.91):
        with service._sessions() as session, session.begin():
            session.execute(
                update(Project).where(Project.id == project.id).values(typical_skill=skill, refit_at=utcnow())
            )
        redecide_open(service.db, service.decisions, project.id)
        after = stored()
        fresh = [k for k, v in after.items() if v[3] == 0]
        assert len(fresh) == 40 - len(people)
        assert all(after[k][1] == before[k][1] for k in fresh), skill
        # rewritten only where the decision changed (answers to order now, at a new skill)
        assert all(after[k][0] == before[k][0] for k in fresh if after[k][2] == before[k][2]), skill
        answered = [v[4] for v in after.values() if v[3] > 0]  # the decision's own priority, unweighted
        assert answered and max(answered) < min(after[k][4] for k in fresh) == pytest.approx(1.0)
        before = after
