"""Items to label, from the files labeling teams already have: CSV/TSV, JSONL, Label Studio task
JSON (with its ``predictions`` and ``annotations``) and Toloka task TSV (``INPUT:*``, ``GOLDEN:*``,
``HINT:*``).

Every reader returns ``ImportedItem`` rows: the item's external id, its payload (what the annotator
sees), and optionally a gold label (with a hint), model predictions and earlier annotations. Bad
input raises one ``InputError`` naming the source, the row (line for text formats, task index for
Label Studio JSON) and the field.

Label Studio tasks: the item id is ``data.id`` when present (what ``crowdloop.io.exports`` writes, and
the only id that survives a pass through Label Studio, which numbers tasks itself), else the task's
``id``. Labels are ``choices`` results, or ``taxonomy`` results (each path list ``["A", "B"]`` is the
label ``A > B``). An annotation's annotator is named after its ``completed_by``: the email of a
``{"email": ...}`` object (else its ``id``), an integer user id as text (``"3"``), and
``LABEL_STUDIO_USER`` when it is missing (Label Studio itself credits such annotations to whoever
imports them). ``ground_truth`` annotations are reviews; cancelled ones are skipped. A task whose
``meta`` says ``"status": "gold"`` (what the export writes for a gold item) is gold, its label
``meta.label``. A task without ``data`` is its own data, less Label Studio's task fields.

Payloads never carry answers: the columns (or fields beside ``data``) in ``ANSWER_FIELDS`` are read
as gold and hint or dropped, so that an annotator never sees a gold label, another annotator's
answer, a model's prediction or a result (an export of crowdloop imported again). Text formats
are read within the limits of ``crowdloop.io.uploads`` (``MAX_COLUMNS`` columns, lines of at most
``MAX_LINE_BYTES`` bytes) and with ``read_item_upload`` within the decompressed size and the rows
of an ``UploadLimits``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from crowdloop.errors import InputError
from crowdloop.io.uploads import UploadLimits, check_columns, check_lines, read_upload
from crowdloop.labels import PATH_SEPARATOR

ITEM_FORMATS = ("csv", "tsv", "jsonl", "label-studio", "toloka")
ID_FIELDS = ("id", "external_id", "item", "task")
GOLD_FIELDS = ("gold", "true_label")
ANSWER_FIELDS = (*GOLD_FIELDS, "hint", "label", "confidence", "status", "answers", "predictions", "annotations", "meta")
"""Columns, and JSON fields beside ``data``, that are never part of a payload: gold labels and hints,
answers, predictions, and the result columns crowdloop's exports write beside the payload."""
LABEL_STUDIO_FIELDS = (
    "id", "annotations", "predictions", "drafts", "meta", "annotators", "ground_truth", "total_annotations",
    "cancelled_annotations", "total_predictions", "is_labeled", "overlap", "inner_id", "project", "file_upload",
    "created_at", "updated_at", "updated_by", "completed_at", "comment_count", "unresolved_comment_count",
    "last_comment_updated_at", "comment_authors", "storage_filename",
)  # fmt: skip
"""The fields of a Label Studio task beside its ``data`` (its export's, see its task format)."""
TOLOKA_ID_FIELDS = ("INPUT:id", "TASK:id", "ASSIGNMENT:task_id")
LABEL_STUDIO_USER = "label-studio"
"""The annotator of Label Studio annotations without ``completed_by``."""
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class Prediction:
    """A model's vote on an item: its top label and that label's probability (``score``)."""

    label: str
    score: float
    model: str = "imported"


@dataclass(frozen=True)
class Annotation:
    """An answer given before import (a Label Studio annotation): who answered and what, and
    whether it is a reviewer's final decision (Label Studio's ``ground_truth``)."""

    annotator: str
    label: str
    review: bool = False


@dataclass(frozen=True)
class ImportedItem:
    """One item to label: external id, payload, and what is already known about it."""

    external_id: str
    payload: dict[str, Any]
    gold: str | None = None
    hint: str | None = None
    predictions: tuple[Prediction, ...] = field(default_factory=tuple)
    annotations: tuple[Annotation, ...] = field(default_factory=tuple)


def detect_item_format(name: str, content: str | bytes | None = None) -> str:
    """The format of an item file from its name (and, for TSV and JSON, its first bytes)."""
    suffixes = [s.lower() for s in Path(name).suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix == ".json":
        return "label-studio"
    fmt = _SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        raise InputError(
            f"unknown file type {suffix or '(none)'}",
            source=name,
            hint="Use .csv, .tsv (Toloka tasks too), .jsonl or .json (Label Studio tasks), or name the format.",
        )
    if fmt == "tsv" and content is not None:
        head = content[:4096].decode("utf-8", "replace") if isinstance(content, bytes) else content[:4096]
        if head.split("\n", 1)[0].startswith("INPUT:") or "\tINPUT:" in head.split("\n", 1)[0]:
            return "toloka"
    return fmt


def read_items(path: str | Path, *, fmt: str | None = None) -> list[ImportedItem]:
    """Items from a file (gzipped when it ends in ``.gz``); the format follows the suffix unless
    ``fmt`` names it."""
    if fmt is None:
        detect_item_format(str(path))
    try:
        with open(path, "rb") as stream:
            return read_item_upload(stream, str(path), fmt)
    except FileNotFoundError as exc:
        raise InputError("no such file", source=str(path)) from exc


def read_item_upload(
    stream: BinaryIO, name: str, fmt: str | None = None, limits: UploadLimits | None = None
) -> list[ImportedItem]:
    """Items from a file's bytes, read within ``limits`` (``TooLargeError`` past them: see
    ``read_upload``); ``name`` gives the format unless ``fmt`` does, and ``.gz`` means gzipped."""
    known = fmt or detect_item_format(name)  # an unknown suffix fails before anything is read
    content = read_upload(stream, name, limits, lines=known != "label-studio")
    items = parse_items(content, fmt or detect_item_format(name, content), source=name)
    if limits is not None:
        limits.check_rows(len(items), name, "items")
    return items


def parse_items(content: str | bytes, fmt: str, *, source: str = "items") -> list[ImportedItem]:
    """Items from the text of a file in one of ``ITEM_FORMATS``."""
    if fmt not in ITEM_FORMATS:
        raise InputError(f"unknown item format {fmt!r}", source=source, hint=f"Use one of {', '.join(ITEM_FORMATS)}.")
    text = _decode(content, source)
    if fmt != "label-studio":
        check_lines(content if isinstance(content, bytes) else text.encode("utf-8", "surrogatepass"), source)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError("a NUL character (not text)", source=source, rows=[line])
    if not text.strip():
        raise InputError("the file is empty", source=source)
    if fmt == "label-studio":
        numbered = _label_studio(text, source)
    elif fmt == "jsonl":
        numbered = _jsonl(text, source)
    else:
        rows = _delimited(text, "," if fmt == "csv" else "\t", source)
        numbered = _toloka(rows, source) if fmt == "toloka" else _table(rows, source)
    if not numbered:
        raise InputError("the file has no items", source=source)
    return _unique(numbered, source, "task" if fmt == "label-studio" else "line")


def items_from_records(records: Iterable[dict[str, Any]], *, source: str = "body") -> list[ImportedItem]:
    """Items from JSON objects shaped like JSONL lines (``id``, ``data`` or other fields, ``gold``,
    ``hint``, ``predictions``); rows are numbered from 1."""
    return _unique([(row, _record(record, source, row)) for row, record in enumerate(records, start=1)], source, "row")


def _decode(content: str | bytes, source: str) -> str:
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", source=source) from exc


def _delimited(text: str, sep: str, source: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        header = [h.strip() for h in next(reader)]
        check_columns(len(header), source)
        rows = []
        for line, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise InputError(f"{len(values)} fields where the header has {len(header)}", source=source, rows=[line])
            rows.append((line, dict(zip(header, values, strict=True))))
    except csv.Error as exc:
        raise InputError(f"cannot parse the file ({exc})", source=source, rows=[reader.line_num]) from exc
    empty = [i + 1 for i, h in enumerate(header) if not h]
    if empty:
        raise InputError(f"empty column name (column {empty[0]})", source=source, rows=[1])
    counts = Counter(header)
    dup = next((h for h in header if counts[h] > 1), None)
    if dup is not None:
        raise InputError(f"column {dup!r} appears twice", source=source, rows=[1], field=dup)
    return rows


def _pick(fields: Iterable[str], names: tuple[str, ...]) -> str | None:
    present = set(fields)
    return next((name for name in names if name in present), None)


def _require_id(value: Any, source: str, row: int, name: str, unit: str = "line") -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise InputError("empty item id", source=source, rows=[row], field=name, unit=unit)
    return text


def _table(rows: list[tuple[int, dict[str, str]]], source: str) -> list[tuple[int, ImportedItem]]:
    if not rows:
        return []
    columns = list(rows[0][1])
    id_col = _pick(columns, ID_FIELDS)
    if id_col is None:
        raise InputError(
            f"no item id column (columns are: {', '.join(columns)})",
            source=source,
            rows=[1],
            hint=f"Name one column {' or '.join(ID_FIELDS)}.",
        )
    items = []
    for line, row in rows:
        items.append(
            (
                line,
                ImportedItem(
                    _require_id(row[id_col], source, line, id_col),
                    _payload(row, id_col),
                    gold=_gold(row, source, line, "line"),
                    hint=(row.get("hint") or "").strip() or None,
                ),
            )
        )
    return items


def _payload(record: dict[str, Any], id_field: str, reserved: tuple[str, ...] = ANSWER_FIELDS) -> dict[str, Any]:
    """A flat record's payload: every field but its id and ``reserved`` ones."""
    return {k: v for k, v in record.items() if k != id_field and k not in reserved}


def _gold(record: dict[str, Any], source: str, row: int, unit: str) -> str | None:
    """The gold label of a record's ``GOLD_FIELDS`` (the first given; two that differ are an error)."""
    given = [(name, _optional_text(record.get(name), source, row, name, unit)) for name in GOLD_FIELDS]
    given = [(name, value) for name, value in given if value is not None]
    if len({value for _, value in given}) > 1:
        raise InputError(
            f"gold labels disagree ({' and '.join(f'{n} {v!r}' for n, v in given)})",
            source=source,
            rows=[row],
            field=given[-1][0],
            unit=unit,
        )
    return given[0][1] if given else None


def _toloka(rows: list[tuple[int, dict[str, str]]], source: str) -> list[tuple[int, ImportedItem]]:
    if not rows:
        return []
    columns = list(rows[0][1])
    id_col = _pick(columns, TOLOKA_ID_FIELDS)
    if id_col is None:
        raise InputError(
            "no task id column in a Toloka TSV",
            source=source,
            rows=[1],
            hint=f"Add one of {', '.join(TOLOKA_ID_FIELDS)}.",
        )
    golden = [c for c in columns if c.startswith("GOLDEN:")]
    if len(golden) > 1:
        raise InputError(f"several GOLDEN fields ({', '.join(golden)}); keep one", source=source, rows=[1])
    hints = [c for c in columns if c.startswith("HINT:")]
    inputs = [c for c in columns if c.startswith("INPUT:") and c != id_col]
    items = []
    for line, row in rows:
        gold = row[golden[0]].strip() if golden else ""
        hint = " ".join(row[c].strip() for c in hints if row[c].strip())
        items.append(
            (
                line,
                ImportedItem(
                    _require_id(row[id_col], source, line, id_col),
                    {c.split(":", 1)[1]: row[c] for c in inputs},
                    gold=gold or None,
                    hint=hint or None,
                ),
            )
        )
    return items


def _jsonl(text: str, source: str) -> list[tuple[int, ImportedItem]]:
    items = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON ({exc.msg}, column {exc.colno})", source=source, rows=[line]) from exc
        except RecursionError:
            raise InputError("JSON nested too deep", source=source, rows=[line]) from None
        items.append((line, _record(record, source, line, unit="line")))
    return items


def _record(record: Any, source: str, row: int, unit: str = "row") -> ImportedItem:
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}", source=source, rows=[row], unit=unit)
    id_key = _pick(record, ID_FIELDS)
    if id_key is None:
        raise InputError(f"no item id ({' or '.join(ID_FIELDS)})", source=source, rows=[row], unit=unit)
    external_id = _require_id(record[id_key], source, row, id_key, unit)
    if "data" in record:
        if not isinstance(record["data"], dict):
            raise InputError("expected an object", source=source, rows=[row], field="data", unit=unit)
        payload = dict(record["data"])
    else:
        payload = _payload(record, id_key)
    gold = _gold(record, source, row, unit)
    hint = _optional_text(record.get("hint"), source, row, "hint", unit)
    predictions = _plain_predictions(record.get("predictions"), source, row, unit)
    return ImportedItem(external_id, payload, gold=gold, hint=hint, predictions=predictions)


def _optional_text(value: Any, source: str, row: int, name: str | None, unit: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list | bool):
        raise InputError("expected a label (text)", source=source, rows=[row], field=name, unit=unit)
    return str(value).strip() or None


def _score(value: Any, source: str, row: int, name: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
        raise InputError(f"score {value!r} is not a number in [0, 1]", source=source, rows=[row], field=name, unit=unit)
    return float(value)


def _plain_predictions(value: Any, source: str, row: int, unit: str) -> tuple[Prediction, ...]:
    """``[{"label": ..., "score": ..., "model": ...}, ...]`` or ``{label: score, ...}``."""
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [{"label": k, "score": v} for k, v in value.items()]
    if not isinstance(value, list):
        raise InputError("expected a list of {label, score}", source=source, rows=[row], field="predictions", unit=unit)
    out = []
    for i, entry in enumerate(value):
        name = f"predictions[{i}]"
        if not isinstance(entry, dict) or _optional_text(entry.get("label"), source, row, name, unit) is None:
            raise InputError("expected {label, score}", source=source, rows=[row], field=name, unit=unit)
        score = _score(entry.get("score", 1.0), source, row, f"{name}.score", unit)
        out.append(Prediction(str(entry["label"]).strip(), score, str(entry.get("model") or "imported")))
    return tuple(out)


def _label_studio(text: str, source: str) -> list[tuple[int, ImportedItem]]:
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})", source=source) from exc
    except RecursionError:
        raise InputError("JSON nested too deep", source=source) from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise InputError("expected a list of Label Studio tasks", source=source)
    return [(index, _label_studio_task(task, source, index)) for index, task in enumerate(tasks)]


def _label_studio_task(task: Any, source: str, index: int) -> ImportedItem:
    unit = "task"
    if not isinstance(task, dict):
        raise InputError("expected a task object", source=source, rows=[index], unit=unit)
    data = task.get("data", task)
    if not isinstance(data, dict):
        raise InputError("expected an object", source=source, rows=[index], field="data", unit=unit)
    in_data = "id" in data or "data" not in task
    external_id = _require_id(data.get("id") if in_data else task.get("id"), source, index, "id", unit)
    if "data" in task:
        payload = {k: v for k, v in data.items() if k != "id"}
    else:  # the task is its own data: its Label Studio fields and any answer are not
        payload = _payload(task, "id", (*LABEL_STUDIO_FIELDS, *ANSWER_FIELDS))
    meta = task.get("meta")
    gold = hint = None
    if isinstance(meta, dict) and meta.get("status") == "gold":
        gold = _optional_text(meta.get("label"), source, index, "meta.label", unit)
        hint = _optional_text(meta.get("hint"), source, index, "meta.hint", unit)
        if gold is None:
            raise InputError("a gold task without a label", source=source, rows=[index], field="meta.label", unit=unit)
    predictions = []
    for p, prediction in enumerate(_list(task, "predictions", source, index)):
        name = f"predictions[{p}]"
        if not isinstance(prediction, dict):
            raise InputError("expected an object", source=source, rows=[index], field=name, unit=unit)
        model = str(prediction.get("model_version") or "imported")
        overall = prediction.get("score")
        for r, choice, score in _choices(prediction, source, index, name):
            score = score if score is not None else overall if overall is not None else 1.0
            predictions.append(
                Prediction(choice, _score(score, source, index, f"{name}.result[{r}].score", unit), model)
            )
    annotations = []
    for a, annotation in enumerate(_list(task, "annotations", source, index)):
        name = f"annotations[{a}]"
        if not isinstance(annotation, dict):
            raise InputError("expected an object", source=source, rows=[index], field=name, unit=unit)
        if annotation.get("was_cancelled"):
            continue
        who = annotation.get("completed_by")
        if isinstance(who, dict):
            who = who.get("email") or who.get("id")
        annotator = str(who).strip() if who is not None and str(who).strip() else LABEL_STUDIO_USER
        review = bool(annotation.get("ground_truth"))
        annotations.extend(
            Annotation(annotator, choice, review) for _, choice, _ in _choices(annotation, source, index, name)
        )
    return ImportedItem(
        external_id, payload, gold=gold, hint=hint, predictions=tuple(predictions), annotations=tuple(annotations)
    )


def _list(task: dict, key: str, source: str, index: int) -> list:
    value = task.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError("expected a list", source=source, rows=[index], field=key, unit="task")
    return value


def _choices(entry: dict, source: str, index: int, name: str) -> list[tuple[int, str, Any]]:
    """``(result index, label, score)`` of every ``choices`` or ``taxonomy`` result of a prediction or
    annotation."""
    results = entry.get("result") or []
    if not isinstance(results, list):
        raise InputError("expected a list", source=source, rows=[index], field=f"{name}.result", unit="task")
    out = []
    for r, result in enumerate(results):
        value = result.get("value") if isinstance(result, dict) else None
        if not isinstance(value, dict):
            raise InputError(
                "expected a result with a value", source=source, rows=[index], field=f"{name}.result[{r}]", unit="task"
            )
        kind = "choices" if "choices" in value else "taxonomy" if "taxonomy" in value else None
        if kind is None:
            continue  # a non-classification result (a span, a box): not a label of the item
        labels = value[kind]
        if kind == "taxonomy" and isinstance(labels, list) and all(_is_path(p) for p in labels):
            labels = [PATH_SEPARATOR.join(part.strip() for part in path) for path in labels]
        if not isinstance(labels, list) or not labels or not all(isinstance(c, str) and c.strip() for c in labels):
            expected = "a list of labels" if kind == "choices" else "a list of label paths (lists of text)"
            raise InputError(
                f"expected {expected}",
                source=source,
                rows=[index],
                field=f"{name}.result[{r}].value.{kind}",
                unit="task",
            )
        out.extend((r, label.strip(), result.get("score")) for label in labels)
    return out


def _is_path(path: Any) -> bool:
    return isinstance(path, list) and bool(path) and all(isinstance(part, str) and part.strip() for part in path)


def _unique(numbered: list[tuple[int, ImportedItem]], source: str, unit: str) -> list[ImportedItem]:
    seen: dict[str, int] = {}
    for row, item in numbered:
        if item.external_id in seen:
            raise InputError(
                f"item id {item.external_id!r} appears twice (first at {unit} {seen[item.external_id]})",
                source=source,
                rows=[row],
                unit=unit,
            )
        seen[item.external_id] = row
    return [item for _, item in numbered]
