"""The labeling loop end to end on SQLite and PostgreSQL: projects, import, gold, tokens, leases,
submit, bans, review, model votes, refit, results."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.errors import AuthError, ConflictError, ForbiddenError, InputError, NotFoundError, UnknownLabelError
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service import GoldIn, ItemIn, TaskOut, open_service
from crowdloop.store.schema import Annotator, ApiToken

TAXONOMY = Taxonomy.from_paths(
    [f"{top} > {leaf}" for top, leaves in {"Audio": "abc", "Home": "def"}.items() for leaf in leaves]
)
LEAVES = [label for label in TAXONOMY.labels if " > " in label]
_names = itertools.count()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def service(database_url: str, clock: Clock):
    svc = open_service(database_url, seed=7, clock=clock)
    yield svc
    svc.close()


def name() -> str:
    return f"project-{next(_names)}"


def answer(rng: np.random.Generator, truth: str, skill: float) -> str:
    """Right with probability ``skill``, else a sibling leaf (the realistic confusion)."""
    if rng.random() < skill:
        return truth
    branch = truth.split(" > ")[0]
    return str(rng.choice([leaf for leaf in LEAVES if leaf.startswith(branch) and leaf != truth]))


def work(service, annotators, truth, skills, rng, limit=10_000) -> int:
    """Every annotator asks for tasks and answers until none is left; returns the submits."""
    submits = 0
    active = list(range(len(annotators)))
    for _ in range(limit):
        if not active:
            return submits
        i = active[submits % len(active)] if active else 0
        task = service.next_task(annotators[i])
        if task is None:
            active.remove(i)
            continue
        service.submit(annotators[i], task.lease_id, answer(rng, truth[task.item], skills[i]), duration_ms=4000)
        submits += 1
    raise AssertionError("the loop did not finish")


def test_whole_loop_from_a_taxonomy(service) -> None:
    rng = np.random.default_rng(0)
    policy = ConsensusPolicy(target=0.9, min_overlap=1, max_overlap=4)
    project = service.create_project(name(), TAXONOMY, policy, gold_rate=0.15)
    truth = {f"p{i}": str(rng.choice(LEAVES)) for i in range(40)}
    gold = {f"g{i}": str(rng.choice(LEAVES)) for i in range(12)}
    items = [ItemIn(k, {"title": f"product {k}"}) for k in truth]
    items += [ItemIn(k, {"title": f"product {k}"}, gold=v) for k, v in gold.items()]
    truth |= gold
    assert service.import_items(project.id, items, batch_size=16) == 52
    _, owner_token = service.add_annotator(project.id, "owner", role="owner")
    reviewer, _ = service.add_annotator(project.id, "reviewer", role="reviewer")
    pairs = [service.add_annotator(project.id, f"w{i}") for i in range(5)]
    annotators = [service.authenticate(token) for _, token in pairs]
    assert service.authenticate(owner_token).role == "owner"
    skills = [0.92, 0.9, 0.88, 0.85, 0.9]
    submits = work(service, annotators, truth, skills, rng)

    progress = service.progress(project.id)
    assert progress.answers == submits
    assert progress.gold_items == 12 and progress.items == 40
    assert progress.gold_answers > 0
    assert set(progress.status_counts) <= {"accepted", "escalated", "gold"}
    rows = {r.item: r for r in service.results(project.id, batch_size=7)}
    assert len(rows) == 40
    assert all(r.answers <= policy.max_overlap for r in rows.values())
    accepted = [r for r in rows.values() if r.status == "accepted"]
    assert len(accepted) >= 25
    right = np.mean([truth[r.item] == r.label or truth[r.item].startswith(r.label + " > ") for r in accepted])
    assert right >= 0.85
    assert progress.cost == pytest.approx(submits * policy.prices.crowd)

    queue = service.review_queue(project.id)
    assert len(queue) == progress.status_counts.get("escalated", 0)
    for task in queue:
        assert task.answers and all(a.label in TAXONOMY for a in task.answers)
        state = service.review(reviewer, project.id, task.item, truth[task.item])
        assert state.status == "reviewed" and state.label == truth[task.item]
    assert not service.review_queue(project.id)
    final = {r.item: r for r in service.results(project.id)}
    assert {r.status for r in final.values()} <= {"accepted", "reviewed"}
    frame = service.answers_frame(project.id)
    assert list(frame.columns[:3]) == ["task", "worker", "label"]
    assert (~frame["review"]).sum() == submits and frame["review"].sum() == len(queue)
    kinds = {e["kind"] for e in service.events(project.id, limit=1000)}
    assert "accepted" in kinds
    if queue:
        assert {"escalated", "reviewed"} <= kinds

    report = service.refit(project.id)
    assert report.annotators == 5 and report.skill_model == "one-coin"
    skills_after = {a.name: a.skill for a in service.annotator_skills(project.id)}
    assert all(0.5 < skills_after[f"w{i}"] < 1 for i in range(5))


def test_submit_is_idempotent(service) -> None:
    project = service.create_project(name(), LabelSpace(["cat", "dog"]), ConsensusPolicy(max_overlap=3), gold_rate=0)
    service.import_items(project.id, [ItemIn("a", {}), ItemIn("b", {})])
    worker, _ = service.add_annotator(project.id, "w")
    task = service.next_task(worker)
    first = service.submit(worker, task.lease_id, "cat", idempotency_key="k1")
    again = service.submit(worker, task.lease_id, "cat", idempotency_key="k1")
    assert not first.duplicate and again.duplicate and again.answer_id == first.answer_id
    assert service.submit(worker, task.lease_id, "dog").duplicate  # the same lease: still one answer
    other = service.next_task(worker)
    assert other.item != task.item
    by_key = service.submit(worker, other.lease_id, "dog", idempotency_key="k1")
    assert by_key.duplicate and by_key.answer_id == first.answer_id
    assert service.item_state(project.id, task.item).answers == 1
    assert len(service.answers_frame(project.id)) == 1


def test_expired_leases_return_to_the_pool(service, clock: Clock) -> None:
    policy = ConsensusPolicy(target=0.9, min_overlap=1, max_overlap=1)
    project = service.create_project(name(), LabelSpace(["x", "y"]), policy, gold_rate=0, lease_seconds=60)
    service.import_items(project.id, [ItemIn("only", {"n": 1})])
    slow, _ = service.add_annotator(project.id, "slow")
    fast, _ = service.add_annotator(project.id, "fast")
    task = service.next_task(slow)
    assert service.next_task(slow).lease_id == task.lease_id  # asking again: the same task
    assert service.next_task(fast) is None  # the item needs one answer and it is leased
    assert service.item_state(project.id, "only").open_leases == 1
    clock.advance(61)
    again = service.next_task(fast)
    assert again is not None and again.item == "only"
    with pytest.raises(ConflictError, match="expired"):
        service.submit(slow, task.lease_id, "x")
    service.submit(fast, again.lease_id, "y")
    state = service.item_state(project.id, "only")
    assert state.answers == 1 and state.open_leases == 0 and state.status in ("accepted", "escalated")


def test_skip_gives_the_task_back(service) -> None:
    project = service.create_project(name(), LabelSpace(["x", "y"]), ConsensusPolicy(max_overlap=2), gold_rate=0)
    service.import_items(project.id, [ItemIn("one", {})])
    worker, _ = service.add_annotator(project.id, "w")
    other, _ = service.add_annotator(project.id, "o")
    task = service.next_task(worker)
    service.skip(worker, task.lease_id)
    assert service.item_state(project.id, "one").open_leases == 0
    assert service.next_task(worker) is None  # never offered to them again
    assert service.next_task(other).item == "one"
    with pytest.raises(ConflictError):
        service.skip(worker, task.lease_id)


def test_an_answer_on_the_true_path_of_a_gold_item_earns_its_share(service) -> None:
    project = service.create_project(name(), TAXONOMY, ConsensusPolicy(), gold_rate=1.0)
    service.import_items(
        project.id,
        [ItemIn("leaf", {"i": 0}, gold="Audio > a"), ItemIn("inner", {"i": 1}, gold="Home"), ItemIn("real", {})],
    )  # gold goes only beside real work
    worker, _ = service.add_annotator(project.id, "cautious")
    answers = {"leaf": "Audio", "inner": "Home > d"}  # the branch of a leaf; a leaf below a true branch
    for _ in range(2):
        task = service.next_task(worker)
        service.submit(worker, task.lease_id, answers[task.item])
    with service.engine.connect() as connection:
        row = connection.execute(
            select(Annotator.gold_right, Annotator.gold_total).where(Annotator.id == worker.id)
        ).one()
    assert row.gold_total == 2 and row.gold_right == pytest.approx(0.5 + 1.0)


def test_gold_failures_ban_an_annotator(service) -> None:
    rules = SkillRules(min_gold=5, ban_below=0.6)
    project = service.create_project(name(), LabelSpace(["x", "y", "z"]), ConsensusPolicy(), rules=rules, gold_rate=1.0)
    service.import_items(project.id, [ItemIn(f"g{i}", {"i": i}, gold="x") for i in range(12)])
    service.import_items(project.id, [ItemIn(f"r{i}", {"i": i}) for i in range(5)])
    spammer, _ = service.add_annotator(project.id, "spammer")
    status = "active"
    for _ in range(12):
        task = service.next_task(spammer)
        status = service.submit(spammer, task.lease_id, "z", duration_ms=5000).annotator_status
        if status == "banned":
            break
    assert status == "banned"
    with pytest.raises(ForbiddenError, match="banned"):
        service.next_task(spammer)
    info = service.get_annotator(spammer.id)
    assert info.status == "banned" and info.gold_right == 0 and info.gold_total >= 5
    event = next(e for e in service.events(project.id) if e["kind"] == "banned")
    assert event["annotator"] == "spammer" and "gold" in event["detail"]["reason"]
    assert service.progress(project.id).banned == 1


def test_a_new_annotator_sits_an_exam_of_gold_and_a_spammer_fails_it_before_touching_real_work(service) -> None:
    """At a gold rate of 10% a spammer answered about nine real items per gold one before the ban
    test could judge them: dozens of spam answers in the crowd's items. The exam serves gold until
    the test can tell, so the spammer is banned with no real item answered, and a good annotator
    gets real work as soon as gold clears them."""
    rules = SkillRules()
    project = service.create_project(name(), LabelSpace(["x", "y", "z"]), ConsensusPolicy(), rules=rules, gold_rate=0.1)
    service.import_items(project.id, [ItemIn(f"g{i}", {"i": i}, gold="x") for i in range(30)])
    service.import_items(project.id, [ItemIn(f"r{i}", {"i": i}) for i in range(100)])
    spammer, _ = service.add_annotator(project.id, "spammer")
    served, status = [], "active"
    while status == "active":
        task = service.next_task(spammer)
        served.append(task.item)
        status = service.submit(spammer, task.lease_id, "z", duration_ms=5000).annotator_status
    assert status == "banned" and len(served) == rules.exam_length()
    assert all(item.startswith("g") for item in served)
    good, _ = service.add_annotator(project.id, "good")
    served = []
    for _ in range(12):
        task = service.next_task(good)
        served.append(task.item)
        service.submit(good, task.lease_id, "x", duration_ms=5000)
    first_real = next(k for k, item in enumerate(served) if item.startswith("r"))
    assert 0 < first_real < rules.exam_length() and all(item.startswith("g") for item in served[:first_real])


def test_a_ban_takes_back_the_labels_the_banned_annotators_settled(service) -> None:
    """Two members of a ring agree on a wrong label: the items are accepted on their word. Gold
    then shows them wrong and bans them; their answers no longer count, and the labels they settled
    go back to the crowd (before, the items stayed accepted on a banned ring's answers)."""
    from crowdloop.service.answer_import import AnswerIn

    rules = SkillRules(min_gold=5, ban_below=0.6)
    policy = ConsensusPolicy(target=0.9, min_overlap=1, max_overlap=3)
    project = service.create_project(name(), LabelSpace(["x", "y", "z"]), policy, rules=rules, gold_rate=1.0)
    service.import_items(project.id, [ItemIn(f"r{i}", {"i": i}) for i in range(4)])
    ring = [service.add_annotator(project.id, f"ring{k}")[0] for k in range(2)]
    service.import_answers(project.id, [AnswerIn(f"r{i}", a.name, "z") for i in range(4) for a in ring])
    assert {service.item_state(project.id, f"r{i}").status for i in range(4)} == {"accepted"}
    gold = [ItemIn(f"g{i}", {"i": i}, gold="x") for i in range(12)]
    service.import_items(project.id, gold + [ItemIn(f"o{i}", {"i": i}) for i in range(20)])  # gold hides among them
    for member in ring:
        status = "active"
        while status == "active":
            task = service.next_task(member)
            status = service.submit(member, task.lease_id, "z", duration_ms=5000).annotator_status
        assert status == "banned"
    states = [service.item_state(project.id, f"r{i}") for i in range(4)]
    assert {s.status for s in states} == {"more"} and all(s.label is None for s in states)
    reopened = [e for e in service.events(project.id) if e["kind"] == "more" and e["detail"]["from"] == "accepted"]
    assert len(reopened) == 4


def test_gold_rate_and_gold_looks_like_any_task(service) -> None:
    project = service.create_project(name(), LabelSpace(["x", "y"]), ConsensusPolicy(max_overlap=1), gold_rate=0.3)
    service.import_items(project.id, [ItemIn(f"r{i}", {"title": f"t{i}"}) for i in range(150)])
    service.import_items(project.id, [ItemIn(f"g{i}", {"title": f"t{i}"}, gold="x", hint="it is x") for i in range(80)])
    worker, _ = service.add_annotator(project.id, "w")
    served = []
    for _ in range(100):
        task = service.next_task(worker)
        assert set(vars(task)) == {"lease_id", "item", "payload", "suggestions", "expires_at"}
        assert set(task.payload) == {"title"}
        served.append(task.item.startswith("g"))
        service.submit(worker, task.lease_id, "x", duration_ms=3000)
    assert 0.18 <= np.mean(served) <= 0.42
    assert len({t for t in served}) == 2
    assert TaskOut.__dataclass_fields__.keys() == {"lease_id", "item", "payload", "suggestions", "expires_at"}


def test_bad_labels_and_bad_items_are_refused(service) -> None:
    project = service.create_project(name(), TAXONOMY, ConsensusPolicy(), gold_rate=0)
    service.import_items(project.id, [ItemIn("a", {}), ItemIn("b", {})])
    worker, _ = service.add_annotator(project.id, "w")
    task = service.next_task(worker)
    with pytest.raises(UnknownLabelError, match="Kitchen"):
        service.submit(worker, task.lease_id, "Kitchen > Pots")
    assert service.item_state(project.id, task.item).answers == 0  # nothing stored
    assert service.submit(worker, task.lease_id, "Audio").label == "Audio"  # an inner node is a label
    with pytest.raises(InputError, match=r"item 'a' is already in the project") as error:
        service.import_items(project.id, [ItemIn("c", {}), ItemIn("a", {})], batch_size=1)
    assert error.value.rows == [2]  # the batch before it ("c") stays stored
    with pytest.raises(InputError, match="appears twice") as error:
        service.import_items(project.id, [ItemIn("d", {}), ItemIn("d", {})])
    assert error.value.rows == [1, 2]
    with pytest.raises(UnknownLabelError) as error:
        service.import_items(project.id, [ItemIn("e", {}), ItemIn("f", {}, gold="Garden")])
    assert error.value.rows == [2] and error.value.field == "gold"
    with pytest.raises(InputError, match="sum to"):
        service.import_items(project.id, [ItemIn("g", {}, predictions={"Audio": 0.8, "Home": 0.7})], model=("m", "1"))
    with pytest.raises(InputError, match="payload"):
        service.import_items(project.id, [ItemIn("h", {"x": float("nan")})])
    with pytest.raises(InputError, match="unknown item"):
        service.add_gold(project.id, [GoldIn("zzz", "Audio")])
    assert service.progress(project.id).items == 3


def test_auth_tokens_are_hashed_and_revocable(service) -> None:
    project = service.create_project(name(), LabelSpace(["x", "y"]), ConsensusPolicy(), gold_rate=0)
    worker, token = service.add_annotator(project.id, "w")
    assert service.authenticate(token).id == worker.id
    with pytest.raises(AuthError):
        service.authenticate(token[:-2] + "xx")
    with pytest.raises(AuthError):
        service.authenticate("")
    with service._sessions() as session:  # only the SHA-256 of the secret is stored
        digests = session.scalars(select(ApiToken.digest).where(ApiToken.annotator_id == worker.id)).all()
    assert token not in digests and len(digests[0]) == 64
    second = service.new_token(worker.id)
    assert service.revoke_tokens(worker.id) == 2
    for t in (token, second):
        with pytest.raises(AuthError):
            service.authenticate(t)
    with pytest.raises(ConflictError):
        service.add_annotator(project.id, "w")


def test_review_needs_a_reviewer_and_is_final(service) -> None:
    policy = ConsensusPolicy(target=0.95, max_overlap=2)
    project = service.create_project(name(), LabelSpace(["x", "y"]), policy, gold_rate=0, reviewers_see_gold=True)
    service.import_items(project.id, [ItemIn("a", {}), ItemIn("g", {}, gold="x")])
    worker, _ = service.add_annotator(project.id, "w")
    reviewer, _ = service.add_annotator(project.id, "r", role="reviewer")
    with pytest.raises(ForbiddenError):
        service.review(worker, project.id, "a", "x")
    with pytest.raises(ForbiddenError, match="reviewer"):
        service.next_task(reviewer)  # a reviewer who may read gold takes no tasks
    with pytest.raises(ConflictError, match="gold"):
        service.review(reviewer, project.id, "g", "x")
    with pytest.raises(NotFoundError):
        service.review(reviewer, project.id, "nope", "x")
    state = service.review(reviewer, project.id, "a", "y")
    assert state.status == "reviewed" and state.label == "y"
    assert service.next_task(worker) is None  # a reviewed item needs nothing more
    # without reviewers_see_gold a reviewer finds only the items up for review (gold looks like the rest)
    service.update_project(project.id, reviewers_see_gold=False)
    service.import_items(project.id, [ItemIn("b", {})])
    for item in ("g", "b"):
        with pytest.raises(NotFoundError, match=f"no item '{item}'"):
            service.review(reviewer, project.id, item, "x")
        with pytest.raises(NotFoundError, match=f"no item '{item}'"):
            service.item_state(project.id, item, viewer=reviewer)
    assert service.item_state(project.id, "a", viewer=reviewer).status == "reviewed"
    owner, _ = service.add_annotator(project.id, "o", role="owner")
    assert service.review(owner, project.id, "b", "x").status == "reviewed"  # owners review anything


def test_the_model_votes_and_suggests(service) -> None:
    policy = ConsensusPolicy(target=0.9, min_overlap=1, max_overlap=3)
    project = service.create_project(
        name(), LabelSpace(["cat", "dog", "cow"]), policy, gold_rate=0, suggestions=2, hide_rate=0
    )
    service.import_items(
        project.id,
        [ItemIn("with-model", {}, predictions={"cat": 0.95, "dog": 0.04})],
        model=("tfidf", "1"),
    )
    service.import_items(project.id, [ItemIn("alone", {})])
    worker, _ = service.add_annotator(project.id, "w")
    seen = {}
    for _ in range(2):
        task = service.next_task(worker)
        seen[task.item] = task
        service.submit(worker, task.lease_id, "cat", duration_ms=3000)
    assert [s.label for s in seen["with-model"].suggestions] == ["cat", "dog"]
    assert seen["alone"].suggestions == []
    assert service.item_state(project.id, "with-model").status == "accepted"  # one human + a sure model
    assert service.item_state(project.id, "alone").status == "more"
    versions = service.model_versions(project.id)
    assert [(v.name, v.version, v.predictions) for v in versions] == [("tfidf", "1", 1)]
    service.add_model_predictions(project.id, "tfidf", "2", {"alone": {"dog": 0.99}})
    # the newest version votes: a model sure at 0.99 outweighs one human of typical skill (0.7)
    assert service.item_state(project.id, "alone").label == "dog"


def test_models_can_label_alone_when_the_policy_allows(service) -> None:
    policy = ConsensusPolicy(target=0.9, min_overlap=0, max_overlap=3)
    project = service.create_project(name(), LabelSpace(["cat", "dog"]), policy, gold_rate=0)
    service.import_items(project.id, [ItemIn(f"i{i}", {}) for i in range(4)])
    service.add_model_predictions(
        project.id, "m", "1", {"i0": {"cat": 0.99, "dog": 0.01}, "i1": {"cat": 0.6, "dog": 0.4}}
    )
    progress = service.progress(project.id)
    assert progress.status_counts["accepted"] == 1 and progress.automation_rate == 1.0
    assert service.item_state(project.id, "i0").label == "cat"


def test_unknown_things_are_not_found(service) -> None:
    with pytest.raises(NotFoundError):
        service.get_project(10_000)
    with pytest.raises(NotFoundError):
        service.get_project("no such project")
    project = service.create_project(name(), LabelSpace(["x", "y"]), ConsensusPolicy(), gold_rate=0)
    worker, _ = service.add_annotator(project.id, "w")
    with pytest.raises(NotFoundError):
        service.submit(worker, "0" * 32, "x")
    with pytest.raises(NotFoundError):
        service.item_state(project.id, "missing")
    with pytest.raises(ConflictError):
        service.create_project(project.name, LabelSpace(["x"]), ConsensusPolicy())


def test_a_lease_past_its_expiry_is_refused(service, clock: Clock) -> None:
    """A submit after the lease's expiry answers ConflictError even when nobody reclaimed it yet,
    and the item goes back to the pool at once."""
    project = service.create_project(name(), LabelSpace(["x", "y"]), ConsensusPolicy(max_overlap=2), gold_rate=0,
                                     lease_seconds=5)  # fmt: skip
    service.import_items(project.id, [ItemIn("only", {})])
    worker, _ = service.add_annotator(project.id, "w")
    task = service.next_task(worker)
    clock.advance(6.5)
    with pytest.raises(ConflictError, match="expired"):
        service.submit(worker, task.lease_id, "x")
    assert service.item_state(project.id, "only").open_leases == 0
    with pytest.raises(ConflictError, match="expired"):  # and stays refused
        service.submit(worker, task.lease_id, "x")
    again = service.next_task(worker)
    assert again is not None and again.lease_id != task.lease_id
    assert not service.submit(worker, again.lease_id, "x").duplicate


def test_an_item_answered_meanwhile_frees_the_lease(service) -> None:
    """The owner imports the annotator's answer to the item they hold: the submit answers
    ConflictError (not a database error), the lease is released, and ``next`` moves on."""
    from crowdloop.service.answer_import import AnswerIn

    project = service.create_project(name(), LabelSpace(["x", "y"]), ConsensusPolicy(max_overlap=3), gold_rate=0)
    service.import_items(project.id, [ItemIn("a", {}), ItemIn("b", {})])
    worker, _ = service.add_annotator(project.id, "w")
    held = service.next_task(worker)
    service.import_answers(project.id, [AnswerIn(held.item, "w", "y")])
    with pytest.raises(ConflictError, match="answered"):
        service.submit(worker, held.lease_id, "x")
    assert service.item_state(project.id, held.item).open_leases == 0
    nxt = service.next_task(worker)
    assert nxt is not None and nxt.lease_id != held.lease_id and nxt.item != held.item
    # held again before the submit: next() itself lets the stuck lease go
    other = "a" if nxt.item == "b" else "b"
    assert other == held.item
    service.import_answers(project.id, [AnswerIn(nxt.item, "w", "x")])
    assert service.next_task(worker) is None
    assert service.item_state(project.id, nxt.item).open_leases == 0


def test_no_gold_once_the_real_work_is_done(service) -> None:
    """Gold is only handed out beside real work: once nothing but gold is left for an annotator,
    ``next`` answers None every time (a gold task after a None would mark it as gold)."""
    project = service.create_project(name(), LabelSpace(["x", "y"]), ConsensusPolicy(max_overlap=1), gold_rate=0.5)
    service.import_items(project.id, [ItemIn(f"r{i}", {}) for i in range(3)])
    service.import_items(project.id, [ItemIn(f"g{i}", {}, gold="x") for i in range(60)])
    worker, _ = service.add_annotator(project.id, "w")
    while (task := service.next_task(worker)) is not None:
        service.submit(worker, task.lease_id, "x")
    assert [service.next_task(worker) for _ in range(20)] == [None] * 20


def test_a_new_crowd_is_asked_again_not_escalated_after_one_answer(service) -> None:
    """Every default (stated prior 0.7, target 0.97, an expert at 10) and two labels: before any
    refit the crowd's accuracy is only the prior, so a first answer leads to a second one (whose
    agreement is what shows the crowd's accuracy), not to the expert."""
    project = service.create_project(name(), LabelSpace(["cat", "dog"]), gold_rate=0)
    service.import_items(project.id, [ItemIn(f"i{k}", {}) for k in range(4)])
    worker, _ = service.add_annotator(project.id, "w")
    task = service.next_task(worker)
    service.submit(worker, task.lease_id, "cat", duration_ms=4000)
    assert service.item_state(project.id, task.item).status == "more"
