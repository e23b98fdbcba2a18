"""Results in the formats labeling teams use next: final labels with confidence, items as CSV or
JSONL, a crowd-kit answers frame, and Label Studio task JSON with predictions and annotations.

The inputs are frames: ``results`` has one row per item (``task``, ``status``, ``label``,
``confidence`` and optionally ``answers`` and ``data``, the payload dict); ``answers`` has the
crowd-kit columns ``task``, ``worker``, ``label``; ``predictions`` has ``task``, ``model``,
``label``, ``score``. Every writer returns the file's text.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from crowdloop.errors import InputError

EXPORT_FORMATS = ("labels", "csv", "jsonl", "answers", "label-studio")
LABEL_COLUMNS = ["task", "label", "confidence", "status"]
ANSWER_COLUMNS = ["task", "worker", "label"]
PREDICTION_COLUMNS = ["task", "model", "label", "score"]


def export_labels(results: pd.DataFrame) -> str:
    """``task,label,confidence,status`` CSV, one row per item (the header ``crowdloop aggregate`` writes,
    plus the item's status); items without a label yet have empty label and confidence."""
    _require(results, ["task", "label", "confidence", "status"], "results")
    return results[LABEL_COLUMNS].to_csv(index=False)


def export_items(results: pd.DataFrame, fmt: str = "csv") -> str:
    """Every item with its payload and result: CSV (payload fields as columns, after the result
    columns) or JSONL (the payload under ``data``)."""
    _require(results, ["task", "label", "confidence", "status"], "results")
    base = results.drop(columns=["data"], errors="ignore")
    if fmt == "jsonl":
        records = base.to_dict(orient="records")
        if "data" in results.columns:
            for record, data in zip(records, results["data"], strict=True):
                record["data"] = data or {}
        return "".join(json.dumps(_clean(r), ensure_ascii=False) + "\n" for r in records)
    if fmt != "csv":
        raise InputError(f"unknown item export format {fmt!r}", hint="Use csv or jsonl.")
    if "data" in results.columns:
        payload = pd.DataFrame([d or {} for d in results["data"]], index=results.index)
        payload = payload.drop(columns=[c for c in payload.columns if c in base.columns])
        base = pd.concat([base, payload], axis=1)
    return base.to_csv(index=False)


def export_answers(answers: pd.DataFrame) -> str:
    """The crowd-kit answers frame ``task,worker,label`` as CSV (``pd.read_csv`` gives it back)."""
    _require(answers, ANSWER_COLUMNS, "answers")
    return answers[ANSWER_COLUMNS].to_csv(index=False)


def export_label_studio(
    results: pd.DataFrame,
    answers: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    *,
    from_name: str = "label",
    to_name: str = "text",
) -> str:
    """Label Studio task JSON: ``data`` (the payload and the item id), one ``annotations`` entry per
    answer (``completed_by`` the annotator) and one ``predictions`` entry per model vote; the final
    label goes in ``meta`` with its confidence and status. ``crowdloop.io.items`` reads it back."""
    _require(results, ["task", "label", "confidence", "status"], "results")
    by_task_answers = _group(answers, ANSWER_COLUMNS, "answers")
    by_task_predictions = _group(predictions, PREDICTION_COLUMNS, "predictions")

    def result(label: Any, score: float | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "from_name": from_name,
            "to_name": to_name,
            "type": "choices",
            "value": {"choices": [str(label)]},
        }
        if score is not None:
            entry["score"] = float(score)
        return entry

    tasks = []
    data_column = results["data"] if "data" in results.columns else [None] * len(results)
    for row, data in zip(results.itertuples(index=False), data_column, strict=True):
        task = str(row.task)
        tasks.append(
            {
                "id": task,
                "data": {**(data or {}), "id": task},
                "annotations": [
                    {"completed_by": str(worker), "result": [result(label)]}
                    for worker, label in by_task_answers.get(task, [])
                ],
                "predictions": [
                    {"model_version": str(model), "score": float(score), "result": [result(label, score)]}
                    for model, label, score in by_task_predictions.get(task, [])
                ],
                "meta": _clean({"label": row.label, "confidence": row.confidence, "status": row.status}),
            }
        )
    return json.dumps(tasks, ensure_ascii=False, indent=1)


def _group(frame: pd.DataFrame | None, columns: list[str], name: str) -> dict[str, list[tuple]]:
    if frame is None or frame.empty:
        return {}
    _require(frame, columns, name)
    keys = frame["task"].astype(str).to_numpy()
    rest = list(zip(*(frame[c].to_numpy() for c in columns[1:]), strict=True))
    grouped: dict[str, list[tuple]] = {}
    for key, values in zip(keys, rest, strict=True):
        grouped.setdefault(key, []).append(values)
    return grouped


def _require(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"missing column {', '.join(missing)} (columns are: {', '.join(map(str, frame.columns))})", source=name
        )


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe values: NaN and None become null, NumPy scalars plain Python."""
    out = {}
    for key, value in record.items():
        if hasattr(value, "item") and not isinstance(value, dict | list):
            value = value.item()
        if isinstance(value, float) and math.isnan(value):
            value = None
        out[key] = value
    return out
