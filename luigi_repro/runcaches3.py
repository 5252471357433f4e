"""The run cache on S3 (``[luigi_repro] run_cache = s3://bucket/prefix``): a team's shared cache.

The layout is the local store's, as object keys under the prefix::

    <prefix>/entries/ab/<sha256 hex>.json    <prefix>/blobs/<algorithm>/cd/<hex>    <prefix>/tmp/

and so are the guarantees (:mod:`luigi_repro.runcachestore`):

* an entry is created only if none exists, by a conditional ``PUT`` (``If-None-Match: *``, which
  S3 answers 412 when the key exists); S3 replaces objects atomically, so a reader never sees
  half of one;
* a blob is only ever published under the digest of its bytes: it is uploaded (or copied on the
  server) to a temporary key, checked, then copied on the server to its name;
* a blob read back is hashed while it is downloaded, and a blob whose bytes are not its name is
  removed (:class:`~luigi_repro.runcachestore.BlobCorrupt`);
* ``touch_entry`` copies the entry onto itself with new metadata, which moves its
  ``LastModified``: listings then say when each entry was last used, with no extra request
  (a blob stored again is marked the same way).

``tmp/`` holds uploads being checked, removed once published; only a process killed meanwhile
leaves one. A bucket lifecycle rule expiring ``<prefix>/tmp/`` after a day (and aborting
incomplete multipart uploads) clears them.

The S3 client is the one S3 outputs use (:func:`luigi_repro.targets.s3.default_client`,
configured by Luigi's ``[s3]`` section and the usual AWS variables); boto3 is imported only
when an S3 cache is opened.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import secrets
import time
from typing import Any, Dict, Iterator, Optional, Tuple

from luigi_repro.atomicfiles import NEW_FILE_FLAGS
from luigi_repro.errors import MissingDependency
from luigi_repro.fingerprint import algorithm_of
from luigi_repro.fsclock import fs_now_ns
from luigi_repro.runcachecopy import SourceChanged, open_source
from luigi_repro.runcacheentry import MAX_ENTRY_BYTES, BlobRef
from luigi_repro.runcaches3objects import (
    SINGLE_COPY_LIMIT,
    HashingSink,
    error_code,
    hash_object,
    is_missing,
    server_copy,
    split_location,
)
from luigi_repro.runcachestore import (
    BlobCorrupt,
    StoredItem,
    blob_name,
    entry_name,
    listed_blob,
    listed_entry,
)
from luigi_repro.statcache import CachedFingerprint, PersistentStatCache, fingerprint_file
from luigi_repro.statstore import StatKey

__all__ = ["S3Store"]

_PRECONDITION_FAILED = ("PreconditionFailed", "412")
#: AWS answers 409 when two conditional writes of one key overlap: the other one wins.
_CONDITIONAL_CONFLICT = ("ConditionalRequestConflict", "409")
_NOT_IMPLEMENTED = ("NotImplemented", "501")


class S3Store:
    """A run cache under an S3 prefix, shared by every process and teammate that can reach it."""

    def __init__(
        self,
        location: str,
        *,
        cache: Optional[PersistentStatCache] = None,
        racy_window_ns: int = 2_000_000_000,
    ) -> None:
        if importlib.util.find_spec("boto3") is None:
            raise MissingDependency("boto3", "s3")
        self.bucket, self.prefix = split_location(location)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._cache = cache
        self._racy_window_ns = racy_window_ns

    @property
    def api(self) -> Any:
        """The boto3 client (the process's shared one, made on first use)."""
        from luigi_repro.targets.s3 import default_client

        return default_client().s3.meta.client

    # --- keys -----------------------------------------------------------------------------------

    def key(self, relative: str) -> str:
        """The object key of a store-relative name (``entries/…``, ``blobs/…``)."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def temporary_key(self) -> str:
        """A fresh key under ``tmp/`` for an object not yet checked."""
        return self.key(f"tmp/{os.getpid()}-{secrets.token_hex(8)}")

    def head(self, key: str) -> Optional[Dict[str, Any]]:
        """``HEAD`` of ``key`` in the store's bucket, or None when there is no such object."""
        try:
            response: Dict[str, Any] = self.api.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if is_missing(exc):
                return None
            raise
        return response

    def delete(self, key: str) -> None:
        """Delete ``key`` (S3 says nothing when it is gone already)."""
        self.api.delete_object(Bucket=self.bucket, Key=key)

    def hash_object(self, key: str, algorithm: str, etag: Optional[str] = None) -> Tuple[str, int]:
        """The fingerprint and size of the object ``key`` (only while it has ``etag``, if
        given), streamed: nothing is written locally."""
        return hash_object(self.api, (self.bucket, key), algorithm, etag)

    # --- entries --------------------------------------------------------------------------------

    def read_entry(self, action_key: str) -> Optional[bytes]:
        try:
            response = self.api.get_object(Bucket=self.bucket, Key=self.key(entry_name(action_key)))
        except Exception as exc:
            if is_missing(exc):
                return None
            raise
        body = response["Body"]
        try:
            data: bytes = body.read(MAX_ENTRY_BYTES + 1)
        finally:
            body.close()
        return data

    def write_entry(self, action_key: str, data: bytes) -> bool:
        key = self.key(entry_name(action_key))
        if self.head(key) is not None:
            return False
        try:
            self.api.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except Exception as exc:
            code = error_code(exc)
            if code in _PRECONDITION_FAILED + _CONDITIONAL_CONFLICT:
                return False  # another worker created it between our HEAD and our PUT
            if code not in _NOT_IMPLEMENTED:
                raise
            # A server that rejects conditional writes (some S3-compatible ones do): the HEAD
            # above is the check. Two workers racing past it each write a whole, valid entry
            # for the same action, and the last one stays; nothing half-written is ever seen.
            self.api.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType="application/json"
            )
        # A server that ignores If-None-Match (without rejecting it) behaves the same way.
        return True

    def remove_entry(self, action_key: str) -> None:
        self.delete(self.key(entry_name(action_key)))

    def touch_entry(self, action_key: str) -> None:
        with contextlib.suppress(Exception):  # gone meanwhile (evicted): nothing to mark
            self.mark_used(self.key(entry_name(action_key)), 0, "application/json")

    def mark_used(self, key: str, size: int, content_type: str) -> None:
        """Move ``key``'s ``LastModified`` to now (listings give it as last use), by copying
        it onto itself on the server with a ``last-used`` metadata; same bytes, same ETag."""
        extra = {
            "MetadataDirective": "REPLACE",
            "Metadata": {"last-used": f"{time.time():.3f}"},
            "ContentType": content_type,
        }
        source = {"Bucket": self.bucket, "Key": key}
        if size < SINGLE_COPY_LIMIT:
            self.api.copy_object(CopySource=source, Bucket=self.bucket, Key=key, **extra)
        else:
            self.api.copy(source, self.bucket, key, ExtraArgs=extra)

    def reuse_blob(self, digest: str, size: int) -> Optional[str]:
        """The ETag of the blob ``digest`` of ``size`` bytes, or None when it is not stored.

        A blob found is marked used now, so that a ``cache gc`` deciding at this moment keeps
        it for the entry about to name it.
        """
        key = self.key(blob_name(digest))
        existing = self.head(key)
        if existing is None or existing.get("ContentLength") != size:
            return None
        with contextlib.suppress(Exception):  # removed meanwhile: stored again by the caller
            self.mark_used(key, size, "binary/octet-stream")
            return str(existing["ETag"])
        return None

    # --- blobs ----------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return self.head(self.key(blob_name(digest))) is not None

    def publish(self, temporary: str, digest: str, size: int) -> str:
        """Copy the checked object ``temporary`` to the blob's name; the blob's ETag.

        No condition on the destination: a blob already there has the same bytes (its name
        says which), or is corrupt and better replaced.
        """
        copied = server_copy(
            self.api,
            (self.bucket, temporary),
            (self.bucket, self.key(blob_name(digest))),
            size,
            None,
        )
        return str(copied["ETag"])

    def put_file(self, path: str, algorithm: str, expected: Optional[str] = None) -> BlobRef:
        """Store the local file ``path``, named by the digest of the bytes uploaded.

        The file is hashed first (free when the stat cache knows it), so a blob already in the
        cache is never uploaded again: the common case in a team. Otherwise the file, held
        open, is uploaded (a managed, multipart transfer when large) to a temporary key, and
        published under its digest only if the file's stat (inode, size, times, which every
        write moves) is the one it was hashed with, before and after the upload: so the bytes
        uploaded are the bytes hashed, and a file changed meanwhile is never stored under a
        wrong name (:class:`SourceChanged`).
        """
        fd = open_source(path)
        try:
            before = os.fstat(fd)
            executable = bool(before.st_mode & 0o111)
            seen = fingerprint_file(
                path, algorithm, cache=self._cache, racy_window_ns=self._racy_window_ns, stat=before
            )
            if seen.stat != StatKey.of(before):
                raise SourceChanged(errno.EAGAIN, "the file changed while it was hashed", path)
            if expected is not None and seen.fingerprint != expected:
                raise SourceChanged(errno.EAGAIN, "the file changed since it was recorded", path)
            if self.reuse_blob(seen.fingerprint, seen.size) is not None:
                # Someone else's upload: its ETag is not vouched for by this file's bytes, so
                # the entry keeps none, and a copy of it onto an S3 output is hashed first.
                return BlobRef(seen.fingerprint, seen.size, executable)
            temporary = self.temporary_key()
            try:
                # s3transfer closes the file it is given: it gets a descriptor of its own.
                with os.fdopen(os.dup(fd), "rb") as stream:
                    self.api.upload_fileobj(stream, self.bucket, temporary)
                if StatKey.of(os.fstat(fd)) != StatKey.of(before):
                    raise SourceChanged(errno.EAGAIN, "the file changed while it was sent", path)
                etag = self.publish(temporary, seen.fingerprint, seen.size)
            finally:
                with contextlib.suppress(Exception):
                    self.delete(temporary)
        finally:
            os.close(fd)
        return BlobRef(seen.fingerprint, seen.size, executable, etag)

    def get_file(self, blob: BlobRef, dest_path: str, fsync: bool) -> CachedFingerprint:
        key = self.key(blob_name(blob.digest))
        head = self.head(key)
        if head is None:
            raise BlobCorrupt(errno.ENOENT, "the cached file is gone", key)
        if head.get("ContentLength") != blob.size:
            # Not downloaded, and not removed: the entry may be what is wrong.
            raise BlobCorrupt(
                errno.EIO,
                f"the entry says {blob.size} bytes, the cache has {head.get('ContentLength')}",
                key,
            )
        fd = os.open(dest_path, NEW_FILE_FLAGS, 0o777 if blob.executable else 0o666)
        try:
            sink = HashingSink(fd, algorithm_of(blob.digest))
            try:
                self.api.download_fileobj(self.bucket, key, sink)
            except Exception as exc:
                if is_missing(exc):
                    raise BlobCorrupt(errno.ENOENT, "the cached file is gone", key) from None
                raise
            if fsync:
                os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if sink.size != blob.size:
            raise BlobCorrupt(errno.EAGAIN, "the cached file was replaced meanwhile", key)
        if sink.fingerprint != blob.digest:
            self.remove_blob(blob.digest)
            raise BlobCorrupt(
                errno.EIO, f"the cached file's bytes are {sink.fingerprint}, not its name", key
            )
        return CachedFingerprint(
            blob.digest, blob.size, StatKey.of(st), fs_now_ns(dest_path, st.st_dev)
        )

    def remove_blob(self, digest: str) -> None:
        self.delete(self.key(blob_name(digest)))

    # --- listing --------------------------------------------------------------------------------

    def _list(self, relative: str) -> Iterator[Tuple[str, int, float]]:
        """(name under ``relative``, size, LastModified) of every object there."""
        start = self.key(relative) + "/"
        pages = self.api.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start)
        for page in pages:
            for item in page.get("Contents", ()):
                modified = item["LastModified"]
                yield item["Key"][len(start) :], int(item["Size"]), modified.timestamp()

    def entries(self) -> Iterator[StoredItem]:
        # Only keys where the store itself puts entries: a stray or misplaced object (an S3
        # console "folder", a copy in another folder) is not one, and never removed as one.
        for name, size, used in self._list("entries"):
            key = listed_entry("entries/" + name)
            if key is not None:
                yield StoredItem(key, size, used)

    def blobs(self) -> Iterator[StoredItem]:
        for name, size, used in self._list("blobs"):
            digest = listed_blob("blobs/" + name)
            if digest is not None:
                yield StoredItem(digest, size, used)
