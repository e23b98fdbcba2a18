"""Changing a project's settings after creation, on SQLite and PostgreSQL: the next task and the next
decision follow the new settings in every process sharing the database, open items are decided
again, bad values are refused with nothing changed, and every change is in the event log."""

from __future__ import annotations

import itertools
import re
import threading

import pytest

from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.errors import ConfigError, ConflictError, NotFoundError
from crowdloop.labels import LabelSpace
from crowdloop.service import ItemIn, open_service
from crowdloop.service import projects as service_projects

LABELS = LabelSpace(["cat", "dog", "bird"])
_names = itertools.count()


@pytest.fixture(scope="module")
def service(database_url: str):
    svc = open_service(database_url, seed=3)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def other_process(database_url: str):
    """A second service on the same database: what another server process sees."""
    svc = open_service(database_url, seed=4)
    yield svc
    svc.close()


def project(service, policy: ConsensusPolicy, n_items: int = 6, **settings):
    info = service.create_project(f"settings-{next(_names)}", LABELS, policy, **settings)
    service.import_items(info.id, [ItemIn(f"i{k}", {"text": f"item {k}"}) for k in range(n_items)])
    return info


def annotators(service, project_id: int, n: int) -> list:
    return [service.add_annotator(project_id, f"a{k}")[0] for k in range(n)]


def answer_all(service, annotator, label: str = "cat") -> int:
    """The annotator answers every task they get; returns how many."""
    answered = 0
    while (task := service.next_task(annotator)) is not None:
        service.submit(annotator, task.lease_id, label)
        answered += 1
    return answered


def statuses(service, project_id: int) -> dict[str, str]:
    return {r.item: r.status for r in service.results(project_id)}


def test_a_new_gold_rate_applies_to_the_next_task(service, other_process) -> None:
    info = service.create_project(f"settings-{next(_names)}", LABELS, ConsensusPolicy(), gold_rate=0.0)
    service.import_items(info.id, [ItemIn(f"i{k}", {}) for k in range(20)])
    service.import_items(info.id, [ItemIn(f"g{k}", {}, gold="cat") for k in range(20)])
    first, second = annotators(service, info.id, 2)
    for _ in range(5):  # the other process leases (and caches the project) before the change
        task = other_process.next_task(first)
        assert not other_process.item_state(info.id, task.item).is_gold
        other_process.skip(first, task.lease_id)
    update = service.update_project(info.id, gold_rate=1.0)
    assert update.changed == {"gold_rate": {"from": 0.0, "to": 1.0}}
    assert update.project.gold_rate == 1.0 and update.redecided == 0 and update.left_to_refit == 0
    for svc in (service, other_process):
        task = svc.next_task(second)
        assert svc.item_state(info.id, task.item).is_gold
        svc.skip(second, task.lease_id)
    assert other_process.get_project(info.id).gold_rate == 1.0


def test_a_larger_max_overlap_sends_escalated_items_back_for_answers(service, other_process) -> None:
    info = project(service, ConsensusPolicy(target=0.97, max_overlap=1, escalate_early=False), gold_rate=0)
    first, second, third = annotators(service, info.id, 3)
    assert answer_all(service, first) == 6
    assert set(statuses(service, info.id).values()) == {"escalated"}
    assert other_process.next_task(second) is None  # the other process caches the old policy now

    update = service.update_project(info.id, policy={"max_overlap": 3})
    assert update.changed["policy"]["from"]["max_overlap"] == 1
    assert update.changed["policy"]["to"]["max_overlap"] == 3
    assert update.redecided == 6 and update.left_to_refit == 0
    assert set(statuses(service, info.id).values()) == {"more"}
    assert other_process.get_project(info.id).policy.max_overlap == 3
    # the other process hands out the items again and decides them under the new policy
    assert answer_all(other_process, second, "dog") == 6
    assert answer_all(other_process, third, "dog") == 6
    assert all(r.answers == 3 for r in other_process.results(info.id))
    reasons = [e["detail"]["reason"] for e in other_process.events(info.id) if e["kind"] == "escalated"]
    assert any("max overlap 3" in reason for reason in reasons)


def test_a_lower_target_accepts_open_items_and_a_higher_one_keeps_accepted_items(service, other_process) -> None:
    info = project(service, ConsensusPolicy(target=0.98, max_overlap=5), gold_rate=0)
    for annotator in annotators(service, info.id, 2):
        assert answer_all(service, annotator) == 6
    before = statuses(service, info.id)
    assert set(before.values()) == {"more"}
    other_process.get_project(info.id)  # cached there with the old target

    lowered = service.update_project(info.id, policy={"target": 0.6})
    assert lowered.redecided == 6
    after = statuses(other_process, info.id)
    assert set(after.values()) == {"accepted"}  # two agreeing answers reach 0.6

    raised = service.update_project(info.id, policy={"target": 0.99})
    assert raised.changed["policy"]["to"]["target"] == 0.99
    assert statuses(other_process, info.id) == after  # accepted items stay accepted
    assert other_process.get_project(info.id).policy.target == 0.99


def test_a_new_prior_accuracy_decides_open_and_new_items_in_every_process(service, other_process) -> None:
    policy = ConsensusPolicy(target=0.9, max_overlap=5, escalate_early=False, prior_accuracy=0.6)
    info = project(service, policy, gold_rate=0)
    (first,) = annotators(service, info.id, 1)
    assert answer_all(service, first) == 6
    assert set(statuses(other_process, info.id).values()) == {"more"}  # one answer of 0.6 is not enough
    other_process.import_items(info.id, [ItemIn("late", {})])  # the other process caches the old policy

    update = service.update_project(info.id, policy={"prior_accuracy": 0.95})
    assert update.changed["policy"]["from"]["prior_accuracy"] == 0.6
    assert update.changed["policy"]["to"]["prior_accuracy"] == 0.95
    assert update.redecided == 7
    assert set(statuses(other_process, info.id).values()) == {"accepted", "more"}
    assert statuses(other_process, info.id)["late"] == "more"  # no answer yet
    second = other_process.add_annotator(info.id, "second")[0]
    assert answer_all(other_process, second) == 1  # the new item, decided there under the new prior
    assert set(statuses(other_process, info.id).values()) == {"accepted"}


def test_too_many_items_are_left_to_the_refit(service, monkeypatch) -> None:
    info = project(service, ConsensusPolicy(target=0.97, max_overlap=1, escalate_early=False), gold_rate=0)
    (first,) = annotators(service, info.id, 1)
    answer_all(service, first)
    monkeypatch.setattr(service_projects, "REDECIDE_IN_CALL", 5)  # six items: more than one call decides
    update = service.update_project(info.id, policy={"max_overlap": 2})
    assert update.redecided == 0 and update.left_to_refit == 6
    assert set(statuses(service, info.id).values()) == {"escalated"}  # still as decided before
    assert service.refit(info.id).items_redecided == 6
    assert set(statuses(service, info.id).values()) == {"more"}


def test_every_change_is_an_event_and_bumps_the_version(service, other_process) -> None:
    info = project(service, ConsensusPolicy(), gold_rate=0.1)
    service.update_project(info.id, lease_seconds=60, suggestions=0, name=f"renamed-{info.id}")
    service.update_project(info.id, rules={"prior_mean": 0.8}, model_votes=False)
    same = service.update_project(info.id, lease_seconds=60, labels=LABELS)  # nothing changes
    assert same.changed == {}
    events = [e for e in service.events(info.id) if e["kind"] == "settings"]
    assert [e["detail"]["settings_version"] for e in events] == [2, 1]
    newest, oldest = events[0]["detail"], events[1]["detail"]
    assert oldest["lease_seconds"] == {"from": 600, "to": 60}
    assert oldest["suggestions"] == {"from": 3, "to": 0}
    assert oldest["name"] == {"from": info.name, "to": f"renamed-{info.id}"}
    assert newest["model_votes"] == {"from": True, "to": False}
    assert newest["rules"]["from"]["prior_mean"] == 0.7 and newest["rules"]["to"]["prior_mean"] == 0.8
    seen = other_process.get_project(f"renamed-{info.id}")
    assert (seen.lease_seconds, seen.suggestions, seen.model_votes) == (60, 0, False)
    assert seen.rules == SkillRules(prior_mean=0.8)


def test_concurrent_changes_of_different_fields_are_both_kept(service, other_process) -> None:
    info = project(service, ConsensusPolicy(), gold_rate=0.1)
    changes = [(service, {"target": 0.9}), (other_process, {"max_overlap": 7}), (service, {"prices": {"crowd": 2.5}})]
    errors: list[BaseException] = []

    def change(svc, policy) -> None:
        try:
            svc.update_project(info.id, policy=policy)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=change, args=c) for c in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    policy = other_process.get_project(info.id).policy
    assert (policy.target, policy.max_overlap, policy.prices.crowd, policy.prices.expert) == (0.9, 7, 2.5, 10.0)
    versions = sorted(e["detail"]["settings_version"] for e in service.events(info.id) if e["kind"] == "settings")
    assert versions == [1, 2, 3]


@pytest.fixture(scope="module")
def refused(service):
    return project(service, ConsensusPolicy(), gold_rate=0.1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gold_rate": 1.5}, "gold_rate must be in"),
        ({"gold_rate": True}, "gold_rate must be in"),
        ({"lease_seconds": 0}, "lease_seconds must be an integer"),
        ({"lease_seconds": 1.5}, "lease_seconds must be an integer"),
        ({"model_votes": "yes"}, "model_votes must be True or False"),
        ({"suggestions": 21}, "suggestions must be an integer"),
        ({"policy": "strict"}, "policy must be a ConsensusPolicy"),
        ({"policy": {"target": 1.2}}, "target must be in"),
        ({"policy": {"min_overlap": 9}}, "max_overlap must be an integer >= max(min_overlap, 1)"),
        ({"policy": {"quorum": 3}}, "policy has no field 'quorum'"),
        ({"policy": {"prices": {"crowd": -1}}}, "price of a crowd answer must be in [0, "),
        ({"policy": {"prices": 5}}, "prices must be a Prices, got int"),
        ({"policy": {"prior_accuracy": 1.0}}, "prior_accuracy must be in (0, 1), got 1.0"),
        ({"policy": {"label_value": 0}}, "label_value must be in (0, "),
        ({"rules": {"prior_mean": 2}}, "prior_mean must be in"),
        ({"rules": SkillRules}, "rules must be SkillRules"),
        ({"name": " "}, "project name must not be empty"),
        ({"name": "x" * 201}, "project name must be at most 200 characters"),
        ({"name": "a\x00b"}, "project name contains a NUL character"),
        ({"labels": LabelSpace(["cat", "dog"])}, "label space of project"),
    ],
)
def test_bad_settings_are_refused_and_nothing_changes(service, refused, change, message) -> None:
    before = service.get_project(refused.id)
    events = service.events(refused.id)
    with pytest.raises(ConfigError, match=re.escape(message)):
        service.update_project(refused.id, **change)
    assert service.get_project(refused.id) == before
    assert service.events(refused.id) == events


def test_a_taken_name_and_an_unknown_project(service) -> None:
    first = project(service, ConsensusPolicy())
    second = project(service, ConsensusPolicy())
    with pytest.raises(ConflictError, match="exists already"):
        service.update_project(second.id, name=first.name)
    assert service.get_project(second.id).name == second.name
    with pytest.raises(NotFoundError):
        service.update_project(10**6, gold_rate=0.5)
