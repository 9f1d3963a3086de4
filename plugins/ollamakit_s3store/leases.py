"""Keeping a blob that a replica is about to reference from being swept by another.

The kernel collects garbage by mark and sweep: it reads every manifest (mark), then deletes the
candidates none references (sweep). Between the two, another replica may write a manifest that
references one of them. Two small objects per blob close that gap, in the manner of Dekker's
mutual exclusion (each side writes its flag, then reads the other's; S3 reads are strongly
consistent, so one of the two always sees the other):

    leases/sha256-<hex>/<holder>    a writer of a manifest that references the blob (one per
                                    process); it stays for the grace period after the write
    leases/sha256-<hex>/~sweeping   a sweeper deleting the blob, while it does

A writer puts its lease, then checks that no sweeper is at work and the blob exists, then writes
the manifest. A sweeper puts its mark, then lists the leases: a lease younger than the grace
period from another process keeps the blob (its writer may be between its check and its
manifest, or the manifest may be newer than the sweeper's mark phase); otherwise the blob goes.
Times are compared on the S3 server's clock. A process's own leases are not in its way: its
kernel's model store already orders its manifest writes and sweeps under one lock.
"""

from __future__ import annotations

import logging
import time

from botocore.exceptions import ClientError

from .transfer import is_missing, server_time

log = logging.getLogger(__name__)

SWEEPING = "~sweeping"
WAIT_FOR_SWEEPER = 10.0  # seconds a writer waits for a sweeper to finish with a blob


class Leases:
    def __init__(self, client, bucket: str, prefix: str, holder: str, grace: float):
        self.client, self.bucket, self.prefix, self.holder, self.grace = (
            client,
            bucket,
            prefix,
            holder,
            grace,
        )

    def _folder(self, name: str) -> str:
        return f"{self.prefix}leases/{name}/"

    def take(self, name: str) -> None:
        """Say that this process is about to reference blob ``name`` (``sha256-<hex>``)."""
        self.client.put_object(Bucket=self.bucket, Key=self._folder(name) + self.holder, Body=b"")

    def wait_for_sweeper(self, name: str) -> None:
        """Return once no sweeper is deleting blob ``name`` (a mark older than the grace period
        was left by a sweeper that died, and is ignored)."""
        deadline = time.monotonic() + WAIT_FOR_SWEEPER
        while True:
            try:
                head = self.client.head_object(
                    Bucket=self.bucket, Key=self._folder(name) + SWEEPING
                )
            except ClientError as exc:
                if is_missing(exc):
                    return
                raise
            now = server_time(head) or time.time()
            if now - head["LastModified"].timestamp() > self.grace or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def sweep(self, name: str, delete) -> bool:
        """Call ``delete()`` unless another process holds a live lease on blob ``name``;
        returns whether it did. Expired leases are removed on the way."""
        mark = self._folder(name) + SWEEPING
        now = (
            server_time(self.client.put_object(Bucket=self.bucket, Key=mark, Body=b""))
            or time.time()
        )
        try:
            listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._folder(name))
            live, expired = [], []
            for item in listing.get("Contents", []):
                holder = item["Key"].rsplit("/", 1)[1]
                if holder == SWEEPING:
                    continue
                young = now - item["LastModified"].timestamp() <= self.grace
                if young and holder != self.holder:
                    live.append(holder)
                elif not young:
                    expired.append(item["Key"])
            if live:
                log.info("blob %s kept: another replica is writing a manifest that uses it", name)
                return False
            delete()
            for key in expired:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            return True
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=mark)

    def remove_expired(self) -> int:
        """Start-up: remove leases and sweepers' marks older than the grace period."""
        removed = 0
        now = time.time()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}leases/"):
            now = server_time(page) or now
            for item in page.get("Contents", []):
                if now - item["LastModified"].timestamp() > self.grace:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed
