"""Storage driver ``s3``: blobs and manifests in an S3 bucket, in Ollama's layout as object keys,
so that several ``ollamakit serve`` processes share one model store.

    <prefix>blobs/sha256-<hex>
    <prefix>manifests/<host>/<namespace>/<model>/<tag>
    <prefix>leases/sha256-<hex>/...      (see ``leases``: what keeps a blob in use from a sweep)
    <prefix>names/<host>/<namespace>/<model>/<tag>, in lower case: the spelling a name is
                                         made under (``_claim``: case variants made at once)

Settings (environment): ``OLLAMAKIT_S3_BUCKET`` (required), ``OLLAMAKIT_S3_PREFIX``,
``OLLAMAKIT_S3_CACHE_SIZE`` (bytes, or with a K/M/G/T suffix; default 100G) and
``OLLAMAKIT_S3_GC_GRACE`` (seconds; default 3600) and ``OLLAMAKIT_S3_PART_SIZE`` (the size of
a multipart upload's parts, at least S3's 5M; default 16M). The endpoint, region and credentials come
from boto3's usual places (``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``, ``AWS_PROFILE``, the
shared config files, instance roles).

Blobs stream into the bucket as they are written (``blob_writer``: an upload's body, a pull),
in multipart parts sent while the next gathers and hashed on the way (what is completed is what
the digest names; anything else is aborted), and are created only if absent
(``If-None-Match: *``), so of two racing uploads one is new. A blob the kernel already holds in
a local file (``put_blob``) goes up the same way and stays in the cache. Models run from ``cache.BlobCache``, a local copy in ``<models>/blobs``. Manifests are
written and deleted with conditions on what was there (``If-None-Match: *`` to create,
``If-Match`` its ETag to replace or delete), so no write lands on a version it did not see; a
new name first claims its lower-case form the same way, so that ``Tiny`` and ``tiny`` made at
once on two replicas end as one manifest, as names are matched case-insensitively.
"""

from __future__ import annotations

import io
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from ollamakit import manifest as mf
from ollamakit.digests import blob_filename, is_digest, parse_digest
from ollamakit.errors import BadRequest, OllamaError
from ollamakit.interfaces import Storage
from ollamakit.names import ModelName
from ollamakit.scratch import OwnedFolder, remove_dead

from .cache import BlobCache
from .leases import Leases
from .transfer import (
    AlreadyExists,
    MultipartWriter,
    RangedReader,
    abort,
    download_to,
    is_missing,
    is_precondition_failure,
    server_time,
    upload_file,
)

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "sha256-tmp-"  # this process's temporary folder in the cache, as fs names it
DEFAULT_CACHE_SIZE = "100G"
DEFAULT_PART_SIZE = "16M"
MIN_PART_SIZE = 5 << 20  # S3 refuses smaller parts (but the last)
DEFAULT_GRACE = 3600.0  # Ollama's layerPruneGracePeriod
WRITE_ATTEMPTS = 12  # conditional manifest writes retried when another replica wrote in between
CLAIM_SECONDS = 60.0  # a name's claim without its manifest is stale after this
MAX_CLAIM_BYTES = 1024  # a claim holds one spelling of a name
VERSIONS_KEPT = 4096  # manifests whose last seen ETag is remembered
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def setting(name: str) -> str:
    """An environment variable, trimmed of spaces and quotes as the kernel's settings are."""
    return os.environ.get(name, "").strip().strip("'\"")


def backoff(attempt: int) -> None:
    """Before another try of a write that lost a race: a random wait that doubles each time,
    so that the writers of one name stop colliding."""
    if attempt:
        time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 7)))


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (bytes, or a number with K, M, G or T)")
    return int(match.group(1)) << (10 * " KMGT".index(match.group(2).upper() or " "))


_session_lock = threading.Lock()
_session = None


def make_client():
    """An S3 client configured boto3's usual ways. One session per process: building one loads
    botocore's service models again (a few hundred milliseconds)."""
    global _session
    import boto3
    from botocore.config import Config

    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(
            "s3",
            config=Config(max_pool_connections=64, retries={"mode": "standard", "max_attempts": 5}),
        )


class S3Storage(Storage):
    streams_uploads = True

    def __init__(self, kernel):
        super().__init__(kernel)
        self.bucket = setting("OLLAMAKIT_S3_BUCKET")
        if not self.bucket:
            raise ValueError(
                "the s3 storage driver needs OLLAMAKIT_S3_BUCKET (and boto3's usual endpoint and credentials)"
            )
        prefix = setting("OLLAMAKIT_S3_PREFIX").strip("/")
        self.prefix = prefix + "/" if prefix else ""
        try:
            grace = float(setting("OLLAMAKIT_S3_GC_GRACE") or DEFAULT_GRACE)
            cache_size = parse_size(setting("OLLAMAKIT_S3_CACHE_SIZE") or DEFAULT_CACHE_SIZE)
            self.part_size = parse_size(setting("OLLAMAKIT_S3_PART_SIZE") or DEFAULT_PART_SIZE)
            if self.part_size < MIN_PART_SIZE:
                raise ValueError("OLLAMAKIT_S3_PART_SIZE must be at least 5M (S3's smallest part)")
        except ValueError as exc:
            raise ValueError(f"the s3 storage driver's settings: {exc}") from None
        self.client = make_client()
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise ValueError(
                f"the s3 storage driver cannot use bucket {self.bucket!r}: {exc}"
            ) from None
        self.leases = Leases(self.client, self.bucket, self.prefix, uuid.uuid4().hex, grace)
        blobs = Path(kernel.settings.models_dir) / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        self.cache = BlobCache(blobs.resolve(), cache_size)
        self._scratch = OwnedFolder(self.cache.folder, SCRATCH_PREFIX)
        self._versions: OrderedDict[str, str | None] = OrderedDict()
        self._versions_lock = threading.Lock()

    # -- keys

    def _blob_key(self, digest: str) -> str:
        return f"{self.prefix}blobs/{blob_filename(digest)}"

    def _manifest_key(self, parts) -> str:
        if not ModelName(*parts).is_valid():
            raise ValueError(f"invalid model name parts {parts!r}")
        return self.prefix + "manifests/" + "/".join(parts)

    def _head(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise

    # -- blobs

    def has_blob(self, digest: str) -> bool:
        return self._head(self._blob_key(digest)) is not None

    def blob_size(self, digest: str) -> int | None:
        head = self._head(self._blob_key(digest))
        return None if head is None else head["ContentLength"]

    def blob_mtime(self, digest: str) -> float | None:
        cached = self.cache.get(parse_digest(digest))
        if cached is not None:
            return cached.stat().st_mtime
        head = self._head(self._blob_key(digest))
        return None if head is None else head["LastModified"].timestamp()

    def open_blob(self, digest: str):
        """The cached copy when there is one, else the object itself, read as it is sent (a
        seek is a new ranged GET), without filling the cache: a blob served to another
        instance need not push a model out of it."""
        cached = self.cache.get(parse_digest(digest))
        if cached is not None:
            return open(cached, "rb")
        key = self._blob_key(digest)
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"blob {digest} not found")
        return io.BufferedReader(
            RangedReader(self.client, self.bucket, key, head["ContentLength"], head["ETag"]),
            1 << 20,
        )

    def blob_path(self, digest: str) -> Path:
        digest = parse_digest(digest)
        key = self._blob_key(digest)
        return self.cache.fill(
            digest,
            self.scratch_dir(),
            lambda fd: download_to(self.client, self.bucket, key, digest, fd),
        )

    def put_blob(self, digest: str, source: Path) -> bool:
        source = Path(source)
        try:
            digest = parse_digest(digest)
            key = self._blob_key(digest)
            if self._head(key) is not None:
                return False
            try:
                written = upload_file(self.client, self.bucket, key, digest, source, self.part_size)
            except AlreadyExists:
                return False
            try:
                self.cache.adopt(
                    digest, source, written or time.time()
                )  # the local copy is the cache's
            except OSError as exc:  # on another filesystem, say: the cache fills when it is used
                log.info("blob %s stored, not cached: %s", digest, exc)
            return True
        finally:
            source.unlink(missing_ok=True)

    def blob_writer(self, digest: str, size: int | None = None) -> MultipartWriter:
        """Straight to the bucket, part by part (``transfer.MultipartWriter``); the local cache
        fills when the blob is first used."""
        digest = parse_digest(digest)
        key = self._blob_key(digest)
        return MultipartWriter(self.client, self.bucket, key, digest, size, self.part_size)

    def delete_blob(self, digest: str) -> None:
        digest = parse_digest(digest)
        key = self._blob_key(digest)

        def delete():
            self.client.delete_object(Bucket=self.bucket, Key=key)
            self.cache.discard(digest)

        self.leases.sweep(blob_filename(digest), delete)

    def list_blobs(self):
        for item in self._list(f"{self.prefix}blobs/"):
            name = item["Key"].rsplit("/", 1)[1]
            if is_digest(name):
                yield "sha256:" + name[7:]

    def _list(self, prefix: str):
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            yield from page.get("Contents", [])

    # -- manifests

    def read_manifest(self, parts) -> bytes | None:
        key = self._manifest_key(parts)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                self._saw(key, None)
                return None
            raise
        self._saw(key, response["ETag"])
        with response["Body"] as body:
            return body.read(mf.MAX_MANIFEST_BYTES + 1)  # a bigger one fails to parse, bounded

    def _saw(self, key: str, etag: str | None) -> None:
        """Remember the version of a manifest last seen (None: absent). The kernel reads a
        name just before it replaces or deletes it, so that version is the one to condition on."""
        with self._versions_lock:
            self._versions[key] = etag
            self._versions.move_to_end(key)
            while len(self._versions) > VERSIONS_KEPT:
                self._versions.popitem(last=False)

    def _version(self, key: str, fresh: bool) -> tuple[bool, str | None]:
        """(exists, ETag) of manifest ``key``: as last seen, or asked anew when ``fresh``."""
        if not fresh:
            with self._versions_lock:
                if key in self._versions:
                    etag = self._versions[key]
                    return etag is not None, etag
        head = self._head(key)
        return head is not None, head and head["ETag"]

    def write_manifest(self, parts, data: bytes):
        key = self._manifest_key(parts)
        self._hold_blobs(data)
        for attempt in range(WRITE_ATTEMPTS):
            backoff(attempt)
            exists, etag = self._version(key, fresh=attempt > 0)
            if not exists:  # a new name: unless another spelling of it is being made
                claimed = self._claim(parts)
                if claimed != parts:
                    parts, key = claimed, self._manifest_key(claimed)
                    exists, etag = self._version(key, fresh=True)
            condition = {"IfMatch": etag} if exists else {"IfNoneMatch": "*"}
            try:
                self._saw(
                    key,
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **condition)[
                        "ETag"
                    ],
                )
                return parts
            except ClientError as exc:
                # 404: the version we would replace was deleted meanwhile (S3 answers If-Match so)
                if not (is_precondition_failure(exc) or is_missing(exc)):
                    raise
        raise OllamaError("the model is being written by other requests; try again", 409)

    def _claim_key(self, parts) -> str:
        return self.prefix + "names/" + "/".join(ModelName(*parts).key())

    def _claim(self, parts) -> tuple[str, str, str, str]:
        """The spelling a new name is made under. Names match case-insensitively, so ``Tiny``
        and ``tiny`` made at the same moment on two replicas must land on one key: the first
        to create ``names/<the name in lower case>`` (``If-None-Match: *``) sets the
        spelling, and the others write theirs there. A claim whose spelling has no manifest
        after ``CLAIM_SECONDS`` (its maker failed, or the name was deleted) is taken over."""
        key, spelling = self._claim_key(parts), "/".join(parts).encode()
        for attempt in range(WRITE_ATTEMPTS):
            backoff(attempt)
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=spelling, IfNoneMatch="*")
                return parts
            except ClientError as exc:
                if not is_precondition_failure(exc):
                    raise
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if is_missing(exc):
                    continue  # released meanwhile
                raise
            with response["Body"] as body:
                claimed = tuple(body.read(MAX_CLAIM_BYTES).decode("utf-8", "replace").split("/"))
            if claimed == tuple(parts):
                return parts
            valid = len(claimed) == 4 and ModelName(*claimed).is_valid()
            if valid and ModelName(*claimed).key() == ModelName(*parts).key():
                age = (server_time(response) or time.time()) - response["LastModified"].timestamp()
                if age < CLAIM_SECONDS or self._head(self._manifest_key(claimed)) is not None:
                    return ModelName(*claimed).parts
            try:  # a stale or damaged claim: take it over, if nobody else did meanwhile
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=spelling, IfMatch=response["ETag"]
                )
                return parts
            except ClientError as exc:
                if not (is_precondition_failure(exc) or is_missing(exc)):
                    raise
        raise OllamaError("the model is being written by other requests; try again", 409)

    def _release_claim(self, parts) -> None:
        """After a delete: the name's claim goes, if it is this spelling's, so that the name
        can be made again in another case (as on one machine). Best effort: a claim left
        behind is taken over once it is stale."""
        key = self._claim_key(parts)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            with response["Body"] as body:
                if body.read(MAX_CLAIM_BYTES) != "/".join(parts).encode():
                    return
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=response["ETag"])
        except ClientError as exc:
            if not (is_missing(exc) or is_precondition_failure(exc)):
                log.warning("the claim on %s stays until it is stale: %s", "/".join(parts), exc)

    def _hold_blobs(self, data: bytes) -> None:
        """Lease every blob the manifest ``data`` references, then check each is there: from
        then on no other replica's sweep removes them (see ``leases``). A blob swept since the
        kernel checked it is put back from the local cache when this replica has a copy."""
        try:
            digests = sorted(mf.Manifest.parse(data).digests())
        except BadRequest:
            return  # not a manifest the kernel would write: nothing to keep
        with ThreadPoolExecutor(min(16, len(digests))) as pool:
            list(pool.map(lambda d: self.leases.take(blob_filename(d)), digests))
            missing = [d for d, ok in zip(digests, pool.map(self._still_there, digests)) if not ok]
        if missing:
            raise BadRequest(f"manifest references missing blob {missing[0]}")

    def _still_there(self, digest: str) -> bool:
        self.leases.wait_for_sweeper(blob_filename(digest))
        if self.has_blob(digest):
            return True
        cached = self.cache.get(digest)
        if cached is None:
            return False
        log.info(
            "blob %s was swept while a manifest was being written; putting it back from the cache",
            digest,
        )
        try:
            upload_file(
                self.client, self.bucket, self._blob_key(digest), digest, cached, self.part_size
            )
        except AlreadyExists:
            pass
        return True

    def delete_manifest(self, parts) -> None:
        key = self._manifest_key(parts)
        for attempt in range(WRITE_ATTEMPTS):
            backoff(attempt)
            exists, etag = self._version(key, fresh=attempt > 0)
            if not exists:
                return
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
                self._saw(key, None)
                self._release_claim(parts)
                return
            except ClientError as exc:
                if is_missing(exc):
                    self._saw(key, None)
                    return
                if not is_precondition_failure(exc):
                    raise
        raise OllamaError("the model is being written by other requests; try again", 409)

    def list_manifests(self):
        start = len(self.prefix) + len("manifests/")
        for item in self._list(f"{self.prefix}manifests/"):
            parts = tuple(item["Key"][start:].split("/"))
            if len(parts) == 4 and ModelName(*parts).is_valid():
                yield parts, item["LastModified"].timestamp()

    # -- housekeeping

    def scratch_dir(self) -> Path:
        return self._scratch.path

    def remove_leftovers(self) -> None:
        """Start-up: this machine's scratch folders of ended processes, and in the bucket the
        multipart uploads and leases left older than the grace period (by replicas that died
        mid-upload, for one)."""
        remove_dead(self.cache.folder, SCRATCH_PREFIX)
        try:
            self._abort_stale_uploads()
            self.leases.remove_expired()
        except (ClientError, BotoCoreError) as exc:
            log.warning("leftovers in the bucket stay until the next start-up: %s", exc)

    def uploads_in_flight(self) -> list[dict]:
        """The multipart uploads begun under this store's prefix and neither completed nor
        aborted (the storage contract checks that an aborted writer leaves none)."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}blobs/")
        return [upload for page in pages for upload in page.get("Uploads", [])]

    def _abort_stale_uploads(self) -> None:
        now = time.time()
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}blobs/"):
            now = server_time(page) or now
            for upload in page.get("Uploads", []):
                if now - upload["Initiated"].timestamp() > self.leases.grace:
                    abort(self.client, self.bucket, upload["Key"], upload["UploadId"])

    def close(self) -> None:
        self._scratch.close()
        self.client.close()

    def close_at_signal(self) -> None:
        self._scratch.remove_now()
