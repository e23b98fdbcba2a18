"""A model's probabilities from a file: long (``task, label, probability``) or wide (``task`` and
one column per label)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from crowdloop.answers import probability_tolerance
from crowdloop.errors import InputError
from crowdloop.io.tables import id_column, read_table
from crowdloop.labels import LabelSpace


def probability_labels(path: str | Path, *, task: str = "task") -> list:
    """The labels a probabilities file gives probabilities for (its label columns, or the distinct
    values of its ``label`` column), in file order."""
    frame = read_table(path)
    if {"label", "probability"} <= set(frame.columns):
        return pd.unique(frame["label"]).tolist()
    return [c for c in frame.columns if c != task]


def read_probabilities(
    path: str | Path, labels: LabelSpace, *, task: str | None = None, notes: list[str] | None = None
) -> tuple[pd.Index, sp.csr_matrix]:
    """Task ids and their probability rows (CSR, one column per label of ``labels``); the ids are in
    the column ``task`` (default: ``item``, else ``task``).

    Every value must be a number in [0, 1] and every row sum to 1 within
    ``answers.probability_tolerance(K)`` (0.01 + 0.0005 per label: values rounded to 3 decimals
    pass); such rows are renormalised and, when ``notes`` is given, a note saying how many is
    appended to it. Labels must be in the label space; a task appears once (wide) or once per label
    (long). Errors cite the file's lines and the field."""
    source = str(path)
    frame = read_table(path)
    task = id_column(frame, task, source)
    long = {"label", "probability"} <= set(frame.columns)
    if long:
        codes = labels.encode(frame["label"].to_numpy(), source=source, field="label", first_row=2)
        values = _numbers(frame["probability"], source, "probability")
        tasks, item = np.unique(frame[task].to_numpy(dtype=str), return_inverse=True)
        pair = pd.Index(item.astype(np.int64) * len(labels) + codes)
        dup = np.flatnonzero(pair.duplicated())
        if dup.size:
            raise InputError("task and label listed twice", source=source, rows=(dup + 2).tolist())
        matrix = sp.csr_matrix((values, (item, codes)), shape=(len(tasks), len(labels)))
        line_of_task = pd.Series(np.arange(len(frame)) + 2).groupby(item).min().to_numpy()
    else:
        columns = [c for c in frame.columns if c != task]
        codes = labels.encode(columns, source=source, field="header", first_row=1)
        values = np.column_stack([_numbers(frame[c], source, c) for c in columns])
        tasks = frame[task].to_numpy(dtype=str)
        dup = np.flatnonzero(pd.Index(tasks).duplicated())
        if dup.size:
            raise InputError("task listed twice", source=source, rows=(dup + 2).tolist(), field=task)
        rows = np.repeat(np.arange(len(tasks)), len(columns))
        matrix = sp.csr_matrix((values.ravel(), (rows, np.tile(codes, len(tasks)))), shape=(len(tasks), len(labels)))
        line_of_task = np.arange(len(tasks)) + 2
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    off = np.flatnonzero(np.abs(sums - 1) > probability_tolerance(len(labels)))
    if off.size:
        first = off[np.argmin(line_of_task[off])]
        raise InputError(
            f"probabilities of task {str(tasks[first])!r} sum to {sums[first]:.4f}, not 1 "
            f"(rows within {probability_tolerance(len(labels)):.4f} of 1 are renormalised)",
            source=source,
            rows=np.sort(line_of_task[off]).tolist(),
            field="probability" if long else None,
        )
    renormalised = np.abs(sums - 1) > 1e-9
    if renormalised.any():
        matrix = sp.csr_matrix(sp.diags(1.0 / sums) @ matrix)
        if notes is not None:
            worst = float(np.abs(sums - 1).max())
            notes.append(
                f"{source}: {int(renormalised.sum()):,} of {len(tasks):,} probability rows renormalised to sum to 1 "
                f"(off by at most {worst:.4f}; up to {probability_tolerance(len(labels)):.4f} is taken as rounding)"
            )
    return pd.Index(tasks, name="task"), matrix


def _numbers(column: pd.Series, source: str, name: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        raise InputError(
            "expected a probability in [0, 1]", source=source, rows=(np.flatnonzero(bad) + 2).tolist(), field=name
        )
    return values
