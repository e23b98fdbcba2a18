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


def read_table(path: str | Path, *, header: bool = True, sep: str | None = None) -> pd.DataFrame:
    """Read a CSV, TSV, JSONL or Parquet file; text columns stay text (ids keep leading zeros).

    For CSV and TSV, ``sep`` replaces the format's separator and ``header=False`` reads the first
    line as data (the columns are then named 1, 2, ...: their positions)."""
    fmt = table_format(path)
    if (sep is not None or not header) and fmt not in ("csv", "tsv"):
        raise InputError(f"a separator and --no-header apply to CSV and TSV files, not {fmt.upper()}", source=str(path))
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            sep = sep if sep is not None else "," if fmt == "csv" else "\t"
            frame = pd.read_csv(
                path, sep=sep, header=0 if header else None, dtype=str, keep_default_na=False, na_values=[]
            )
            if not header:
                frame.columns = [str(i + 1) for i in range(frame.shape[1])]
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
    header: bool = True,
    sep: str | None = None,
) -> tuple[Answers, pd.Series | None]:
    """Answers from a table file, or from a Toloka assignments TSV (then also its golden labels).

    ``header=False``: the file has no header line; ``task``, ``worker`` and ``label`` are then column
    positions (1 = the first column), by default the first three columns in that order."""
    from crowdloop.io.toloka import is_toloka, read_toloka

    frame = read_table(path, header=header, sep=sep)
    gold = None
    if not header:
        positions = {"task": "1", "worker": "2", "label": "3"}
        task, worker, label = (positions.get(name, name) for name in (task, worker, label))
        _check_positions(frame, (task, worker, label), str(path))
    elif is_toloka(frame):
        frame, gold = read_toloka(frame, source=str(path))
        task, worker, label = "task", "worker", "label"
    else:
        _check_header(frame, (task, worker, label), str(path))
    answers = Answers.from_frame(
        frame,
        labels=labels,
        task=task,
        worker=worker,
        label=label,
        duplicates=duplicates,
        source=str(path),
        first_row=1 if not header else None,
    )
    return answers, gold


def _check_positions(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    bad = [c for c in columns if c not in frame.columns]
    if bad:
        raise InputError(
            f"without a header, columns are given by position 1..{frame.shape[1]}, got {', '.join(bad)}",
            source=source,
            hint="Pass --task-column, --worker-column and --label-column as positions (1 = the first column).",
        )


def _check_header(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    """A missing column is an error; when none of them is there and the header holds numbers,
    the file most likely has no header line, and the error says how to read it."""
    missing = [c for c in columns if c not in frame.columns]
    if not missing:
        return
    found = ", ".join(map(str, frame.columns))
    problem = f"missing column {', '.join(repr(c) for c in missing)} (columns are: {found})"
    if len(missing) == len(columns) and any(_is_number(c) for c in frame.columns):
        raise InputError(
            problem + ": the file looks headerless (its first line holds values)",
            source=source,
            rows=[1],
            hint="Add a header line (task,worker,label), or pass --no-header: the columns are then task, worker, "
            "label in that order, or the positions you give (--task-column 2 --worker-column 1 --label-column 3).",
        )
    raise InputError(
        problem, source=source, rows=[1], hint="Name the columns with --task-column/--worker-column/--label-column."
    )


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


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
