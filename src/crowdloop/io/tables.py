"""Tables from files: the format follows the suffix; ids and labels are read as text."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crowdloop.answers import Answers, DuplicatePolicy
from crowdloop.errors import InputError
from crowdloop.labels import LabelSpace

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}


def table_format(path: str | Path) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() != ".gz"]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise InputError(
            f"unknown file type {''.join(Path(path).suffixes) or '(none)'}",
            source=str(path),
            hint=f"Use one of {', '.join(sorted(FORMATS))}.",
        )
    return fmt


ID_COLUMNS: tuple[str, ...] = ("item", "task")
"""The names an item id column goes by (crowd-kit's frames say ``task``), in the order looked for."""


def id_column(frame: pd.DataFrame, given: str | None, source: str) -> str:
    """The column of ``frame`` with the item ids: ``given``, else the first of ``ID_COLUMNS`` it has."""
    for name in (given,) if given is not None else ID_COLUMNS:
        if name in frame.columns:
            return name
    wanted = repr(given) if given is not None else " or ".join(repr(c) for c in ID_COLUMNS)
    raise InputError(
        f"missing column {wanted} (columns are: {', '.join(frame.columns)})",
        source=source,
        hint="Name the column with the item ids with --item-column.",
    )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV, JSONL or Parquet file; text columns stay text (ids keep leading zeros)."""
    fmt = table_format(path)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_csv(path, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False, na_values=[])
    except FileNotFoundError as exc:
        raise InputError("no such file", source=str(path)) from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError("the file is empty", source=str(path)) from exc
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise InputError(f"cannot parse the file as {fmt.upper()} ({str(exc).strip()})", source=str(path)) from exc
    if frame.empty:
        raise InputError("the file has no rows", source=str(path))
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a frame in the format its suffix names (no index)."""
    fmt = table_format(path)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, sep="," if fmt == "csv" else "\t", index=False)


def read_answers(
    path: str | Path,
    *,
    labels: LabelSpace | None = None,
    task: str = "task",
    worker: str = "worker",
    label: str = "label",
    duplicates: DuplicatePolicy = "first",
) -> tuple[Answers, pd.Series | None]:
    """Answers from a table file, or from a Toloka assignments TSV (then also its golden labels)."""
    from crowdloop.io.toloka import is_toloka, read_toloka

    frame = read_table(path)
    gold = None
    if is_toloka(frame):
        frame, gold = read_toloka(frame, source=str(path))
        task, worker, label = "task", "worker", "label"
    answers = Answers.from_frame(
        frame, labels=labels, task=task, worker=worker, label=label, duplicates=duplicates, source=str(path)
    )
    return answers, gold


def read_gold(path: str | Path, *, task: str = "task") -> pd.Series:
    """Gold labels (item -> true label) from a table with a task column and a ``label``,
    ``true_label`` or ``truth`` column."""
    frame = read_table(path)
    column = next((c for c in ("label", "true_label", "truth", "gold") if c in frame.columns), None)
    if task not in frame.columns or column is None:
        raise InputError(
            f"expected columns '{task}' and 'label' (columns are: {', '.join(frame.columns)})", source=str(path)
        )
    for name in (task, column):
        empty = frame[name].astype(str).str.strip().eq("").to_numpy()
        if empty.any():
            raise InputError("empty value", source=str(path), rows=(empty.nonzero()[0] + 2).tolist(), field=name)
    dup = frame[task].duplicated().to_numpy()
    if dup.any():
        raise InputError("task listed twice", source=str(path), rows=(dup.nonzero()[0] + 2).tolist(), field=task)
    return pd.Series(frame[column].to_numpy(), index=pd.Index(frame[task].to_numpy(), name="task"), name="label")
