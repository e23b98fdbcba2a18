"""Toloka assignment exports: ``INPUT:*``, ``OUTPUT:<field>``, ``GOLDEN:<field>``,
``ASSIGNMENT:task_id``, ``ASSIGNMENT:worker_id`` (and optionally ``ASSIGNMENT:status``)."""

from __future__ import annotations

import pandas as pd

from crowdloop.errors import InputError

TASK, WORKER, STATUS = "ASSIGNMENT:task_id", "ASSIGNMENT:worker_id", "ASSIGNMENT:status"


def is_toloka(frame: pd.DataFrame) -> bool:
    return any(str(c).startswith("OUTPUT:") for c in frame.columns)


def read_toloka(
    frame: pd.DataFrame, *, output: str | None = None, source: str = "toloka"
) -> tuple[pd.DataFrame, pd.Series | None]:
    """Answers (``task``, ``worker``, ``label``) and golden labels (task -> label) of an export.

    Rejected assignments are dropped. With several ``OUTPUT:`` fields, ``output`` names the one to use.
    """
    outputs = [c.split(":", 1)[1] for c in frame.columns if c.startswith("OUTPUT:")]
    if output is None:
        if len(outputs) != 1:
            raise InputError(f"several OUTPUT fields ({', '.join(outputs)}); choose one", source=source)
        output = outputs[0]
    missing = [c for c in (TASK, WORKER, f"OUTPUT:{output}") if c not in frame.columns]
    if missing:
        raise InputError(f"missing column {', '.join(missing)} of a Toloka export", source=source)
    kept = frame
    if STATUS in frame.columns:
        kept = frame[frame[STATUS].astype(str).str.upper() != "REJECTED"]
    lines = kept.index.to_numpy() + 2
    answers = pd.DataFrame(
        {
            "task": kept[TASK].to_numpy(),
            "worker": kept[WORKER].to_numpy(),
            "label": kept[f"OUTPUT:{output}"].to_numpy(),
        },
        index=lines,
    )
    gold = None
    golden = f"GOLDEN:{output}"
    if golden in kept.columns:
        marked = kept[kept[golden].astype(str).str.strip() != ""]
        if len(marked):
            gold = marked.groupby(TASK, sort=False)[golden].first().rename("label").rename_axis("task")
    return answers.reset_index(drop=True), gold
