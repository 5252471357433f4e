"""Moving and hashing S3 objects for the run cache: copies on the server, hashed streams.

A copy on the server may be made conditional on the source's ETag (``CopySourceIfMatch``), as
may a read (``IfMatch``): S3 answers 412 when the object was replaced meanwhile. Some servers
ignore those headers, so callers also compare the ETag the copy reports.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from luigi_repro.fingerprint import CHUNK_SIZE, new_hasher

__all__ = [
    "SINGLE_COPY_LIMIT",
    "HashingSink",
    "error_code",
    "hash_object",
    "is_missing",
    "read_object",
    "server_copy",
    "split_location",
]

#: Objects up to this size are copied on the server by one ``CopyObject``, which keeps their
#: ETag (S3's own limit for one copy request is 5 GiB); larger ones by a multipart copy.
SINGLE_COPY_LIMIT = 5 * 1024**3


def error_code(error: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` (empty for any other error)."""
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_missing(error: BaseException) -> bool:
    """Is ``error`` S3 saying the object (or key) does not exist?"""
    return error_code(error) in ("404", "NoSuchKey", "NotFound")


def split_location(location: str) -> Tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")`` (prefix without slashes)."""
    rest = location.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


class HashingSink:
    """A write-only, non-seekable file for a managed download: parts arrive in order, so the
    bytes are hashed exactly as they are written to ``fd`` (or only hashed, without one)."""

    def __init__(self, fd: Optional[int], algorithm: str) -> None:
        self._fd = fd
        self._hasher = new_hasher(algorithm)
        self.algorithm = algorithm
        self.size = 0

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view and self._fd is not None:
            done = os.write(self._fd, view)
            view = view[done:]
        self._hasher.update(data)
        self.size += len(data)
        return len(data)

    @property
    def fingerprint(self) -> str:
        return f"{self.algorithm}:{self._hasher.hexdigest()}"


def server_copy(
    api: Any, source: Tuple[str, str], dest: Tuple[str, str], size: int, etag: Optional[str]
) -> Dict[str, Any]:
    """Copy the object ``source`` to ``dest`` (both bucket, key) on the server; the new
    object's ``ETag`` and ``VersionId``.

    ``etag``: copy only while the source has it (``CopySourceIfMatch``; S3 answers 412 else).
    """
    extra = {} if etag is None else {"CopySourceIfMatch": etag}
    copy_source = {"Bucket": source[0], "Key": source[1]}
    if size < SINGLE_COPY_LIMIT:
        response = api.copy_object(CopySource=copy_source, Bucket=dest[0], Key=dest[1], **extra)
        return {
            "ETag": response["CopyObjectResult"]["ETag"],
            "VersionId": response.get("VersionId"),
        }
    api.copy(copy_source, dest[0], dest[1], ExtraArgs=extra)
    head: Dict[str, Any] = api.head_object(Bucket=dest[0], Key=dest[1])
    return {"ETag": head["ETag"], "VersionId": head.get("VersionId")}


def read_object(
    api: Any, where: Tuple[str, str], sink: HashingSink, etag: Optional[str] = None
) -> None:
    """Stream the object ``where`` (bucket, key) into ``sink``; with ``etag``, only while the
    object has it (S3 answers 412 otherwise)."""
    extra = {} if etag is None else {"IfMatch": etag}
    body = api.get_object(Bucket=where[0], Key=where[1], **extra)["Body"]
    try:
        for chunk in iter(lambda: body.read(CHUNK_SIZE), b""):
            sink.write(chunk)
    finally:
        body.close()


def hash_object(
    api: Any, where: Tuple[str, str], algorithm: str, etag: Optional[str] = None
) -> Tuple[str, int]:
    """The fingerprint and size of the object ``where``, streamed (nothing written locally)."""
    sink = HashingSink(None, algorithm)
    read_object(api, where, sink, etag)
    return sink.fingerprint, sink.size
