"""Validation of what users send: items, gold labels and model probabilities, naming bad rows."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

from crowdloop.errors import ConfigError, InputError, UnknownLabelError
from crowdloop.labels import LabelSpace
from crowdloop.service.stored_text import EXTERNAL_ID_LENGTH, HINT_LENGTH, check_json, check_text
from crowdloop.service.types import ItemIn

MAX_BATCH = 10_000
ProgressCallback = Callable[[int], None]
"""Called after each stored batch with the number of rows stored so far."""
T = TypeVar("T")


def check_batch(batch_size: int) -> None:
    if not (isinstance(batch_size, int) and 1 <= batch_size <= MAX_BATCH):
        raise ConfigError(f"batch_size must be an integer in [1, {MAX_BATCH}], got {batch_size!r}")


def batched(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def encode_labels(values: list, labels: LabelSpace, field: str, first_row: int) -> np.ndarray:
    """Label codes of ``values``; an unknown label names its row."""
    bad = [i for i, v in enumerate(values) if v is None or isinstance(v, dict | list | bool)]
    if bad:
        raise UnknownLabelError(
            f"label {values[bad[0]]!r} is not a label",
            source="items",
            rows=[first_row + i for i in bad],
            field=field,
            unit="item",
        )
    return labels.encode(
        np.asarray(values, dtype=object), source="items", field=field, first_row=first_row, unit="item"
    )


def parse_probs(probs: Any, labels: LabelSpace, *, row: int, top_k: int, source: str) -> tuple[list[int], list[float]]:
    """A model's ``{label: probability}`` as its ``top_k`` (codes, probabilities)."""
    if not isinstance(probs, Mapping) or not probs:
        raise InputError(
            "predictions must be a non-empty mapping label -> probability", source=source, rows=[row], unit="item"
        )
    values = np.array(
        [float(p) if isinstance(p, int | float) and not isinstance(p, bool) else np.nan for p in probs.values()]
    )
    if not np.all(np.isfinite(values)) or (values < 0).any() or (values > 1).any():
        raise InputError("probabilities must be numbers in [0, 1]", source=source, rows=[row], unit="item")
    if values.sum() > 1 + 1e-3:
        raise InputError(f"probabilities sum to {values.sum():.4f} > 1", source=source, rows=[row], unit="item")
    codes = encode_labels(list(probs.keys()), labels, "predictions", row)
    if len(set(codes.tolist())) < len(codes):
        raise InputError("a label appears twice in the predictions", source=source, rows=[row], unit="item")
    order = np.argsort(-values, kind="stable")[:top_k]
    return codes[order].astype(int).tolist(), values[order].round(6).tolist()


def parse_items(batch: list[ItemIn], labels: LabelSpace, *, first_row: int) -> list[dict]:
    """Validate a batch of items (ids, payloads, gold labels, predictions), naming bad rows."""
    parsed, seen = [], {}
    gold_rows = []
    for i, item in enumerate(batch):
        row = first_row + i
        if not isinstance(item, ItemIn):
            raise InputError(f"expected an ItemIn, got {type(item).__name__}", source="items", rows=[row], unit="item")
        external_id = item.external_id
        check_text(external_id, EXTERNAL_ID_LENGTH, source="items", row=row, field="external_id")
        if external_id in seen:
            raise InputError(
                f"item {external_id!r} appears twice",
                source="items",
                rows=[seen[external_id], row],
                field="external_id",
                unit="item",
            )
        seen[external_id] = row
        if not isinstance(item.payload, dict):
            raise InputError("payload must be a JSON object", source="items", rows=[row], field="payload", unit="item")
        check_json(item.payload, source="items", row=row, field="payload")  # first: bounds the depth json.dumps meets
        try:
            json.dumps(item.payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"payload is not JSON ({exc})", source="items", rows=[row], field="payload", unit="item"
            ) from None
        if item.hint is not None:
            check_text(item.hint, HINT_LENGTH, source="items", row=row, field="hint", blank=True)
        predictions = None
        if item.predictions is not None:
            predictions = parse_probs(item.predictions, labels, row=row, top_k=10, source="items")
        if item.gold is not None:
            gold_rows.append(i)
        parsed.append(
            {
                "external_id": external_id,
                "payload": item.payload,
                "gold": None,
                "hint": item.hint,
                "predictions": predictions,
            }
        )
    if gold_rows:
        codes = np.empty(len(gold_rows), dtype=np.int64)
        for j, i in enumerate(gold_rows):
            codes[j] = encode_labels([batch[i].gold], labels, "gold", first_row + i)[0]
            parsed[i]["gold"] = int(codes[j])
    return parsed


def soft_columns(
    rows: list[tuple[int, int, tuple[list[int], list[float]]]], temperatures: dict[int, float]
) -> dict[str, np.ndarray]:
    """Model rows ``(local item, version id, (codes, probabilities))`` as the columns ``Opinions`` takes."""
    records = [
        (n, item, code, prob, temperatures.get(version, 1.0))
        for n, (item, version, (codes, probs)) in enumerate(rows)
        for code, prob in zip(codes, probs, strict=True)
    ]
    names = ("row", "item", "label", "prob", "temperature")
    return {name: np.array([r[k] for r in records], dtype=np.float64 if k >= 3 else np.int64)
            for k, name in enumerate(names)}  # fmt: skip
