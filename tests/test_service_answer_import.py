"""Answers imported from before, and the Label Studio round trip, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import event

from crowdloop.consensus import ConsensusPolicy, SkillRules
from crowdloop.errors import InputError, UnknownLabelError
from crowdloop.io.exports import stream_label_studio
from crowdloop.io.items import Annotation, Prediction, parse_items
from crowdloop.labels import LabelSpace, Taxonomy
from crowdloop.service import ItemIn, open_service
from crowdloop.service.answer_import import AnswerIn

LABELS = LabelSpace(["cat", "dog", "bird"])
POLICY = ConsensusPolicy(target=0.8, min_overlap=2, max_overlap=5)
_names = itertools.count()


@pytest.fixture(scope="module")
def service(database_url: str):
    svc = open_service(database_url, seed=3)
    yield svc
    svc.close()


def project(service, labels=LABELS, **kwargs):
    return service.create_project(f"imports-{next(_names)}", labels, POLICY, gold_rate=0.0, **kwargs)


def test_agreeing_answers_accept_items_and_create_annotators(service) -> None:
    p = project(service)
    service.import_items(p.id, [ItemIn(f"i{k}", {"text": f"item {k}"}) for k in range(6)])
    rows = [AnswerIn(f"i{k}", name, "dog") for k in range(6) for name in ("ann", "bob", "cy")]
    report = service.import_answers(p.id, rows, batch_size=5)
    assert report.stored == 18 and report.duplicates == []
    assert report.annotators_created == ["ann", "bob", "cy"] and report.items_changed == 6
    results = list(service.results(p.id))
    assert {r.status for r in results} == {"accepted"} and {r.label for r in results} == {"dog"}
    assert all(r.answers == 3 for r in results)
    people = {a.name: a for a in service.annotator_skills(p.id)}
    assert people["ann"].answers == 6 and people["ann"].kind == "human" and people["ann"].role == "annotator"
    frame = service.answers_frame(p.id)
    assert len(frame) == 18 and set(frame["worker"]) == {"ann", "bob", "cy"}


def test_a_second_answer_of_an_annotator_is_reported_not_stored(service) -> None:
    p = project(service)
    service.import_items(p.id, [ItemIn("a", {}), ItemIn("b", {})])
    first = service.import_answers(p.id, [AnswerIn("a", "ann", "cat"), AnswerIn("a", "ann", "dog")])
    assert first.stored == 1 and first.duplicates == [2]
    again = service.import_answers(p.id, [AnswerIn("b", "ann", "cat"), AnswerIn("a", "ann", "bird")])
    assert again.stored == 1 and again.duplicates == [2] and again.annotators_created == []
    frame = service.answers_frame(p.id)
    assert sorted(zip(frame["task"], frame["label"], strict=True)) == [("a", "cat"), ("b", "cat")]


@pytest.mark.parametrize(
    ("rows", "error", "message"),
    [
        (
            [AnswerIn("a", "ann", "cat"), AnswerIn("a", "bob", "cow")],
            UnknownLabelError,
            "answers, row 2, field 'label': label 'cow' is not in the label space",
        ),
        ([AnswerIn("a", "ann", "cat"), AnswerIn("zz", "bob", "cat")], InputError, "row 2, field 'item': answer to "),
        ([AnswerIn("a", " ", "cat")], InputError, "row 1, field 'annotator': annotator must not be empty"),
        ([AnswerIn("a", "an\x00n", "cat")], InputError, "row 1, field 'annotator': annotator contains a NUL"),
        ([AnswerIn("", "ann", "cat")], InputError, "row 1, field 'item': item must not be empty"),
        ([AnswerIn("a" * 501, "ann", "cat")], InputError, "row 1, field 'item': item must be at most 500"),
        ([AnswerIn("a", "ann", None)], InputError, "row 1, field 'label': label None is not a label"),
    ],
)
def test_bad_rows_are_named_and_nothing_of_the_batch_is_stored(service, rows, error, message) -> None:
    p = project(service)
    service.import_items(p.id, [ItemIn("a", {})])
    with pytest.raises(error) as info:
        service.import_answers(p.id, rows)
    assert message in str(info.value)
    assert service.answers_frame(p.id).empty and service.annotator_skills(p.id) == []


def test_an_error_keeps_the_batches_before_it(service) -> None:
    p = project(service)
    service.import_items(p.id, [ItemIn("a", {}), ItemIn("b", {})])
    rows = [AnswerIn("a", "ann", "cat"), AnswerIn("b", "ann", "cat"), AnswerIn("c", "ann", "cat")]
    with pytest.raises(InputError, match="row 3, field 'item'"):
        service.import_answers(p.id, rows, batch_size=2)
    assert len(service.answers_frame(p.id)) == 2


def test_gold_answers_update_skill_and_can_ban(service) -> None:
    p = project(service, rules=SkillRules(min_gold=4, ban_below=0.6))
    service.import_items(p.id, [ItemIn(f"g{k}", {}, gold="cat") for k in range(8)] + [ItemIn("x", {})])
    rows = [AnswerIn(f"g{k}", "good", "cat") for k in range(8)] + [AnswerIn(f"g{k}", "bad", "dog") for k in range(8)]
    service.import_answers(p.id, rows)
    people = {a.name: a for a in service.annotator_skills(p.id)}
    assert (people["good"].gold_right, people["good"].gold_total) == (8, 8)
    assert (people["bad"].gold_right, people["bad"].gold_total) == (0, 8)
    assert people["bad"].status == "banned" and people["good"].status == "active"
    assert people["good"].skill > people["bad"].skill


def test_reviews_settle_their_items(service) -> None:
    p = project(service)
    service.import_items(p.id, [ItemIn("a", {}), ItemIn("g", {}, gold="cat")])
    report = service.import_answers(p.id, [AnswerIn("a", "ann", "cat"), AnswerIn("a", "lead", "bird", review=True)])
    assert report.stored == 2
    state = service.item_state(p.id, "a")
    assert (state.status, state.label, state.answers) == ("reviewed", "bird", 1)
    frame = service.answers_frame(p.id)
    assert frame.loc[frame["worker"] == "lead", "review"].tolist() == [True]
    with pytest.raises(InputError, match="row 1, field 'review': a review of a gold item"):
        service.import_answers(p.id, [AnswerIn("g", "lead", "cat", review=True)])


def test_label_studio_round_trip(service) -> None:
    """Export, parse back with the importer, import into a new project, export again: the same."""
    taxonomy = Taxonomy.from_paths(["Pets > Cat", "Pets > Dog", "Wild > Fox"])
    p = project(service, taxonomy)
    items = [ItemIn(f"s{k}", {"title": f"animal {k}", "n": k}) for k in range(7)]
    service.import_items(p.id, [*items, ItemIn("g", {"title": "gold"}, gold="Pets > Cat")])
    probabilities = {f"s{k}": {"Pets > Dog": 0.7, "Wild > Fox": 0.2} for k in range(0, 7, 2)}
    service.add_model_predictions(p.id, "tfidf", "1", probabilities)
    service.add_model_predictions(p.id, "tfidf", "2", {"s1": {"Wild > Fox": 0.9}})
    rows = [AnswerIn(f"s{k}", name, "Pets > Dog" if k % 3 else "Pets") for k in range(7) for name in ("a", "b")]
    service.import_answers(p.id, [*rows, AnswerIn("s5", "lead", "Wild > Fox", review=True)])

    def export(project_id: int) -> str:
        return "".join(stream_label_studio(service.export_pages(project_id, batch_size=3), taxonomy=True))

    text = export(p.id)
    tasks = json.loads(text)
    parsed = {i.external_id: i for i in parse_items(text, "label-studio")}
    assert sorted(parsed) == ["g", *(f"s{k}" for k in range(7))]  # the gold item too, read back as gold
    assert parsed["g"].gold == "Pets > Cat" and parsed["g"].payload == {"title": "gold"}
    assert [k for k, i in parsed.items() if i.gold is not None] == ["g"]
    assert all(parsed[f"s{k}"].payload == {"title": f"animal {k}", "n": k} for k in range(7))
    assert parsed["s5"].annotations == (
        Annotation("a", "Pets > Dog"),
        Annotation("b", "Pets > Dog"),
        Annotation("lead", "Wild > Fox", review=True),
    )
    assert parsed["s0"].predictions == (Prediction("Pets > Dog", 0.7, "tfidf:1"),)
    assert parsed["s1"].predictions == (Prediction("Wild > Fox", 0.9, "tfidf:2"),)
    assert parsed["s3"].annotations == (Annotation("a", "Pets"), Annotation("b", "Pets"))
    by_id = {t["data"]["id"]: t for t in tasks}
    for r in service.results(p.id):
        assert by_id[r.item]["meta"] == {
            "label": r.label,
            "confidence": r.confidence,
            "status": r.status,
            "answers": r.answers,
        }

    copy = project(service, taxonomy)
    service.import_items(copy.id, [ItemIn(i.external_id, i.payload, i.gold) for i in parsed.values()])
    service.import_answers(
        copy.id,
        [AnswerIn(i.external_id, a.annotator, a.label, a.review) for i in parsed.values() for a in i.annotations],
    )
    again = {i.external_id: i for i in parse_items(export(copy.id), "label-studio")}
    assert {k: (i.payload, i.gold, i.annotations) for k, i in again.items()} == {
        k: (i.payload, i.gold, i.annotations) for k, i in parsed.items()
    }


def test_exported_tasks_have_the_structure_label_studio_imports(service) -> None:
    p = project(service)
    service.import_items(p.id, [ItemIn("a", {"text": "x"}), ItemIn("b", {"text": "y"})])
    service.add_model_predictions(p.id, "m", "v", {"a": {"cat": 0.6, "dog": 0.4}})
    service.import_answers(p.id, [AnswerIn("a", "ann@example.org", "cat"), AnswerIn("b", "bob", "dog")])
    tasks = json.loads("".join(stream_label_studio(service.export_pages(p.id), from_name="animal", to_name="text")))
    assert isinstance(tasks, list) and len(tasks) == 2
    for task in tasks:
        assert isinstance(task["data"], dict) and isinstance(task["data"]["text"], str)
        assert isinstance(task["meta"], dict)
        for annotation in task["annotations"]:
            assert set(annotation["completed_by"]) == {"email"} and isinstance(annotation["completed_by"]["email"], str)
            assert annotation["ground_truth"] is False and annotation["was_cancelled"] is False
            assert_results(annotation["result"], "choices")
        for prediction in task["predictions"]:
            assert isinstance(prediction["model_version"], str) and 0 <= prediction["score"] <= 1
            assert_results(prediction["result"], "choices")
    (prediction,) = tasks[0]["predictions"]
    assert prediction["model_version"] == "m:v" and prediction["score"] == pytest.approx(0.6)
    assert prediction["result"][0]["value"] == {"choices": ["cat"]}


def assert_results(results: list, kind: str) -> None:
    assert isinstance(results, list) and results
    for result in results:
        assert result["type"] == kind and result["from_name"] == "animal" and result["to_name"] == "text"
        assert isinstance(result["value"][kind], list) and all(isinstance(c, str) for c in result["value"][kind])


def test_a_large_export_costs_a_fixed_number_of_statements_per_page(service) -> None:
    p = project(service)
    n, page = 5000, 1000
    service.import_items(p.id, [ItemIn(f"i{k}", {"k": k}) for k in range(n)])
    service.add_model_predictions(p.id, "m", "1", {f"i{k}": {"cat": 0.9} for k in range(0, n, 2)})
    service.import_answers(p.id, [AnswerIn(f"i{k}", f"w{k % 7}", "cat") for k in range(n)])
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(service.engine, "before_cursor_execute", count)
    try:
        pages = service.export_pages(p.id, batch_size=page)
        tasks = json.loads("".join(stream_label_studio(pages)))
    finally:
        event.remove(service.engine, "before_cursor_execute", count)
    assert len(tasks) == n and sum(len(t["predictions"]) for t in tasks) == n // 2
    assert sum(len(t["annotations"]) for t in tasks) == n
    queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    pages_read = n // page + 1  # the last, empty page ends the export
    assert len(queries) <= 2 + 3 * pages_read, len(queries)  # the project, then three per page
    assert len(statements) <= 4 * pages_read + 4
    assert max(len(s) for s in queries) < 2000  # no statement grows with the items
