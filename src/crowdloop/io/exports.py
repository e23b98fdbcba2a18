"""Results in the formats labeling teams use next: final labels with confidence, items as CSV or
JSONL, a crowd-kit answers frame, and Label Studio task JSON with predictions and annotations.

The inputs are frames: ``results`` has one row per item (``task``, ``status``, ``label``,
``confidence`` and optionally ``answers``, ``data``, the payload dict, and ``hint``, a gold item's
hint); a gold item is a row of status ``"gold"`` with its true label. ``answers`` has the crowd-kit
columns ``task``, ``worker``, ``label`` (and optionally ``review``); ``predictions`` has ``task``,
``model``, ``label``, ``score``. Every writer returns the file's text; Label Studio JSON can also be
streamed a page of frames at a time (``stream_label_studio``).

CSV cells are defused against formula injection as OWASP recommends: a text cell (or column name)
that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, and is not a number, is
written with a single quote in front (``'=1+2``), so that a spreadsheet shows it as text instead of
running it. Lines end in CRLF (RFC 4180), so that a carriage return inside a cell is quoted.
JSON outputs keep every value as it is; text that UTF-8 cannot hold (a lone surrogate) is written
as a ``\\u`` escape there, so that a stream never fails halfway.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from crowdloop.errors import InputError
from crowdloop.labels import PATH_SEPARATOR

EXPORT_FORMATS = ("labels", "csv", "jsonl", "answers", "label-studio")
LABEL_COLUMNS = ["task", "label", "confidence", "status"]
ANSWER_COLUMNS = ["task", "worker", "label"]
PREDICTION_COLUMNS = ["task", "model", "label", "score"]
GOLD = "gold"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula (OWASP, CSV injection)."""
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def export_labels(results: pd.DataFrame) -> str:
    """``task,label,confidence,status`` CSV, one row per item (the header ``crowdloop aggregate`` writes,
    plus the item's status); items without a label yet have empty label and confidence."""
    _require(results, ["task", "label", "confidence", "status"], "results")
    return _csv(results[LABEL_COLUMNS])


def export_items(results: pd.DataFrame, fmt: str = "csv") -> str:
    """Every item with its payload and result: CSV (payload fields as columns, after the result
    columns) or JSONL (the payload under ``data``). A gold item's true label is also under ``gold``
    (and its hint under ``hint``), which ``crowdloop.io.items`` reads back as gold."""
    _require(results, ["task", "label", "confidence", "status"], "results")
    base = results.drop(columns=["data"], errors="ignore")
    base[GOLD] = base["label"].where(base["status"] == GOLD, None)
    if fmt == "jsonl":
        records = base.to_dict(orient="records")
        if "data" in results.columns:
            for record, data in zip(records, results["data"], strict=True):
                record["data"] = data or {}
        return "".join(_json(_clean(r)) + "\n" for r in records)
    if fmt != "csv":
        raise InputError(f"unknown item export format {fmt!r}", hint="Use csv or jsonl.")
    if "data" in results.columns:
        payload = pd.DataFrame([d or {} for d in results["data"]], index=results.index)
        payload = payload.drop(columns=[c for c in payload.columns if c in base.columns])
        base = pd.concat([base, payload], axis=1)
    return _csv(base)


def export_answers(answers: pd.DataFrame) -> str:
    """The crowd-kit answers frame ``task,worker,label`` as CSV (``pd.read_csv`` gives it back)."""
    _require(answers, ANSWER_COLUMNS, "answers")
    return _csv(answers[ANSWER_COLUMNS])


def _csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV, its text cells and column names defused (see the module's docstring)."""
    out = frame.copy()
    out.columns = [_defused(str(c)) for c in out.columns]
    for column in range(out.shape[1]):
        if out.dtypes.iloc[column].kind == "O":  # text, or a mix: numbers and booleans stay as they are
            out.isetitem(column, out.iloc[:, column].map(_defused))
    return out.to_csv(index=False, lineterminator="\r\n")  # RFC 4180: a CR in a cell is quoted too


def _defused(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _json(value: Any) -> str:
    """JSON text that UTF-8 can hold: non-ASCII text as it is, unless a lone surrogate is in it."""
    text = json.dumps(value, ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(value)
    return text


def export_label_studio(
    results: pd.DataFrame,
    answers: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    *,
    taxonomy: bool = False,
    from_name: str = "label",
    to_name: str = "text",
) -> str:
    """Label Studio task JSON (``label_studio_tasks``) as one text."""
    return "".join(
        stream_label_studio([(results, answers, predictions)], taxonomy=taxonomy, from_name=from_name, to_name=to_name)
    )


def stream_label_studio(
    pages: Iterable[tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]],
    *,
    taxonomy: bool = False,
    from_name: str = "label",
    to_name: str = "text",
) -> Iterator[str]:
    """One JSON list of Label Studio tasks, written a page ``(results, answers, predictions)`` at a
    time (``label_studio_tasks``), so that no more than a page is ever held."""
    yield "["
    first = True
    for results, answers, predictions in pages:
        for task in label_studio_tasks(
            results, answers, predictions, taxonomy=taxonomy, from_name=from_name, to_name=to_name
        ):
            yield ("\n" if first else ",\n") + _json(task)
            first = False
    yield "\n]\n"


def label_studio_tasks(
    results: pd.DataFrame,
    answers: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    *,
    taxonomy: bool = False,
    from_name: str = "label",
    to_name: str = "text",
) -> list[dict[str, Any]]:
    """Tasks in the JSON Label Studio imports (its documented task format):

    - ``data``: the payload with the item id under ``id`` (Label Studio numbers tasks itself, so
      the id lives in ``data``; the task's ``id`` repeats it);
    - ``annotations``: one per answer, ``completed_by`` ``{"email": <annotator>}`` (Label Studio
      matches it to a member's email), ``ground_truth`` true for a reviewer's final decision
      (``review`` column of ``answers``);
    - ``predictions``: one per model vote, ``model_version`` the model, ``score`` its probability;
    - ``meta``: the final label with its calibrated confidence, the status and the answer count;
      a gold item's is its true label, status ``"gold"`` (and its ``hint``), read back as gold.

    A label is a ``choices`` result, or with ``taxonomy`` a ``taxonomy`` result whose one path
    lists the nodes from the top level down (``A > B`` is ``["A", "B"]``). ``from_name`` and
    ``to_name`` name the control and the object tag of the Label Studio labeling config.
    ``crowdloop.io.items`` reads the tasks back."""
    _require(results, ["task", "label", "confidence", "status"], "results")
    by_task_answers = _group(answers, ANSWER_COLUMNS, "answers", extra=("review",))
    by_task_predictions = _group(predictions, PREDICTION_COLUMNS, "predictions")
    kind = "taxonomy" if taxonomy else "choices"

    def result(label: Any) -> dict[str, Any]:
        value = [str(label).split(PATH_SEPARATOR)] if taxonomy else [str(label)]
        return {"from_name": from_name, "to_name": to_name, "type": kind, "value": {kind: value}}

    tasks = []
    data_column = results["data"] if "data" in results.columns else [None] * len(results)
    counts = results["answers"] if "answers" in results.columns else [None] * len(results)
    hints = results["hint"] if "hint" in results.columns else [None] * len(results)
    for row, data, count, hint in zip(results.itertuples(index=False), data_column, counts, hints, strict=True):
        task = str(row.task)
        meta = {"label": row.label, "confidence": row.confidence, "status": row.status, "answers": count}
        if row.status == GOLD and isinstance(hint, str):
            meta["hint"] = hint
        tasks.append(
            {
                "id": task,
                "data": {**(data or {}), "id": task},
                "annotations": [
                    {
                        "completed_by": {"email": str(worker)},
                        "ground_truth": bool(review),
                        "was_cancelled": False,
                        "result": [result(label)],
                    }
                    for worker, label, review in by_task_answers.get(task, [])
                ],
                "predictions": [
                    {"model_version": str(model), "score": float(score), "result": [result(label)]}
                    for model, label, score in by_task_predictions.get(task, [])
                ],
                "meta": _clean(meta),
            }
        )
    return tasks


def _group(
    frame: pd.DataFrame | None, columns: list[str], name: str, *, extra: tuple[str, ...] = ()
) -> dict[str, list[tuple]]:
    """Rows of ``frame`` by task: the values of ``columns`` after ``task``, then of ``extra``
    (False where the frame lacks one)."""
    if frame is None or frame.empty:
        return {}
    _require(frame, columns, name)
    keys = frame["task"].astype(str).to_numpy()
    values = [frame[c].to_numpy() for c in columns[1:]]
    values += [frame[c].to_numpy() if c in frame.columns else np.zeros(len(frame), dtype=bool) for c in extra]
    rest = list(zip(*values, strict=True))
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
