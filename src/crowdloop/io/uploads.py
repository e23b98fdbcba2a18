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

from crowdloop.errors import InputError, TooLargeError

CHUNK = 2**20
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class UploadLimits:
    """How much of a file is read: ``max_bytes`` of content after decompression, ``max_rows``
    rows (for line-based formats, lines: an upper bound of the rows)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_rows: int = DEFAULT_MAX_ROWS

    def check_rows(self, rows: int, source: str, what: str = "rows") -> None:
        """``TooLargeError`` when ``rows`` exceed ``max_rows``."""
        if rows > self.max_rows:
            raise TooLargeError(
                f"more than {self.max_rows} {what}",
                source=source,
                hint="Split the file into parts within the server's upload limits.",
            )


def is_gzip(name: str) -> bool:
    return Path(name).suffix.lower() == ".gz"


def read_upload(stream: BinaryIO, name: str, limits: UploadLimits | None = None, *, lines: bool = True) -> bytes:
    """The content of a file, gunzipped when ``name`` ends in ``.gz``. With ``limits``,
    ``TooLargeError`` (naming the file) as soon as the content passes ``limits.max_bytes`` bytes
    or, with ``lines``, ``limits.max_rows`` lines after a header line: the work and the memory
    spent are bounded by the limits, whatever the ratio of compression."""
    max_bytes = limits.max_bytes if limits is not None else None
    max_lines = limits.max_rows + 1 if limits is not None and lines else None  # the header line
    content = bytearray()
    newlines = 0
    reader = gzip.GzipFile(fileobj=stream, mode="rb") if is_gzip(name) else stream
    try:
        while chunk := reader.read(CHUNK):
            content += chunk
            if max_bytes is not None and len(content) > max_bytes:
                raise TooLargeError(
                    f"larger than {max_bytes} bytes{' once decompressed' if reader is not stream else ''}",
                    source=name,
                    hint="Split the file into parts within the server's upload limits.",
                )
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
