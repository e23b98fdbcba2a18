import io
import json

import numpy as np
import pandas as pd
import pytest

from crowdloop.errors import InputError
from crowdloop.io.exports import (
    export_answers,
    export_items,
    export_label_studio,
    export_labels,
    stream_label_studio,
)
from crowdloop.io.items import Annotation, Prediction, parse_items

RESULTS = pd.DataFrame(
    {
        "task": ["007", "008"],
        "status": ["accepted", "more"],
        "label": ["Shoes", None],
        "confidence": [0.981, np.nan],
        "answers": [2, 1],
        "data": [{"title": "Red shoe"}, {"title": "Blue, hat"}],
    }
)
ANSWERS = pd.DataFrame({"task": ["007", "007", "008"], "worker": ["w1", "w2", "w1"], "label": ["Shoes"] * 2 + ["Hats"]})
PREDICTIONS = pd.DataFrame({"task": ["007"], "model": ["tfidf-1"], "label": ["Shoes"], "score": [0.9]})


def test_labels_csv():
    frame = pd.read_csv(io.StringIO(export_labels(RESULTS)), dtype={"task": str})
    assert frame.columns.tolist() == ["task", "label", "confidence", "status"]
    assert frame["task"].tolist() == ["007", "008"]
    assert frame["confidence"].iloc[0] == pytest.approx(0.981) and np.isnan(frame["confidence"].iloc[1])


def test_items_csv_and_jsonl():
    frame = pd.read_csv(io.StringIO(export_items(RESULTS, "csv")), dtype=str, keep_default_na=False)
    assert frame.columns.tolist() == ["task", "status", "label", "confidence", "answers", "gold", "title"]
    assert frame["title"].tolist() == ["Red shoe", "Blue, hat"]
    lines = [json.loads(x) for x in export_items(RESULTS, "jsonl").splitlines()]
    assert lines[1] == {
        "task": "008",
        "status": "more",
        "label": None,
        "confidence": None,
        "answers": 1,
        "gold": None,
        "data": {"title": "Blue, hat"},
    }
    # the JSONL export reads back as items
    assert [i.payload for i in parse_items(export_items(RESULTS, "jsonl"), "jsonl")] == list(RESULTS["data"])
    with pytest.raises(InputError, match="unknown item export format"):
        export_items(RESULTS, "xml")


def test_answers_frame_is_crowdkit_shaped():
    frame = pd.read_csv(io.StringIO(export_answers(ANSWERS)), dtype=str)
    pd.testing.assert_frame_equal(frame, ANSWERS)


def test_label_studio_round_trip():
    answers = ANSWERS.assign(review=[False, True, False])
    text = export_label_studio(RESULTS, answers, PREDICTIONS, from_name="category", to_name="title")
    tasks = json.loads(text)
    assert tasks[0]["annotations"][0]["result"][0]["from_name"] == "category"
    assert tasks[0]["meta"] == {"label": "Shoes", "confidence": 0.981, "status": "accepted", "answers": 2}
    assert tasks[1]["meta"]["confidence"] is None
    assert [a["ground_truth"] for a in tasks[0]["annotations"]] == [False, True]
    first, second = parse_items(text, "label-studio")
    assert first.external_id == "007" and first.payload == {"title": "Red shoe"}
    assert first.annotations == (Annotation("w1", "Shoes"), Annotation("w2", "Shoes", review=True))
    assert first.predictions == (Prediction("Shoes", 0.9, "tfidf-1"),)
    assert second.annotations == (Annotation("w1", "Hats"),) and second.predictions == ()


def test_label_studio_taxonomy_results_are_path_lists():
    results = RESULTS.assign(label=["Apparel > Shoes", None])
    answers = pd.DataFrame({"task": ["007"], "worker": ["w1"], "label": ["Apparel > Shoes"]})
    predictions = PREDICTIONS.assign(label=["Apparel"])
    text = export_label_studio(results, answers, predictions, taxonomy=True)
    task = json.loads(text)[0]
    assert task["annotations"][0]["result"][0] == {
        "from_name": "label",
        "to_name": "text",
        "type": "taxonomy",
        "value": {"taxonomy": [["Apparel", "Shoes"]]},
    }
    assert task["predictions"][0]["result"][0]["value"] == {"taxonomy": [["Apparel"]]}
    first, _ = parse_items(text, "label-studio")
    assert first.annotations == (Annotation("w1", "Apparel > Shoes"),)
    assert first.predictions == (Prediction("Apparel", 0.9, "tfidf-1"),)


def test_streamed_pages_make_one_json_list():
    pages = [(RESULTS.iloc[:1], ANSWERS.iloc[:2], PREDICTIONS), (RESULTS.iloc[1:], ANSWERS.iloc[2:], None)]
    text = "".join(stream_label_studio(pages))
    assert text == export_label_studio(RESULTS, ANSWERS, PREDICTIONS)
    assert json.loads("".join(stream_label_studio([]))) == []


def test_missing_columns_are_named():
    with pytest.raises(InputError, match="answers: missing column worker"):
        export_answers(ANSWERS.drop(columns="worker"))
    with pytest.raises(InputError, match="results: missing column status"):
        export_labels(RESULTS.drop(columns="status"))
    with pytest.raises(InputError, match="predictions: missing column score"):
        export_label_studio(RESULTS, ANSWERS, PREDICTIONS.drop(columns="score"))


FORMULAS = ["=1+2", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def _results(values: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": values,
            "status": ["accepted"] * len(values),
            "label": values,
            "confidence": [-0.0] * len(values),
            "answers": [1] * len(values),
            "data": [{"note": v} for v in values],
        }
    )


def test_csv_exports_neutralise_formulas_and_keep_numbers():
    values = [*FORMULAS, "-1", "+0.5", "1e-3", "plain"]
    frames = {
        "labels": export_labels(_results(values)),
        "items": export_items(_results(values), "csv"),
        "answers": export_answers(pd.DataFrame({"task": values, "worker": values, "label": values})),
    }
    for name, text in frames.items():
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        for column in frame.columns.intersection(["task", "label", "worker", "note"]):
            cells = frame[column].tolist()
            assert cells[: len(FORMULAS)] == ["'" + v for v in FORMULAS], (name, column)
            assert cells[len(FORMULAS) :] == ["-1", "+0.5", "1e-3", "plain"], (name, column)
    jsonl = [json.loads(line) for line in export_items(_results(values), "jsonl").splitlines()]
    assert [r["task"] for r in jsonl] == values  # JSON is no spreadsheet: values stay as they are


def test_label_studio_export_survives_text_json_cannot_encode_as_utf8():
    results = _results(["a", "b"])
    results["data"] = [{"note": "\udfff"}, {"note": "fine"}]
    text = export_label_studio(results)
    text.encode("utf-8")  # the response body: must not fail mid-stream
    assert [t["data"]["note"] for t in json.loads(text)] == ["\udfff", "fine"]


def test_gold_items_survive_a_round_trip_through_every_item_export():
    results = pd.DataFrame(
        {
            "task": ["g1", "i1"],
            "status": ["gold", "accepted"],
            "label": ["Shoes", "Hats"],
            "confidence": [1.0, 0.97],
            "answers": [3, 2],
            "data": [{"title": "Red shoe"}, {"title": "Blue hat"}],
            "hint": ["the sole", None],
        }
    )
    for text, fmt in (
        (export_items(results, "csv"), "csv"),
        (export_items(results, "jsonl"), "jsonl"),
        (export_label_studio(results), "label-studio"),
    ):
        gold, plain = parse_items(text, fmt)
        assert (gold.gold, gold.hint, gold.payload) == ("Shoes", "the sole", {"title": "Red shoe"}), fmt
        assert (plain.gold, plain.payload) == (None, {"title": "Blue hat"}), fmt  # no result reaches a payload
