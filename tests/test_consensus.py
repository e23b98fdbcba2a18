from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from crowdloop import Answers, ConfigError, InputError, LabelSpace, Taxonomy
from crowdloop.consensus import ConsensusPolicy, DynamicConsensus, Opinions, SkillBook, SkillRules
from crowdloop.consensus.decider import Decider
from crowdloop.io import read_probabilities
from crowdloop.simulation.crowds import synthetic_crowd


@pytest.fixture(scope="module")
def crowd():
    frame, truth = synthetic_crowd(3000, 7, 60, 3, random_state=3)
    return Answers.from_frame(frame), truth


def first_answers(answers: Answers, n: int, seed: int = 0) -> Answers:
    """The first n answers of every item, in a random order per item."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(answers.n_answers)
    order = order[np.argsort(answers.item[order], kind="stable")]
    start = np.searchsorted(answers.item[order], np.arange(answers.n_items))
    rank = np.arange(len(order)) - start[answers.item[order]]
    return answers.subset(order[rank < n])


def test_accept_more_and_escalate(crowd):
    answers, truth = crowd
    gold = truth.iloc[:600]
    seen = first_answers(answers, 3)
    engine = DynamicConsensus(ConsensusPolicy(target=0.95, max_overlap=5)).fit(seen, gold)
    table = engine.decide(seen)
    assert {"accepted", "more"} <= set(table["status"])
    more = table[table["status"] == "more"]
    assert (more["next"].between(1, 2)).all()
    assert (table.loc[table["status"] == "accepted", "next"] == 0).all()
    at_max = DynamicConsensus(ConsensusPolicy(target=0.95, max_overlap=3)).fit(seen, gold).decide(seen)
    assert set(at_max["status"]) == {"accepted", "escalated"}  # nothing more to ask at max overlap
    assert (at_max.loc[at_max["status"] == "escalated", "confidence"] < 0.95).all()


def test_gold_items_are_settled(crowd):
    answers, truth = crowd
    gold = truth.iloc[:600]
    table = DynamicConsensus().fit(first_answers(answers, 1), gold).decide(first_answers(answers, 1))
    settled = table.set_index("task").loc[gold.index]
    assert (settled["status"] == "accepted").all() and (settled["label"].to_numpy() == gold.to_numpy()).all()


def test_one_answer_is_not_certainty(crowd):
    answers, truth = crowd
    one = first_answers(answers, 1)
    engine = DynamicConsensus(calibrate=False).fit(one, truth.iloc[:600])
    states, _ = engine.states(one)
    assert np.median(states.raw_confidence) < 0.95 and states.raw_confidence.max() < 0.999


def test_accepted_items_are_as_accurate_as_promised(crowd):
    answers, truth = crowd
    gold = truth.iloc[:1000]
    seen = first_answers(answers, 4)
    for target in (0.9, 0.95):
        table = DynamicConsensus(ConsensusPolicy(target=target, max_overlap=7)).fit(seen, gold).decide(seen)
        accepted = table[(table["status"] == "accepted") & ~table["task"].isin(gold.index)]
        accuracy = (accepted["label"].to_numpy() == truth.loc[accepted["task"]].to_numpy()).mean()
        assert len(accepted) > 300
        assert accuracy >= target - 0.015


def test_decide_item_matches_the_batch(crowd):
    answers, truth = crowd
    seen = first_answers(answers, 2)
    engine = DynamicConsensus(ConsensusPolicy(target=0.9)).fit(seen, truth.iloc[:600])
    table = engine.decide(seen)
    item = 700
    rows = seen.item == item
    skill = engine.model_.skill[seen.worker[rows]]
    one = engine.decider_.decide(Opinions.of(1, np.zeros(rows.sum()), seen.label[rows], skill))
    expected = table.iloc[item]
    assert one.status[0] == expected["status"] and seen.labels.decode([one.label[0]])[0] == expected["label"]
    assert one.confidence[0] == pytest.approx(expected["confidence"])
    newcomer = engine.decider_.decide(Opinions.of(1, [0], seen.label[rows][:1], [engine.model_.prior]))
    assert newcomer.status[0] == "more"


def test_taxonomy_partial_acceptance():
    taxonomy = Taxonomy.from_paths(["A > a1", "A > a2", "B > b1", "B > b2"])
    rng = np.random.default_rng(0)
    truth = rng.choice(["A > a1", "A > a2", "B > b1", "B > b2"], 400)
    rows = []
    for i, label in enumerate(truth):
        for w in range(3):
            branch = label.split(" > ")[0]
            leaf = label if rng.random() < 0.9 else f"{branch} > {branch.lower()}{'2' if label.endswith('1') else '1'}"
            rows.append((i, f"w{(i + w) % 20}", leaf))
    frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
    frame.loc[frame["task"] == 399, "label"] = ["A > a1", "A > a2", "A > a1"]  # branch sure, leaf torn
    answers = Answers.from_frame(frame, labels=taxonomy)
    gold = pd.Series(truth[:150], index=range(150))
    policy = ConsensusPolicy(target=0.97, max_overlap=3)
    row = DynamicConsensus(policy).fit(answers, gold).decide(answers).set_index("task").loc[399]
    assert (row["status"], row["label"]) == ("accepted", "A")
    strict = ConsensusPolicy(target=0.97, max_overlap=3, partial=False)
    assert (
        DynamicConsensus(strict).fit(answers, gold).decide(answers).set_index("task").loc[399, "status"] == "escalated"
    )


def test_model_vote_counts(crowd):
    answers, truth = crowd
    one = first_answers(answers, 2)  # the temperature is learned against the crowd: a crowd to learn from
    codes = one.labels.encode(truth.loc[one.items].to_numpy())
    probs = np.full((one.n_items, 3), 0.03)
    probs[np.arange(one.n_items), codes] = 0.94  # a sharp model that is right
    with_model = one.with_soft("model", one.items, probs)
    policy = ConsensusPolicy(target=0.95)
    gold = truth.iloc[:600]
    alone = DynamicConsensus(policy).fit(one, gold).decide(one)
    helped = DynamicConsensus(policy).fit(with_model, gold).decide(with_model)
    assert (helped["status"] == "accepted").mean() > (alone["status"] == "accepted").mean() + 0.15


def _model_row(label: int, prob: float, k: int) -> dict[str, np.ndarray]:
    """One model row for item 0: ``prob`` on ``label``, the rest spread over the other labels."""
    probs = np.full(k, (1 - prob) / (k - 1))
    probs[label] = prob
    return {"row": np.zeros(k, dtype=np.int64), "item": np.zeros(k, dtype=np.int64), "label": np.arange(k),
            "prob": probs, "temperature": np.ones(k)}  # fmt: skip


@pytest.mark.parametrize("taxonomy", [False, True])
def test_a_model_that_disagrees_with_the_person_who_answered_does_not_settle_the_item(taxonomy):
    names = [f"A > a{j}" for j in range(10)] + [f"B > b{j}" for j in range(10)]
    labels = Taxonomy.from_paths(names) if taxonomy else LabelSpace(names)
    a1, a2 = (labels.encode([n])[0] for n in ("A > a1", "A > a2"))
    decider = Decider(labels, ConsensusPolicy(target=0.97, max_overlap=3), typical_skill=0.8, calibrator=None)
    sure = _model_row(a2, 0.99999, len(labels))
    overruled = decider.decide(Opinions.of(1, [0], [a1], [0.96], sure))  # an expert says a1, the model a2
    assert labels.decode([overruled.label[0]])[0] == "A > a2" and overruled.confidence[0] > 0.97
    assert overruled.status[0] == "more"
    agreed = decider.decide(Opinions.of(1, [0], [a2], [0.8], sure))  # one person and the model agree
    assert (agreed.status[0], int(agreed.label[0])) == ("accepted", a2)
    if taxonomy:  # a person who only knew the branch does not back the model's leaf in it ...
        branch = labels.encode(["A"])[0]
        vague = decider.decide(Opinions.of(1, [0], [branch], [0.96], sure))
        assert (vague.status[0], int(vague.label[0])) == ("more", a2)
        named = decider.decide(Opinions.of(1, [0, 0], [branch, a2], [0.96, 0.8], sure))  # ... one who names it does
        assert (named.status[0], int(named.label[0])) == ("accepted", a2)
        deeper = Taxonomy.from_paths(["A > a1", "A > a1 > x", "A > a1 > y", "B > b1"])  # a label that has children
        a1_x, a1 = deeper.encode(["A > a1 > x", "A > a1"])
        on_a1 = Decider(deeper, ConsensusPolicy(target=0.97, max_overlap=3), typical_skill=0.8, calibrator=None)
        assert on_a1.backed(Opinions.of(1, [0], [a1_x], [0.9]), np.array([a1]))[0]  # said more than the label
        assert not on_a1.backed(Opinions.of(1, [0], [a1], [0.9]), np.array([a1_x]))[0]  # said less


def test_skill_book_bans_and_promotes():
    book = SkillBook(3, SkillRules(min_gold=5, min_gold_promote=20))
    book.record_gold(np.zeros(30, dtype=int), np.zeros(30, dtype=bool))  # always wrong
    book.record_gold(np.ones(60, dtype=int), np.ones(60, dtype=bool))  # always right
    book.record_gold([2, 2], [False, False])  # two misses: too early to judge
    assert book.banned().tolist() == [True, False, False]
    assert book.promoted().tolist() == [False, True, False]
    assert 0.3 < book.accuracy([2])[0] < 0.7
    book.record_time(np.full(12, 2), np.full(12, 0.5))  # implausibly fast
    assert book.banned()[2]
    assert book.accuracy([99])[0] == pytest.approx(0.7)  # unseen worker: the prior


@pytest.mark.parametrize("rules", [SkillRules(), SkillRules(prior_mean=0.85), SkillRules(ban_below=0.6, min_gold=3)])
def test_the_exam_lasts_as_long_as_it_takes_to_ban_a_worker_who_is_always_wrong(rules):
    """The exam's length follows from the ban rule: one wrong gold answer fewer would not ban, and
    a worker who gets them right is clear of the ban threshold, and out of the exam, no later."""
    n = rules.exam_length()
    assert n >= rules.min_gold
    book = SkillBook(3, rules)
    book.record_gold(np.zeros(n - 1, dtype=int), np.zeros(n - 1, dtype=bool))
    book.record_gold(np.ones(n, dtype=int), np.zeros(n, dtype=bool))
    assert book.banned().tolist() == [False, True, False]
    assert book.in_exam().tolist() == [True, False, True]
    taken = 0
    while book.in_exam()[2]:  # always right: out of the exam by its end
        book.record_gold([2], [True])
        taken += 1
    assert 0 < taken <= n
    assert not SkillBook(1, replace(rules, exam=False)).in_exam()[0]
    assert SkillRules(ban_below=0.0).exam_length() == 0  # nothing bans: no exam


def test_policy_rejects_impossible_settings():
    with pytest.raises(ConfigError, match="target"):
        ConsensusPolicy(target=1.0)
    with pytest.raises(ConfigError, match="max_overlap"):
        ConsensusPolicy(min_overlap=3, max_overlap=2)


def test_probabilities_file_errors(tmp_path):
    labels = LabelSpace(["cat", "dog"])
    path = tmp_path / "probs.csv"
    path.write_text("task,cat,dog\nt1,0.5,0.4\n")
    with pytest.raises(InputError, match=r"sum to 0\.9000"):
        read_probabilities(path, labels)
    path.write_text("task,label,probability\nt1,cat,0.5\nt1,cow,0.5\n")
    with pytest.raises(InputError, match="line 3"):
        read_probabilities(path, labels)
    path.write_text("task,label,probability\nt1,cat,0.25\nt1,dog,0.75\n")
    ids, matrix = read_probabilities(path, labels)
    assert ids.tolist() == ["t1"] and matrix.toarray().tolist() == [[0.25, 0.75]]
    answers = Answers.from_frame(pd.DataFrame({"task": ["t2"], "worker": ["a"], "label": ["cat"]}), labels=labels)
    with pytest.raises(InputError, match="no answers"):
        answers.with_soft("model", ids, matrix)


def test_priority_prefers_items_near_a_tie(crowd):
    from crowdloop.consensus.priority import expected_gain

    gains = expected_gain(np.array([0.5, 0.7, 0.9, 0.999]), 0.8)
    assert gains[0] > gains[1] > gains[2] > gains[3] >= 0
    answers, truth = crowd
    seen = first_answers(answers, 2)
    engine = DynamicConsensus(ConsensusPolicy(target=0.95)).fit(seen, truth.iloc[:600])
    table = engine.decide(seen).set_index("task")
    order = engine.priorities(seen, table.reset_index())
    top, bottom = order.index[0], order.index[-1]
    assert table.loc[top, "status"] == "more" and order.iloc[0] > 0
    assert order.loc[bottom] == 0


def test_branch_skills_route_to_the_specialist():
    from crowdloop.consensus.routing import BranchSkills

    taxonomy = Taxonomy.from_paths(["A > a1", "A > a2", "B > b1", "B > b2"])
    leaves = ["A > a1", "A > a2", "B > b1", "B > b2"]
    rng = np.random.default_rng(1)
    truth = rng.choice(leaves, 400)
    rows = []
    for i, label in enumerate(truth):
        for worker in ("a-expert", "b-expert"):
            good = label.startswith(worker[0].upper())
            answer = label if good or rng.random() < 0.5 else rng.choice(leaves)
            rows.append((i, worker, answer))
    answers = Answers.from_frame(pd.DataFrame(rows, columns=["task", "worker", "label"]), labels=taxonomy)
    codes = taxonomy.encode(truth)
    skills = BranchSkills().fit(answers, codes, overall=np.array([0.8, 0.8]))
    a_branch = skills.branch(taxonomy, taxonomy.encode(["A > a1"]))[0]
    b_branch = skills.branch(taxonomy, taxonomy.encode(["B"]))[0]
    experts = answers.workers.get_indexer(["a-expert", "b-expert"])
    assert skills.best_workers(a_branch, experts)[0] == experts[0]
    assert skills.best_workers(b_branch, experts)[0] == experts[1]
    assert skills.skill_[experts[0], a_branch] > 0.9 > skills.skill_[experts[0], b_branch]


def model_agrees_case():
    """Five items over cat/dog/cow, a model row per item, and what the preset must decide."""
    rows = [
        ("confident", "a", "cat"),  # model 0.9 cat, one human agrees: accepted cat
        ("disagrees", "a", "dog"),  # model 0.9 cat, the human says dog: ask more
        ("unsure", "a", "cat"),  # model only 0.6: ask more
        ("humans", "a", "dog"), ("humans", "b", "dog"),  # model 0.6 cow, two humans agree: accepted dog
        ("torn", "a", "cat"), ("torn", "b", "dog"), ("torn", "c", "cow"),  # no agreement at max overlap 3
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
    labels = LabelSpace(["cat", "dog", "cow"])
    answers = Answers.from_frame(frame, labels=labels)
    probs = {
        "confident": [0.9, 0.05, 0.05],
        "disagrees": [0.9, 0.05, 0.05],
        "unsure": [0.6, 0.2, 0.2],
        "humans": [0.2, 0.2, 0.6],
        "torn": [0.5, 0.3, 0.2],
    }
    return answers.with_soft("model", list(probs), np.array(list(probs.values())))


def test_model_agrees_preset_explains_each_decision():
    from crowdloop.consensus import ModelAgreesConsensus

    answers = model_agrees_case()
    engine = ModelAgreesConsensus(ConsensusPolicy(max_overlap=3), threshold=0.8).fit(answers)
    table = engine.decide(answers).set_index("task")
    assert table.loc["confident", ["status", "label"]].tolist() == ["accepted", "cat"]
    assert table.loc["disagrees", ["status", "next"]].tolist() == ["more", 1]
    assert table.loc["unsure", "status"] == "more"
    assert table.loc["humans", ["status", "label"]].tolist() == ["accepted", "dog"]
    assert table.loc["torn", ["status", "next"]].tolist() == ["escalated", 0]
    assert table["confidence"].between(0, 1).all()
    # a lower threshold trusts the unsure model; two answers at least: nothing accepted on one
    lower = ModelAgreesConsensus(ConsensusPolicy(max_overlap=3), threshold=0.55).fit(answers).decide(answers)
    assert lower.set_index("task").loc["unsure", "status"] == "accepted"
    strict = ModelAgreesConsensus(ConsensusPolicy(min_overlap=2, max_overlap=3)).fit(answers).decide(answers)
    assert strict.set_index("task").loc["confident", "status"] == "more"


def test_named_policies():
    from crowdloop.consensus import ModelAgreesConsensus, consensus_engine

    assert type(consensus_engine("probabilistic")) is DynamicConsensus
    assert isinstance(consensus_engine("model-agrees", threshold=0.7), ModelAgreesConsensus)
    with pytest.raises(ConfigError, match="unknown policy 'vote'"):
        consensus_engine("vote")
    with pytest.raises(ConfigError, match="threshold"):
        consensus_engine("model-agrees", threshold=1.5)


def test_model_agrees_needs_fewer_answers_than_the_crowd_alone(crowd):
    from crowdloop.consensus import ModelAgreesConsensus
    from crowdloop.simulation.replay import replay

    answers, truth = crowd
    small = answers.subset(answers.item < 1000)
    codes = small.labels.encode(truth.loc[small.items].to_numpy())
    rng = np.random.default_rng(0)
    right = rng.random(small.n_items) < 0.85  # a model right 85% of the time, then confident
    guess = np.where(right, codes, (codes + 1) % 3)
    probs = np.full((small.n_items, 3), 0.05)
    probs[np.arange(small.n_items), guess] = 0.9
    with_model = small.with_soft("model", small.items, probs)
    policy = ConsensusPolicy(max_overlap=5)
    preset = replay(with_model, truth.loc[small.items], ModelAgreesConsensus(policy), seeds=(0,)).per_seed.iloc[0]
    humans = replay(small, truth.loc[small.items], ModelAgreesConsensus(policy), seeds=(0,)).per_seed.iloc[0]
    assert preset["answers_per_item"] < humans["answers_per_item"] - 0.5
    assert preset["one_answer_share"] > 0.4 and humans["one_answer_share"] == 0
    assert preset["accuracy"] > humans["accuracy"] + 0.05  # fewer answers, and better ones


def test_the_decision_keeps_a_calibration_curve_for_each_answer_count_with_30_gold_states(crowd):
    """The README's promise: with gold, a curve of its own for each answer count that has 30 or more
    gold states; the others read the pooled curve."""
    answers, truth = crowd
    gold_items = np.arange(40)
    order = np.argsort(answers.item, kind="stable")
    rank = np.empty(answers.n_answers, dtype=np.int64)
    rank[order] = np.arange(answers.n_answers) - np.searchsorted(answers.item[order], answers.item[order])
    seen = answers.subset(np.flatnonzero((answers.item >= 15) | (rank < 2)))  # 25 gold states after three
    gold = pd.Series(truth.loc[answers.items[gold_items]].to_numpy(), index=answers.items[gold_items])
    engine = DynamicConsensus(ConsensusPolicy(target=0.9, max_overlap=3)).fit(seen, gold)
    calibrator = engine.decider_.calibrator
    assert calibrator is not None and calibrator.per_answer_count
    assert set(np.unique(calibrator.strata_curves_[:, 0]).astype(int)) == {1, 2}
