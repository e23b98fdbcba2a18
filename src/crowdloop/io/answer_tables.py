"""Answers people already have, as a table: a crowd-kit frame (``task``, ``worker``, ``label`` in
CSV, TSV, JSONL or Parquet) or a Toloka assignments TSV (rejected assignments dropped)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from crowdloop.errors import InputError
from crowdloop.io.tables import read_table, table_format
from crowdloop.io.toloka import is_toloka, read_toloka

ANSWER_TABLE_COLUMNS = ("task", "worker", "label")


def read_answer_table(path: str | Path, *, source: str | None = None) -> pd.DataFrame:
    """The ``task, worker, label`` rows of an answers file, as text, in file order."""
    source = source or str(path)
    try:
        frame = read_table(path)
    except InputError as exc:  # name the file as the user knows it
        raise InputError(
            exc.problem, source=source, rows=exc.rows, field=exc.field, hint=exc.hint, unit=exc.unit
        ) from None
    if is_toloka(frame):
        frame, _ = read_toloka(frame, source=source)
    missing = [c for c in ANSWER_TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"missing column {', '.join(missing)} (columns are: {', '.join(map(str, frame.columns))})",
            source=source,
            rows=[1],
            hint="Name the columns task, worker, label (a crowd-kit answers frame) or upload a Toloka TSV.",
        )
    return frame[list(ANSWER_TABLE_COLUMNS)].astype(str).reset_index(drop=True)


def parse_answer_table(content: bytes, name: str) -> pd.DataFrame:
    """``read_answer_table`` of an uploaded file's bytes; ``name`` (its file name) gives the format."""
    suffix = "".join(Path(name).suffixes[-2:]) if Path(name).suffix.lower() == ".gz" else Path(name).suffix
    table_format(name)  # an unknown suffix fails before anything is written
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"answers{suffix}"
        path.write_bytes(content)
        return read_answer_table(path, source=name)
