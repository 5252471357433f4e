"""S3 outputs (:class:`~luigi_repro.targets.s3.HashableS3Target`) in the run cache.

With the cache on the same S3 server, an output's bytes never travel through the worker:

* kept: the object is copied on the server to a temporary key, only while it still has the ETag
  its record was taken with (``CopySourceIfMatch``), checked, then published under the record's
  fingerprint;
* restored: the blob is checked (it still has the ETag the entry kept; else, or with a
  cryptographic algorithm, its bytes are hashed), then copied on the server onto the output,
  only while it has the ETag checked. One ``CopyObject`` is atomic: the output appears whole or
  not at all, and a blob found corrupt is removed before it could replace anything.

"Checked" follows the target's own rule for trusting ETags: with the default ``xxh3_128`` an
unchanged ETag stands for unchanged bytes (S3's MD5 of them); with a cryptographic algorithm
only a hash of the bytes does. After a restore the output is observed by the target itself and
its fingerprint must equal the entry's.

Across backends (an S3 output with a local cache, or a cache on another server) the bytes are
downloaded and uploaded instead, hashed on the way; an S3 output restored that way is then
hashed again by the target's ``observe()``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from typing import Any, Dict, Mapping, Optional, Tuple, cast

from luigi.contrib.s3 import S3Client

from luigi_repro.atomicfiles import NEW_FILE_FLAGS
from luigi_repro.fingerprint import CRYPTOGRAPHIC_ALGORITHMS, algorithm_of
from luigi_repro.record import OutputEntry
from luigi_repro.runcachecopy import SourceChanged
from luigi_repro.runcacheentry import BlobRef, CachedOutput
from luigi_repro.runcacheoutputs import NotCacheable, RestoreRefused, register_output_kind
from luigi_repro.runcaches3 import S3Store
from luigi_repro.runcaches3objects import (
    SINGLE_COPY_LIMIT,
    HashingSink,
    error_code,
    hash_object,
    is_missing,
    read_object,
    server_copy,
)
from luigi_repro.runcachestore import BlobCorrupt, CacheStore, blob_name
from luigi_repro.targets.base import FingerprintContext, HashableTarget, Observation
from luigi_repro.targets.s3 import HashableS3Target
from luigi_repro.targets.s3listing import written

__all__: list[str] = []

Where = Tuple[str, str]


def _where(target: HashableS3Target) -> Where:
    bucket, key = S3Client._path_to_bucket_and_key(target.path)
    return str(bucket), str(key)


def _api(target: HashableS3Target) -> Any:
    return cast(S3Client, target.fs).s3.meta.client


def _same_server(store: CacheStore, target: HashableS3Target) -> bool:
    """Can ``store`` and ``target`` copy objects between them on the server?"""
    return isinstance(store, S3Store) and (
        store.api.meta.endpoint_url == _api(target).meta.endpoint_url
    )


def _trusts_etag(algorithm: str) -> bool:
    """Does an unchanged ETag vouch for content fingerprinted with ``algorithm``?"""
    return algorithm not in CRYPTOGRAPHIC_ALGORITHMS


# --- keeping -----------------------------------------------------------------------------------


def _capture_s3(
    store: CacheStore, target: HashableTarget, recorded: OutputEntry, algorithm: str
) -> Optional[CachedOutput]:
    if not isinstance(target, HashableS3Target):
        return None
    state: Mapping[str, Any] = recorded.state or {}
    etag = state.get("etag")
    if not isinstance(etag, str) or algorithm_of(recorded.fingerprint) != algorithm:
        raise NotCacheable(f"the record of {target.uri} names no ETag or another algorithm")
    if isinstance(store, S3Store) and _same_server(store, target):
        blob = _copy_in(store, _where(target), etag, recorded, algorithm)
    else:
        blob = _download_in(store, target, etag, recorded, algorithm)
    return CachedOutput(
        key=recorded.key,
        fingerprint=recorded.fingerprint,
        size=recorded.size,
        kind="file",
        target=recorded.target,
        blob=blob,
    )


def _copy_in(
    store: S3Store, source: Where, etag: str, recorded: OutputEntry, algorithm: str
) -> BlobRef:
    """Copy the output on the server into the cache, as a blob named by its fingerprint."""
    digest, size = recorded.fingerprint, recorded.size
    stored = store.reuse_blob(digest, size)
    if stored is not None:
        # Kept before, by another run: its ETag vouches only if it is this output's own;
        # otherwise the entry keeps none and its bytes are hashed when it is restored.
        vouched = _trusts_etag(algorithm) and stored == etag
        return BlobRef(digest, size, False, etag if vouched else None)
    temporary = store.temporary_key()
    try:
        try:
            copied = server_copy(store.api, source, (store.bucket, temporary), size, etag)
        except Exception as exc:
            if error_code(exc) in ("PreconditionFailed", "412") or is_missing(exc):
                raise SourceChanged(
                    errno.EAGAIN, "the output changed since it was recorded"
                ) from None
            raise
        # A server that ignores CopySourceIfMatch still gives the copy's own ETag: it must be
        # the recorded one (or, where ETags do not vouch, the copy's bytes must hash right).
        vouched = _trusts_etag(algorithm) and copied["ETag"] == etag
        if not vouched and store.hash_object(temporary, algorithm) != (digest, size):
            raise SourceChanged(errno.EAGAIN, "the output changed since it was recorded")
        blob_etag = store.publish(temporary, digest, size)
    finally:
        store.delete(temporary)
    return BlobRef(digest, size, False, blob_etag)


def _download_in(
    store: CacheStore, target: HashableS3Target, etag: str, recorded: OutputEntry, algorithm: str
) -> BlobRef:
    """Download the output (while it has the recorded ETag), hashed, and store the file."""
    bucket, key = _where(target)
    with tempfile.TemporaryDirectory(prefix="luigi_repro-") as folder:
        path = os.path.join(folder, "object")
        fd = os.open(path, NEW_FILE_FLAGS, 0o600)
        try:
            sink = HashingSink(fd, algorithm)
            read_object(_api(target), (bucket, key), sink, etag)
        finally:
            os.close(fd)
        if (sink.fingerprint, sink.size) != (recorded.fingerprint, recorded.size):
            raise SourceChanged(errno.EAGAIN, "the output changed since it was recorded")
        return store.put_file(path, algorithm, recorded.fingerprint)


# --- restoring ---------------------------------------------------------------------------------


def _restore_s3(
    store: CacheStore,
    target: HashableTarget,
    cached: CachedOutput,
    context: FingerprintContext,
    fsync: bool,
) -> Optional[Observation]:
    if not isinstance(target, HashableS3Target):
        return None
    if cached.kind != "file" or cached.blob is None:
        raise RestoreRefused(f"a cached {cached.kind} cannot become the S3 object {target.uri}")
    blob = cached.blob
    dest = _where(target)
    written(_api(target), *dest)  # the check's listing no longer answers for it
    if isinstance(store, S3Store) and _same_server(store, target):
        state = _copy_out(store, blob, dest, context.algorithm)
        return target.observe(context, Observation(blob.digest, blob.size, state))
    _upload_out(store, blob, target)
    return target.observe(context, None)


def _corrupt(store: S3Store, blob: BlobRef, why: str) -> BlobCorrupt:
    store.remove_blob(blob.digest)
    return BlobCorrupt(errno.EIO, why, store.key(blob_name(blob.digest)))


def _copy_out(store: S3Store, blob: BlobRef, dest: Where, algorithm: str) -> Dict[str, Any]:
    """Check the blob, then copy it on the server to ``dest``; the state the copy has."""
    source = (store.bucket, store.key(blob_name(blob.digest)))
    head = store.head(source[1])
    if head is None:
        raise BlobCorrupt(errno.ENOENT, "the cached object is gone", source[1])
    etag = str(head["ETag"])
    if head.get("ContentLength") != blob.size:
        # Not read, and not removed: the entry may be what is wrong (another entry may name
        # this very blob rightly).
        raise BlobCorrupt(
            errno.EIO,
            f"the entry says {blob.size} bytes, the cached object has {head.get('ContentLength')}",
            source[1],
        )
    # Its ETag unchanged since it was kept vouches for its bytes where ETags may (xxh3);
    # otherwise (another ETag, none kept, a cryptographic algorithm) its bytes are hashed.
    vouched = blob.etag == etag and _trusts_etag(algorithm)
    if not vouched:
        digest, size = hash_object(store.api, source, algorithm_of(blob.digest), etag)
        if size != blob.size:
            raise BlobCorrupt(errno.EAGAIN, "the cached object was replaced meanwhile", source[1])
        if digest != blob.digest:
            raise _corrupt(store, blob, "the cached object's bytes are not its name")
    try:
        copied = server_copy(store.api, source, dest, blob.size, etag)
    except Exception as exc:
        if error_code(exc) in ("PreconditionFailed", "412"):
            raise BlobCorrupt(
                errno.EAGAIN, "the cached object was replaced while it was copied", source[1]
            ) from None
        raise
    single_part = blob.size < SINGLE_COPY_LIMIT and "-" not in etag  # a copy keeps its ETag
    if single_part and copied.get("ETag") != etag:
        # A server that ignores CopySourceIfMatch copied another object than the one checked:
        # the output is not the entry's (the task runs and rewrites it).
        raise BlobCorrupt(
            errno.EAGAIN, "the cached object was replaced while it was copied", source[1]
        )
    return {"kind": "s3", "etag": copied["ETag"], "size": blob.size, "version": copied["VersionId"]}


def _upload_out(store: CacheStore, blob: BlobRef, target: HashableS3Target) -> None:
    """Get the blob as a local file (verified), then upload it as the output (atomic)."""
    bucket, key = _where(target)
    with tempfile.TemporaryDirectory(prefix="luigi_repro-") as folder:
        path = os.path.join(folder, "object")
        store.get_file(blob, path, fsync=False)
        _api(target).upload_file(path, bucket, key)


register_output_kind("s3", _capture_s3, _restore_s3)
