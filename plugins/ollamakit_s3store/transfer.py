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

from ollamakit.errors import DigestMismatch

PART_SIZE = 16 << 20  # S3 needs parts of at least 5 MiB (the last may be smaller)
MAX_PARTS = 10_000  # S3's limit on parts per upload
CONCURRENCY = 8  # parts in flight at once, each way


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


def part_size_for(size: int) -> int:
    return max(PART_SIZE, -(-size // MAX_PARTS))


def upload_file(client, bucket: str, key: str, digest: str, path: Path) -> float | None:
    """Upload ``path`` as ``key`` only if no object is there yet, checking on the way that its
    bytes hash to ``digest``. Returns the server's time of the write.

    Raises ``AlreadyExists`` when another writer got there first, ``DigestMismatch`` when the
    file is not what ``digest`` names; either way no upload is left behind.
    """
    size = os.path.getsize(path)
    part_size = part_size_for(size)
    with open(path, "rb") as fh:
        if size <= part_size:
            data = fh.read(part_size + 1)
            got = "sha256:" + hashlib.sha256(data).hexdigest()
            if got != digest or len(data) != size:
                raise DigestMismatch(digest, got)
            try:
                return server_time(
                    client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                )
            except ClientError as exc:
                if is_precondition_failure(exc):
                    raise AlreadyExists(key) from None
                raise
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        try:
            parts = _upload_parts(client, bucket, key, upload_id, fh, digest, part_size)
            response = client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
            return server_time(response)
        except BaseException as exc:
            abort(client, bucket, key, upload_id)
            if isinstance(exc, ClientError) and is_precondition_failure(exc):
                raise AlreadyExists(key) from None
            raise


def _upload_parts(client, bucket, key, upload_id, fh, digest: str, part_size: int) -> list[dict]:
    sha, parts, pending = hashlib.sha256(), [], deque()

    def send(number: int, data: bytes) -> dict:
        response = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        number = 0
        while data := fh.read(part_size):
            number += 1
            sha.update(data)
            pending.append(pool.submit(send, number, data))
            while len(pending) >= CONCURRENCY:  # bounded memory: CONCURRENCY parts at most
                parts.append(pending.popleft().result())
        while pending:
            parts.append(pending.popleft().result())
    got = "sha256:" + sha.hexdigest()
    if got != digest:
        raise DigestMismatch(digest, got)  # the caller aborts: nothing is completed
    return parts


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
