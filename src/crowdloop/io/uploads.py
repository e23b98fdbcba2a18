"""Files read within limits: at most ``max_bytes`` once decompressed and ``max_rows`` rows, counted
while the file streams through a megabyte at a time. A gzip bomb (kilobytes that expand to
gigabytes) is refused as soon as its output passes a limit, never expanded whole, so that a server
spends at most the limits' worth of time and memory on any upload."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from crowdloop.errors import InputError, TooLargeError

CHUNK = 2**20
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_MAX_ROWS = 1_000_000
_SPLIT = "Split the file into parts within the server's upload limits."
MAX_COLUMNS = 1000
"""Columns of a CSV or TSV file (a wide header costs every row)."""
MAX_LINE_BYTES = 2**20
"""Bytes of one line of a CSV, TSV or JSONL file."""


@dataclass(frozen=True)
class UploadLimits:
    """How much of a file is read: ``max_bytes`` of content after decompression, ``max_rows``
    rows (for line-based formats, lines: an upper bound of the rows)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_rows: int = DEFAULT_MAX_ROWS

    def check_rows(self, rows: int, source: str, what: str = "rows") -> None:
        """``TooLargeError`` when ``rows`` exceed ``max_rows``."""
        if rows > self.max_rows:
            raise TooLargeError(f"more than {self.max_rows} {what}", source=source, hint=_SPLIT)

    def check_bytes(self, size: int, source: str) -> None:
        """``TooLargeError`` when ``size`` (decompressed) exceeds ``max_bytes``."""
        if size > self.max_bytes:
            raise TooLargeError(f"larger than {self.max_bytes} bytes once decompressed", source=source, hint=_SPLIT)


def is_gzip(name: str) -> bool:
    return Path(name).suffix.lower() == ".gz"


def read_upload(stream: BinaryIO, name: str, limits: UploadLimits | None = None, *, lines: bool = True) -> bytes:
    """The content of a file, gunzipped when ``name`` ends in ``.gz``. With ``limits``,
    ``TooLargeError`` (naming the file) as soon as the content passes ``limits.max_bytes`` bytes
    or, with ``lines``, ``limits.max_rows`` lines after a header line: the work and the memory
    spent are bounded by the limits, whatever the ratio of compression."""
    max_lines = limits.max_rows + 1 if limits is not None and lines else None  # the header line
    content = bytearray()
    newlines = 0
    reader = gzip.GzipFile(fileobj=stream, mode="rb") if is_gzip(name) else stream
    try:
        while chunk := reader.read(CHUNK):
            content += chunk
            if limits is not None:
                limits.check_bytes(len(content), name)
            if max_lines is not None:
                newlines += chunk.count(b"\n")
                if newlines > max_lines:
                    limits.check_rows(newlines - 1, name, "lines")
    except gzip.BadGzipFile as exc:
        raise InputError(f"not gzip data ({exc})", source=name, hint="Upload the file without .gz.") from None
    except EOFError:
        raise InputError("the gzip data is truncated", source=name) from None
    except zlib.error as exc:
        raise InputError(f"the gzip data is damaged ({exc})", source=name) from None
    return bytes(content)


def check_lines(data: bytes, source: str) -> None:
    """``TooLargeError`` naming the first line longer than ``MAX_LINE_BYTES``."""
    if len(data) <= MAX_LINE_BYTES:
        return
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    lengths = np.diff(ends, prepend=-1, append=len(data)) - 1
    over = np.flatnonzero(lengths > MAX_LINE_BYTES)
    if over.size:
        line = int(over[0])
        raise TooLargeError(
            f"a line longer than {MAX_LINE_BYTES} bytes ({int(lengths[line])})", source=source, rows=[line + 1]
        )


def check_columns(count: int, source: str) -> None:
    """``TooLargeError`` when a header has more than ``MAX_COLUMNS`` columns."""
    if count > MAX_COLUMNS:
        raise TooLargeError(f"{count} columns, at most {MAX_COLUMNS}", source=source, rows=[1])
