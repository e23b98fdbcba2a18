"""Files read within limits: columns, line length, and the decompressed size and lines of an upload
(a gzip bomb is refused while it streams, in bounded time and memory)."""

from __future__ import annotations

import gzip
import io
import json
import time
import tracemalloc

import pytest

from crowdloop.errors import InputError, TooLargeError
from crowdloop.io.answer_tables import parse_answer_table
from crowdloop.io.items import parse_items, read_item_upload, read_items
from crowdloop.io.uploads import MAX_COLUMNS, MAX_LINE_BYTES, UploadLimits, read_upload


def test_many_columns_are_refused_at_once_naming_the_header():
    header = ",".join(f"c{i}" for i in range(20_000))
    started = time.process_time()
    with pytest.raises(InputError, match=f"at most {MAX_COLUMNS}") as error:
        parse_items(f"id,{header}\n1,{',' * 19_999}\n", "csv", source="wide.csv")
    assert time.process_time() - started < 1.0
    assert error.value.source == "wide.csv" and error.value.rows == [1]


def test_a_repeated_column_is_found_in_linear_time_and_named():
    header = ["id", *(f"c{i}" for i in range(MAX_COLUMNS - 3)), "c7", "c9"]
    with pytest.raises(InputError, match="'c7' appears twice") as error:
        parse_items(",".join(header) + "\n" + ",".join("x" * len(header)) + "\n", "csv", source="dup.csv")
    assert error.value.rows == [1] and error.value.field == "c7"


def test_a_line_over_the_limit_names_its_line():
    long = "x" * (MAX_LINE_BYTES + 1)
    with pytest.raises(InputError, match="longer than") as error:
        parse_items(f"id,title\n1,short\n2,{long}\n", "csv", source="long.csv")
    assert error.value.rows == [3]
    with pytest.raises(InputError, match="longer than") as error:
        parse_items(json.dumps({"id": 1}) + "\n" + json.dumps({"id": 2, "t": long}) + "\n", "jsonl")
    assert error.value.rows == [2]
    fields = [f"f{k}" for k in range(10)]
    wide = ",".join(["1", *("x" * 100_000 for _ in fields)])  # 1 MB: under the limit
    assert len(wide) < MAX_LINE_BYTES and len(parse_items(f"id,{','.join(fields)}\n{wide}\n", "csv")) == 1


def _bomb(rows: int) -> bytes:
    """A gzip file of ``rows`` answer rows (a few hundred KB expanding to ``rows`` x 20 bytes)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        gz.write(b"task,worker,label\n")
        block = b"item0001,worker01,a\n" * 50_000
        for _ in range(rows // 50_000):
            gz.write(block)
    return out.getvalue()


def test_a_gzip_bomb_is_refused_while_streaming_in_bounded_memory():
    bomb = _bomb(5_000_000)  # 100 MB of rows
    assert len(bomb) < 500_000
    limits = UploadLimits(max_bytes=64 * 2**20, max_rows=1_000_000)
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(TooLargeError, match="1000000 lines") as error:
            read_upload(io.BytesIO(bomb), "answers.csv.gz", limits)
        elapsed = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0 and peak < 32 * 2**20, (elapsed, peak)
    assert error.value.source == "answers.csv.gz"
    with pytest.raises(TooLargeError, match="bytes"):
        read_upload(io.BytesIO(bomb), "answers.csv.gz", UploadLimits(max_bytes=2**20, max_rows=10**9))


def test_uploads_within_the_limits_are_read_whole():
    text = b"task,worker,label\n" + b"".join(b"t%d,w,a\n" % i for i in range(1000))
    assert read_upload(io.BytesIO(gzip.compress(text)), "a.csv.gz", UploadLimits()) == text
    assert read_upload(io.BytesIO(text), "a.csv", UploadLimits()) == text
    with pytest.raises(TooLargeError):
        read_upload(io.BytesIO(text), "a.csv", UploadLimits(max_rows=100))
    with pytest.raises(InputError, match="not gzip"):
        read_upload(io.BytesIO(text), "a.csv.gz", UploadLimits())
    with pytest.raises(InputError, match="truncated"):
        read_upload(io.BytesIO(gzip.compress(text)[:-20]), "a.csv.gz", UploadLimits())


def test_gzipped_item_files_are_read_within_the_limits(tmp_path):
    text = b"id,title\n" + b"".join(b"i%d,t\n" % k for k in range(50))
    items = read_item_upload(io.BytesIO(gzip.compress(text)), "items.csv.gz", limits=UploadLimits())
    assert [i.external_id for i in items[:2]] == ["i0", "i1"] and len(items) == 50
    with pytest.raises(TooLargeError, match="more than 10 lines"):
        read_item_upload(io.BytesIO(gzip.compress(text)), "items.csv.gz", limits=UploadLimits(max_rows=10))
    tasks = json.dumps([{"id": k, "data": {"t": "x"}} for k in range(20)]).encode()
    with pytest.raises(TooLargeError, match="more than 10 items"):
        read_item_upload(io.BytesIO(tasks), "tasks.json", limits=UploadLimits(max_rows=10))
    (tmp_path / "items.csv.gz").write_bytes(gzip.compress(text))
    assert len(read_items(tmp_path / "items.csv.gz")) == 50


def test_answer_tables_have_the_same_column_and_line_limits():
    wide = ("task,worker,label," + ",".join(f"c{i}" for i in range(40_000)) + "\nt,w,a" + ",x" * 40_000 + "\n").encode()
    started = time.process_time()
    with pytest.raises(TooLargeError, match=f"at most {MAX_COLUMNS}") as error:
        parse_answer_table(io.BytesIO(wide), "wide.csv", UploadLimits())
    assert time.process_time() - started < 0.5 and error.value.rows == [1]
    long = b"task,worker,label\nt,w,a\nt2,w," + b"a" * (MAX_LINE_BYTES + 1) + b"\n"
    with pytest.raises(TooLargeError, match="a line longer than") as error:
        parse_answer_table(io.BytesIO(long), "long.csv", UploadLimits())
    assert error.value.rows == [3]
    table = parse_answer_table(io.BytesIO(b"task,worker,label\nt,w,a\n"), "ok.csv", UploadLimits())
    assert table.to_dict("records") == [{"task": "t", "worker": "w", "label": "a"}]
