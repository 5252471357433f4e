"""``HashableS3Target``: a drop-in ``luigi.contrib.s3.S3Target`` that can vouch for its content.

The fingerprint is of the object's bytes. The object's ETag, size and version play the part of a
local file's stat: while a ``HEAD`` request returns the ones recorded, the recorded fingerprint
holds and nothing is downloaded; otherwise the object is streamed and hashed. The record is the
object beside the output (``<key>.repro.json``); S3 replaces objects atomically.

Inside a check epoch (:func:`~luigi_repro.targets.s3listing.check_epoch`) one listing of a
prefix answers the ``HEAD`` questions about every object under it, and a record the listing
shows unchanged is not downloaded again (:mod:`luigi_repro.targets.s3listing`). A listing carries
no version and no checksum: where the recorded state has one, ``HEAD`` is asked as before.

An ETag is the MD5 of the content (or of the parts' MD5s for a multipart upload): identical
content uploaded the same way keeps it, and content changed by accident never does. MD5 is
broken on purpose, though: two different objects with one MD5 can be made. With the default
``xxh3_128`` (itself not built to resist forgery) the ETag shortcut is kept; with a
cryptographic algorithm (sha256, blake2b, blake3) an ETag alone never vouches for content: the
object's SHA-256 checksum does when S3 keeps one (uploads with ``ChecksumAlgorithm="SHA256"``),
and otherwise the object is downloaded and hashed on every check.

Needs ``boto3`` (``pip install luigi-repro[s3]``), imported only when an S3 target is used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import threading
from typing import Any, Dict, Hashable, Iterator, Mapping, Optional, Tuple, cast

from luigi.contrib.s3 import S3Client, S3Target

from luigi_repro.config import Settings
from luigi_repro.errors import MissingDependency, RecordError
from luigi_repro.fingerprint import CRYPTOGRAPHIC_ALGORITHMS, hash_stream
from luigi_repro.record import oversize
from luigi_repro.runtime import runtime
from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    Observation,
    register_adapter,
    register_uri_resolver,
)
from luigi_repro.targets.s3listing import Listed, listed, record_bodies, store_of, written

__all__ = ["HashableS3Target", "default_client"]

_clients: Dict[int, S3Client] = {}
_clients_lock = threading.Lock()


def default_client() -> S3Client:
    """One ``S3Client`` per process (configured by Luigi's ``[s3]`` section), made when needed.

    A boto3 resource takes tens of milliseconds to build; sharing one keeps record-only audits
    and lineage walks over many objects fast. Per process, because forked workers must not
    share connections.
    """
    with _clients_lock:
        client = _clients.get(os.getpid())
        if client is None:
            client = _clients[os.getpid()] = S3Client()
        return client


def _is_missing(error: Exception) -> bool:
    response = getattr(error, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class HashableS3Target(HashableTarget, S3Target):
    """An S3 object output. Same constructor as ``S3Target``: ``(path, format, client, **kw)``."""

    def __init__(
        self,
        path: str,
        format: Any = None,  # noqa: A002 - Luigi's own argument name
        client: Optional[S3Client] = None,
        **kwargs: Any,
    ) -> None:
        if importlib.util.find_spec("boto3") is None:
            raise MissingDependency("boto3", "s3")
        S3Target.__init__(self, path, format, client or default_client(), **kwargs)

    @property
    def _client(self) -> S3Client:
        return cast(S3Client, self.fs)

    # --- the HashableTarget contract -----------------------------------------------------------

    @property
    def uri(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        bucket, key = self._where()
        known = listed(self._api(), bucket, key)
        return known.exists if known is not None else bool(S3Target.exists(self))

    def _api(self) -> Any:
        return self._client.s3.meta.client

    def _stored(self, location: str) -> str:
        """``location`` on this target's server (record bodies are remembered per server)."""
        return store_of(self._api(), "") + location

    def _where(self, path: Optional[str] = None) -> Tuple[str, str]:
        bucket, key = S3Client._path_to_bucket_and_key(path or self.path)
        return str(bucket), str(key)

    def _listed_state(self, previous: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        """The state a listing shows, when it can stand for a ``HEAD`` compared with
        ``previous`` (no version, no checksum recorded); None otherwise.

        Raises ``FileNotFoundError`` when the listing shows the object absent.
        """
        if previous.get("version") not in (None, "null") or previous.get("sha256"):
            return None
        bucket, key = self._where()
        known = listed(self._api(), bucket, key)
        if known is None:
            return None
        if not known.exists:
            raise FileNotFoundError(self.path)
        state = {"kind": "s3", "etag": known.etag, "size": known.size}
        return {**state, "version": previous.get("version")}

    def _head(self) -> Optional[Dict[str, Any]]:
        bucket, key = self._where()
        try:
            head: Dict[str, Any] = self._api().head_object(
                Bucket=bucket, Key=key, ChecksumMode="ENABLED"
            )
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise
        return head

    @staticmethod
    def _state(response: Dict[str, Any]) -> Dict[str, Any]:
        state = {
            "kind": "s3",
            "etag": response.get("ETag"),
            "size": response.get("ContentLength"),
            "version": response.get("VersionId"),
        }
        checksum = response.get("ChecksumSHA256")
        if checksum:  # only when S3 keeps one: older states stay comparable
            state["sha256"] = checksum
        return state

    @staticmethod
    def _vouches(state: Mapping[str, Any], algorithm: str) -> bool:
        """Can this state stand for content fingerprinted with ``algorithm``?"""
        return algorithm not in CRYPTOGRAPHIC_ALGORITHMS or bool(state.get("sha256"))

    def observe(
        self, context: FingerprintContext, previous: Optional[Observation] = None
    ) -> Observation:
        if previous is None and not context.full and context.cache is not None:
            # No record (a raw input): the per-user cache remembers what this object held.
            remembered = context.cache.get_state(self.uri, context.algorithm)
            if remembered is not None:
                previous = Observation(remembered[0], remembered[1], remembered[2])
        if previous is not None and not context.full:
            state = self._current_state(previous.state, context.algorithm)
            context.counters.files_statted += 1
            same_algorithm = previous.fingerprint.startswith(context.algorithm + ":")
            if (
                same_algorithm
                and dict(previous.state) == state
                and self._vouches(previous.state, context.algorithm)
            ):
                return Observation(previous.fingerprint, previous.size, previous.state)
        bucket, key = self._where()
        try:
            response = self._api().get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(self.path) from None
            raise
        body = response["Body"]
        try:
            fingerprint, size = hash_stream(body, context.algorithm, context.counters)
        finally:
            body.close()
        # The ETag of the GET is the one of the bytes just read, whatever happens next.
        observation = Observation(fingerprint, size, self._state(response))
        if context.cache is not None and not context.full:
            context.cache.put_state(
                self.uri, context.algorithm, fingerprint, size, observation.state
            )
        return observation

    def _current_state(self, previous: Mapping[str, Any], algorithm: str) -> Dict[str, Any]:
        """The object's state now: from the check's listing when it can vouch, else ``HEAD``."""
        state = self._listed_state(previous) if self._vouches(previous, algorithm) else None
        if state is not None:
            return state
        head = self._head()
        if head is None:
            raise FileNotFoundError(self.path)
        return self._state(head)

    def change_token(self) -> Optional[Hashable]:
        # In a versioned bucket every write makes a new version. Otherwise nothing tells
        # "rewritten with the same bytes" from "left alone": the ETag follows the content and
        # LastModified has one-second resolution.
        head = self._head()
        version = None if head is None else head.get("VersionId")
        return None if version in (None, "null") else version

    def record_location(self, settings: Settings) -> str:
        return str(self.path) + settings.record_suffix

    def _listed_record(self, settings: Settings) -> Optional[Listed]:
        bucket, key = self._where(self.record_location(settings))
        return listed(self._api(), bucket, key)

    def record_token(self, settings: Settings) -> Optional[Tuple[Any, ...]]:
        # Within a check the listing's ETag names the record's bytes: unchanged, not re-parsed.
        known = self._listed_record(settings)
        if known is None or not known.exists or not known.etag:
            return None
        return (self.record_location(settings), known.etag, known.size)

    def read_record_bytes(self, settings: Settings) -> Optional[bytes]:
        location = self.record_location(settings)
        known = self._listed_record(settings)
        if known is not None and not known.exists:
            return None
        if known is not None and known.size > settings.max_record_bytes:
            raise RecordError(location, oversize(known.size, settings.max_record_bytes))
        if known is not None:
            body = record_bodies.get(self._stored(location), known.etag, known.size)
            if body is not None:
                return body
        bucket, key = self._where(location)
        try:
            response = self._api().get_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            if _is_missing(exc):
                return None
            raise OSError(f"cannot read s3://{bucket}/{key}: {exc}") from None
        # Never more than the cap (and one byte to tell), whatever size the object claims.
        cap = settings.max_record_bytes
        body = response["Body"]
        try:
            data: bytes = body.read(cap + 1)
        finally:
            body.close()
        size = max(len(data), int(response.get("ContentLength") or 0))
        if size > cap:
            raise RecordError(location, oversize(size, cap))
        if known is not None and response.get("ETag") != known.etag:
            written(self._api(), bucket, key)  # replaced since the listing: it no longer vouches
        record_bodies.put(self._stored(location), response.get("ETag"), data)
        return data

    def write_record_bytes(self, settings: Settings, data: bytes) -> None:
        location = self.record_location(settings)
        bucket, key = self._where(location)
        written(self._api(), bucket, key)
        response = self._api().put_object(
            Bucket=bucket, Key=key, Body=data, ContentType="application/json"
        )
        record_bodies.put(self._stored(location), response.get("ETag"), data)

    def remove_record(self, settings: Settings) -> None:
        bucket, key = self._where(self.record_location(settings))
        written(self._api(), bucket, key)
        self._api().delete_object(Bucket=bucket, Key=key)  # no error when it is absent

    # --- S3Target behaviour that changes --------------------------------------------------------

    def open(self, mode: str = "r") -> Any:
        """Like ``S3Target.open()``; writing makes the check's listing stop answering for it."""
        if mode == "w":
            written(self._api(), *self._where())
        return S3Target.open(self, mode)

    @contextlib.contextmanager
    def temporary_path(self) -> Iterator[str]:
        """Like ``S3Target.temporary_path()``, but the result may replace an existing object.

        If the block raises, the temporary object is removed; the previous output stays.
        """
        tmp = f"{self.path}-luigi-tmp-{random.randrange(0, 10_000_000_000):010}"
        try:
            yield tmp
        except BaseException:
            with contextlib.suppress(Exception):
                if self._client.exists(tmp):
                    self._client.remove(tmp)
            raise
        written(self._api(), *self._where())
        self._client.move(tmp, self.path)

    def remove(self) -> None:
        """Remove the object and its record."""
        written(self._api(), *self._where())
        self._client.remove(self.path)
        runtime().records().remove(self)


def _adapt_s3(target: Any) -> Optional[HashableTarget]:
    if isinstance(target, S3Target) and type(target) is S3Target:
        return HashableS3Target(target.path, format=target.format, client=target.fs)
    return None


def _resolve_s3(uri: str) -> Optional[HashableTarget]:
    if uri.startswith(("s3://", "s3a://", "s3n://")):
        return HashableS3Target(uri)
    return None


register_adapter("s3", _adapt_s3, priority=20)
register_uri_resolver("s3", _resolve_s3)
