"""Text the service stores, on SQLite and PostgreSQL (which refuses NUL characters): a NUL, a lone
surrogate or an over-long text in any name, label, id, hint or payload, or a payload nested too
deep for a response, gives an error naming the row and field, and the database keeps what it had
(the whole batch is refused)."""

from __future__ import annotations

import itertools
import json

import pytest

from crowdloop.consensus import ConsensusPolicy
from crowdloop.errors import AuthError, ConfigError, InputError, NotFoundError, UnknownLabelError
from crowdloop.io.items import parse_items
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service import GoldIn, ItemIn, open_service

LABELS = LabelSpace(["cat", "dog"])
_names = itertools.count()


@pytest.fixture(scope="module")
def service(database_url: str):
    svc = open_service(database_url, seed=0)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def project(service):
    info = service.create_project("text", LABELS, ConsensusPolicy(), gold_rate=0)
    service.import_items(info.id, [ItemIn("kept", {"title": "stored before"}, gold="cat", hint="a cat")])
    return info


def stored(service, project_id: int) -> tuple:
    """Everything a refused call must leave as it was."""
    return (
        [(r.item, r.status, r.label) for r in service.results(project_id)],
        [(a.name, a.role) for a in service.annotator_skills(project_id)],
        [(p.id, p.name) for p in service.list_projects()],
        service.item_state(project_id, "kept"),
        len(service.events(project_id, limit=10_000)),
    )


def nested(depth: int) -> list:
    """Lists ``depth`` deep, built without recursion (deeper than Python's JSON reader goes)."""
    outer = inner = []
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    return outer


@pytest.mark.parametrize(
    ("item", "field", "problem"),
    [
        (ItemIn("a\x00b", {}), "external_id", "external id contains a NUL character"),
        (ItemIn("x" * 501, {}), "external_id", "external id must be at most 500 characters"),
        (ItemIn(" ", {}), "external_id", "external id must not be empty"),
        (ItemIn("new", {"title": "a\x00b"}), "payload", "payload.title contains a NUL character"),
        (ItemIn("new", {"tags": ["ok", {"deep": "\x00"}]}), "payload", "payload.tags[1].deep contains a NUL"),
        (ItemIn("new", {"ti\x00tle": "x"}), "payload", "a key of payload contains a NUL character"),
        (ItemIn("new", {}, gold="cat", hint="\x00"), "hint", "hint contains a NUL character"),
        (ItemIn("new", {}, gold="cat", hint="h" * 5001), "hint", "hint must be at most 5000 characters"),
        (ItemIn("new", {}, gold="cat", hint=7), "hint", "hint must be text, got int"),
        (ItemIn("new", {"title": "ok \udfff"}), "payload", "payload.title contains a lone surrogate at character 3"),
        (ItemIn("new", {"\ud800": 1}), "payload", "a key of payload contains a lone surrogate"),
        (ItemIn("\udfff", {}), "external_id", "external id contains a lone surrogate"),
        (ItemIn("new", {}, gold="cat", hint="\ud800"), "hint", "hint contains a lone surrogate"),
        (ItemIn("new", {"d": json.loads("[" * 255 + "]" * 255)}), "payload", "is nested more than 64 levels deep"),
        (ItemIn("new", {"d": nested(5000)}), "payload", "is nested more than 64 levels deep"),
    ],
)
def test_a_bad_item_names_its_row_and_field_and_nothing_of_the_batch_is_stored(service, project, item, field, problem):
    before = stored(service, project.id)
    batch = [ItemIn("first-good", {"t": 1}), ItemIn("second-good", {"t": 2}), item]
    with pytest.raises(InputError) as error:
        service.import_items(project.id, batch)
    assert error.value.rows == [3] and error.value.field == field
    assert problem in str(error.value) and "item 3" in str(error.value)
    assert stored(service, project.id) == before


def test_an_item_file_with_an_escaped_nul_is_refused_by_the_service(service, project):
    """A JSON file cannot hold a raw NUL but can escape one (\\u0000): the reader passes it on."""
    content = '{"id": "f1", "data": {"t": "fine"}}\n{"id": "f2", "data": {"t": "bad \\u0000"}}\n'
    items = parse_items(content, "jsonl", source="items.jsonl")
    before = stored(service, project.id)
    with pytest.raises(InputError, match=r"item 2, field 'payload': payload.t contains a NUL"):
        service.import_items(project.id, [ItemIn(i.external_id, i.payload, i.gold, i.hint) for i in items])
    assert stored(service, project.id) == before


@pytest.mark.parametrize(
    ("gold", "field", "problem"),
    [
        (GoldIn("ke\x00pt", "cat"), "item", "item contains a NUL character"),
        (GoldIn("kept", "cat", hint="a\x00"), "hint", "hint contains a NUL character"),
        (GoldIn("kept", "cat", hint="h" * 5001), "hint", "hint must be at most 5000"),
        (GoldIn("kept", "c\x00at"), "gold", "is not in the label space"),
    ],
)
def test_bad_gold_names_its_row_and_changes_nothing(service, project, gold, field, problem):
    before = stored(service, project.id)
    with pytest.raises(InputError) as error:
        service.add_gold(project.id, [GoldIn("kept", "dog"), gold])
    assert error.value.rows == [2] and error.value.field == field and problem in str(error.value)
    assert stored(service, project.id) == before


def test_bad_prediction_ids_are_refused_before_the_database(service, project):
    before = stored(service, project.id)
    with pytest.raises(InputError) as error:
        service.add_model_predictions(project.id, "m", "1", {"kept": {"cat": 0.9}, "x\x00": {"dog": 0.8}})
    assert error.value.rows == [2] and "item contains a NUL character" in str(error.value)
    with pytest.raises(ConfigError, match="model name contains a NUL"):
        service.add_model_predictions(project.id, "m\x00", "1", {"kept": {"cat": 0.9}})
    after = stored(service, project.id)
    assert after == before


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (LabelSpace(["cat", "d\x00g"]), "label 2 contains a NUL character"),
        (LabelSpace(["cat", "d" * 1001]), "label 2 must be at most 1000 characters"),
        (Taxonomy.from_paths(["Animals > C\x00at", "Animals > Dog"]), "contains a NUL character"),
        (Taxonomy([("A",), ("A", "B")], ids=["1", "2\x00"]), "taxonomy id 2 contains a NUL character"),
        (LabelSpace(["cat", 2.5]), "label 2 is 2.5"),
    ],
)
def test_project_labels_are_checked_before_anything_is_stored(service, project, labels, problem):
    before = stored(service, project.id)
    with pytest.raises(ConfigError, match=problem):
        service.create_project(f"labels-{next(_names)}", labels)
    assert stored(service, project.id) == before


@pytest.mark.parametrize("name", ["a\x00b", "x" * 201, "  "])
def test_bad_project_and_annotator_names(service, project, name):
    before = stored(service, project.id)
    with pytest.raises(ConfigError, match="project name"):
        service.create_project(name, LABELS)
    with pytest.raises(ConfigError, match="project name"):
        service.update_project(project.id, name=name)
    with pytest.raises(ConfigError, match="annotator name"):
        service.add_annotator(project.id, name)
    assert stored(service, project.id) == before


def test_lookups_with_a_nul_find_nothing_and_answers_with_one_are_unknown_labels(service, project):
    with pytest.raises(NotFoundError):
        service.get_project("te\x00xt")
    with pytest.raises(NotFoundError):
        service.item_state(project.id, "ke\x00pt")
    with pytest.raises(AuthError):
        service.authenticate("cl_" + "\x00" * 40)
    annotator, _ = service.add_annotator(project.id, f"worker-{next(_names)}")
    service.update_project(project.id, gold_rate=1.0)
    service.import_items(project.id, [ItemIn(f"real-{next(_names)}", {})])  # gold goes only beside real work
    task = service.next_task(annotator)
    before = stored(service, project.id)
    with pytest.raises(UnknownLabelError):
        service.submit(annotator, task.lease_id, "c\x00at")
    assert stored(service, project.id) == before
    assert service.submit(annotator, task.lease_id, "cat").label == "cat"


def test_lease_ids_idempotency_keys_and_reviewed_ids_with_nul_are_refused_before_the_database(service):
    info = service.create_project(f"loop-text-{next(_names)}", LABELS, ConsensusPolicy(), gold_rate=0)
    service.import_items(info.id, [ItemIn("open", {"title": "x"})])
    worker, _ = service.add_annotator(info.id, "worker")
    task = service.next_task(worker)
    for bad in ("lease\x00", "", "x" * 33):
        with pytest.raises(NotFoundError, match="no lease"):
            service.submit(worker, bad, "cat")
        with pytest.raises(NotFoundError, match="no lease"):
            service.skip(worker, bad)
    with pytest.raises(InputError, match="idempotency key contains a NUL"):
        service.submit(worker, task.lease_id, "cat", idempotency_key="k\x00")
    owner, _ = service.add_annotator(info.id, "owner", role="owner")
    with pytest.raises(NotFoundError, match="no item"):
        service.review(owner, info.id, "open\x00", "cat")
    assert service.submit(worker, task.lease_id, "cat").label == "cat"  # the lease survived every refusal
