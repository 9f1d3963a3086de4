"""Moving blobs between local files and S3 objects: multipart uploads hashed as they stream,
parallel ranged downloads hashed in order, and a seekable reader over ranged GETs.

Parts go up and come down on several connections at once, as boto3's own transfer manager does,
while one thread hashes them in order: SHA-256 is sequential, the network need not be.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path

from botocore.exceptions import ClientError

from ollamakit.blobs import BlobWriter
from ollamakit.errors import DigestMismatch

PART_SIZE = 16 << 20  # S3 needs parts of at least 5 MiB (the last may be smaller)
MAX_PARTS = 10_000  # S3's limit on parts per upload
CONCURRENCY = 8  # parts in flight at once, each way
GROW_EVERY = 1000  # parts of one size, when a blob's size is not known in advance


class AlreadyExists(Exception):
    """The object was there before this upload finished (If-None-Match refused it)."""


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def status_of(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_missing(exc: ClientError) -> bool:
    return status_of(exc) == 404 or error_code(exc) in ("404", "NoSuchKey", "NotFound")


def is_precondition_failure(exc: ClientError) -> bool:
    # 412: the condition did not hold; 409 ConditionalRequestConflict: a concurrent write to the
    # same key won the race while ours was in flight (S3 says retry).
    return status_of(exc) in (409, 412) or error_code(exc) in (
        "PreconditionFailed",
        "ConditionalRequestConflict",
    )


def server_time(response: dict) -> float | None:
    """The S3 server's clock at the response (its Date header): times compared with objects'
    LastModified must come from the same clock, not this machine's."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        return None


def part_size_for(size: int, smallest: int | None = None) -> int:
    return max(smallest or PART_SIZE, -(-size // MAX_PARTS))


class MultipartWriter(BlobWriter):
    """A blob streamed into object ``key`` as it is written: bytes gather into one part, each
    full part goes up while the next gathers (``CONCURRENCY`` in flight at most, so memory is
    bounded by a few parts whatever the blob's size), and the commit completes the upload only
    if the object is still absent (``If-None-Match: *``). A blob smaller than a part is one
    conditional PUT. Aborting, or a digest that does not match, aborts the multipart upload:
    S3 keeps nothing of it. ``size``, when known, picks the part size; otherwise parts grow as
    the blob does, so that S3's 10,000 parts reach any size."""

    def __init__(
        self,
        client,
        bucket: str,
        key: str,
        digest: str,
        size: int | None = None,
        part_size: int | None = None,
    ):
        super().__init__(digest)
        self.client, self.bucket, self.key = client, bucket, key
        self._first_part = part_size or PART_SIZE
        self._fixed_part = part_size_for(size, part_size) if size is not None else None
        self._pieces: list[memoryview] = []  # the part gathering, joined once it is whole
        self._gathered = 0
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: deque = deque()
        self._parts: list[dict] = []
        self.written_at: float | None = None  # the server's time of the commit

    def _part_size(self) -> int:
        if self._fixed_part is not None:
            return self._fixed_part
        return self._first_part << (len(self._parts) + len(self._in_flight)) // GROW_EVERY

    def _send(self, data: bytes) -> None:
        # A view may be reused by its owner once this returns: bytes are kept (``bytes`` of
        # bytes is the same object). A part is joined from its pieces once whole, one copy of
        # each byte; the last part stays here until the commit, which sends it however small.
        view = memoryview(bytes(data))
        while self._gathered + len(view) > (size := self._part_size()):
            head, view = view[: size - self._gathered], view[size - self._gathered :]
            self._send_part(b"".join([*self._pieces, head]))
            self._pieces, self._gathered = [], 0
        if view:
            self._pieces.append(view)
            self._gathered += len(view)

    def _send_part(self, data: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)[
                "UploadId"
            ]
            self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="s3-part")
        while len(self._in_flight) >= CONCURRENCY:
            self._parts.append(self._in_flight.popleft().result())
        number = len(self._parts) + len(self._in_flight) + 1
        assert self._pool is not None
        self._in_flight.append(self._pool.submit(self._upload_part, number, data))

    def _upload_part(self, number: int, data: bytes) -> dict:
        response = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _commit(self) -> bool:
        try:
            last = b"".join(self._pieces)
            self._pieces = []
            if self._upload_id is None:
                response = self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=last, IfNoneMatch="*"
                )
            else:
                self._send_part(last)
                while self._in_flight:
                    self._parts.append(self._in_flight.popleft().result())
                response = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                    IfNoneMatch="*",
                )
        except ClientError as exc:
            if not is_precondition_failure(exc):
                raise
            self._abort()  # another writer got there first: its blob is the same bytes
            return False
        self._release()
        self.written_at = server_time(response)
        return True

    def _abort(self) -> None:
        for future in self._in_flight:
            future.cancel()
        self._release()
        if self._upload_id is not None:
            abort(self.client, self.bucket, self.key, self._upload_id)
            self._upload_id = None

    def _release(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # parts already sent finish before the abort
            self._pool = None
        self._in_flight.clear()
        self._pieces, self._gathered = [], 0


def upload_file(
    client, bucket: str, key: str, digest: str, path: Path, part_size: int | None = None
) -> float | None:
    """Upload ``path`` as ``key`` only if no object is there yet, checking on the way that its
    bytes hash to ``digest``. Returns the server's time of the write.

    Raises ``AlreadyExists`` when another writer got there first, ``DigestMismatch`` when the
    file is not what ``digest`` names; either way no upload is left behind.
    """
    size = os.path.getsize(path)
    with (
        MultipartWriter(client, bucket, key, digest, size, part_size) as out,
        open(path, "rb") as fh,
    ):
        while data := fh.read(part_size_for(size, part_size)):
            out.write(data)
        if out.size != size:
            raise OSError(f"{path} changed while it was uploaded")
        if not out.commit():
            raise AlreadyExists(key)
        return out.written_at


def abort(client, bucket: str, key: str, upload_id: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError:
        pass  # an upload left over is aborted by the start-up sweep (remove_leftovers)


def download_to(client, bucket: str, key: str, digest: str, fd: int) -> float:
    """Write object ``key`` to the open file ``fd``, several ranges at once, hashing in order.
    Returns the object's LastModified; raises FileNotFoundError when it is absent and
    ``DigestMismatch`` when its bytes are not ``digest``'s."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_missing(exc):
            raise FileNotFoundError(key) from None
        raise
    size, etag = head["ContentLength"], head["ETag"]
    part_size = part_size_for(size)

    def fetch(start: int) -> bytes:
        end = min(start + part_size, size) - 1
        body = client.get_object(
            Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", IfMatch=etag
        )["Body"]
        with body:
            data = body.read()
        if len(data) != end - start + 1:
            raise OSError(f"short read of {key} at {start}")
        return data

    sha, pending = hashlib.sha256(), deque()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        starts = iter(range(0, size, part_size))
        for start in starts:
            pending.append((start, pool.submit(fetch, start)))
            if len(pending) >= CONCURRENCY:
                _write_next(pending, sha, fd)
        while pending:
            _write_next(pending, sha, fd)
    got = "sha256:" + sha.hexdigest()
    if got != digest:
        raise DigestMismatch(digest, got)
    return head["LastModified"].timestamp()


def _write_next(pending: deque, sha, fd: int) -> None:
    start, future = pending.popleft()
    data = future.result()
    sha.update(data)
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, start)
        view, start = view[written:], start + written


class RangedReader(io.RawIOBase):
    """A seekable, read-only file over an S3 object: reads stream one GET from the current
    position, and a seek starts the next GET at the new one (an HTTP Range request)."""

    def __init__(self, client, bucket: str, key: str, size: int, etag: str):
        super().__init__()
        self.client, self.bucket, self.key, self.size, self.etag = client, bucket, key, size, etag
        self.position = 0
        self._body = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        target = max(0, base + offset)
        if target != self.position:
            self._drop_body()
            self.position = target
        return self.position

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self.size - self.position)
        if want <= 0:
            return 0
        if self._body is None:
            response = self.client.get_object(
                Bucket=self.bucket,
                Key=self.key,
                Range=f"bytes={self.position}-{self.size - 1}",
                IfMatch=self.etag,
            )
            self._body = response["Body"]
        data = self._body.read(want)
        if not data:
            raise OSError(f"{self.key} ended early at byte {self.position}")
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()
