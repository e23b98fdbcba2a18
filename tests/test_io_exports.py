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
    assert frame.columns.tolist() == ["task", "status", "label", "confidence", "answers", "title"]
    assert frame["title"].tolist() == ["Red shoe", "Blue, hat"]
    lines = [json.loads(x) for x in export_items(RESULTS, "jsonl").splitlines()]
    assert lines[1] == {
        "task": "008",
        "status": "more",
        "label": None,
        "confidence": None,
        "answers": 1,
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
