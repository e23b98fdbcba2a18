"""Answers people already have, as a table: a crowd-kit frame (``task``, ``worker``, ``label`` in
CSV, TSV, JSONL or Parquet) or a Toloka assignments TSV (rejected assignments dropped)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from crowdloop.errors import InputError
from crowdloop.io.tables import read_table, table_format
from crowdloop.io.toloka import is_toloka, read_toloka
from crowdloop.io.uploads import UploadLimits, check_columns, check_lines, is_gzip, read_upload

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


def parse_answer_table(stream: BinaryIO, name: str, limits: UploadLimits | None = None) -> pd.DataFrame:
    """``read_answer_table`` of an uploaded file; ``name`` (its file name) gives the format, and
    ``.gz`` means gzipped. Read within ``limits`` (``TooLargeError`` past them: see ``read_upload``;
    a Parquet file's rows and decompressed size are read from its footer before its data), and for
    text formats within ``MAX_LINE_BYTES`` per line and ``MAX_COLUMNS`` columns."""
    fmt = table_format(name)  # an unknown suffix fails before anything is read
    content = read_upload(stream, name, limits, lines=fmt != "parquet")
    if fmt != "parquet":
        check_lines(content, name)
    if fmt in ("csv", "tsv"):  # the header's separators: an upper bound of its columns
        check_columns(content[: content.find(b"\n")].count(b"," if fmt == "csv" else b"\t") + 1, name)
    suffix = Path(name[: -len(".gz")] if is_gzip(name) else name).suffix
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"answers{suffix}"
        path.write_bytes(content)
        del content
        if fmt == "parquet" and limits is not None:
            _check_parquet(path, name, limits)
        frame = read_answer_table(path, source=name)
    if limits is not None:
        limits.check_rows(len(frame), name)
    return frame


def _check_parquet(path: Path, name: str, limits: UploadLimits) -> None:
    """A Parquet file's rows and uncompressed size against ``limits``, from its footer."""
    try:
        import pyarrow.parquet as pq

        metadata = pq.read_metadata(path)
    except ImportError:
        return  # reading the file says what is missing
    except (ValueError, OSError) as exc:  # pyarrow's errors for a damaged file
        raise InputError(f"cannot parse the file as PARQUET ({exc})", source=name) from None
    limits.check_rows(metadata.num_rows, name)
    limits.check_bytes(sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)), name)
