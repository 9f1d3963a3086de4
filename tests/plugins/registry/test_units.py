"""The pieces: part plans and their state files, the out-of-order hash, byte ranges."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import threading

from ollamakit_registry import parts
from ollamakit_registry.hashing import CursorHash
from ollamakit_registry.push import upload_parts
from ollamakit_registry.serve import FileRange, parse_range

MB = 1000 * 1000


def test_part_plan_covers_the_blob_exactly():
    for total in (0, 1, parts.MIN_PART, parts.MIN_PART + 1, 250 * MB, 40 * 1000 * MB):
        plan = parts.plan(total)
        assert sum(p.size for p in plan) == total
        assert all(p.offset == sum(q.size for q in plan[: p.n]) for p in plan)
        assert all(parts.MIN_PART <= p.size <= parts.MAX_PART for p in plan[:-1])
    assert len(parts.plan(250 * MB)) == 16
    assert [p.size for p in upload_parts(250 * MB)] == [100 * MB, 100 * MB, 50 * MB]
    assert upload_parts(0) == []


def test_state_files_round_trip_and_reject_foreign_plans(tmp_path):
    digest = "sha256:" + "ab" * 32
    partial = parts.PartialFile(tmp_path, digest)
    total = 40 * MB
    plan = partial.load(total)
    with partial.opened(total, plan) as (fd, blob):
        os.pwrite(fd, b"abc", 5)
        assert bytes(blob[4:9]) == b"\0abc\0"
    assert partial.path.read_bytes()[5:8] == b"abc"
    assert (
        partial.path.stat().st_size == total and partial.path.name == f"sha256-{'ab' * 32}-partial"
    )
    plan[1].completed = 1234
    partial.save(plan[1])
    assert json.loads(partial.state_path(1).read_text()) == {
        "N": 1,
        "Offset": plan[1].offset,
        "Size": plan[1].size,
        "Completed": 1234,
    }
    assert [p.completed for p in partial.load(total)] == [0, 1234, 0]
    assert [p.completed for p in partial.load(total + 1)] == [0, 0, 0]  # another size: start over
    for bad in (
        {"N": 1, "Offset": 0, "Size": plan[1].size, "Completed": 5},
        {**json.loads(plan[1].state()), "Completed": -1},
        {**json.loads(plan[1].state()), "Completed": plan[1].size + 1},
        {**json.loads(plan[1].state()), "Completed": True},
        [1],
    ):
        partial.state_path(1).write_text(json.dumps(bad))
        assert partial.load(total)[1].completed == 0
    partial.state_path(1).write_bytes(b"{" * 10_000)
    assert partial.load(total)[1].completed == 0
    partial.remove()
    assert list(tmp_path.iterdir()) == []


def test_cursor_hash_with_parts_landing_in_any_order(tmp_path):
    data = os.urandom(3 * MB + 17)
    plan = [parts.Part(n, o, min(MB, len(data) - o)) for n, o in enumerate(range(0, len(data), MB))]
    blob = memoryview(bytearray(len(data)))
    hasher = CursorHash(blob, plan)
    plan_order = list(plan)
    random.Random(7).shuffle(plan_order)  # parts start in any order and run at once

    def write_part(part):
        for offset in range(part.offset, part.offset + part.size, 64 * 1024):
            piece = data[offset : min(offset + 64 * 1024, part.offset + part.size)]
            blob[offset : offset + len(piece)] = piece
            part.completed += len(piece)
            hasher.wrote(offset, memoryview(piece))

    threads = [threading.Thread(target=write_part, args=(p,)) for p in plan_order]
    for thread in threads:
        thread.start()
        hasher.catch_up()
    for thread in threads:
        thread.join()
    hasher.catch_up()
    assert hasher.finished
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_parse_range():
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 10)
    assert parse_range("bytes=90-", 100) == (90, 10)
    assert parse_range("bytes=90-1000", 100) == (90, 10)
    assert parse_range("bytes=-10", 100) == (90, 10)
    assert parse_range("bytes=-1000", 100) == (0, 100)
    assert parse_range("bytes=100-", 100) is False
    assert parse_range("bytes=5-4", 100) is False
    assert parse_range("bytes=-0", 100) is False
    assert parse_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole blob
    assert parse_range("items=0-1", 100) is None


def test_file_range_never_reads_outside_its_window():
    window = FileRange(io.BytesIO(bytes(range(100))), 10, 20)
    assert window.tell() == 0
    window.seek(0, 2)
    assert window.tell() == 20
    window.seek(0)
    assert window.read(5) == bytes(range(10, 15))
    assert window.read() == bytes(range(15, 30))
    assert window.read() == b""
