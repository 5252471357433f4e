"""What one check learns about S3 from listings, and record bodies remembered by their ETag.

A check of many S3 outputs under one prefix would otherwise ask a ``HEAD`` per output, input and
record. Inside a *check epoch* (:func:`check_epoch`, opened once per outermost check), questions
about keys under one folder-like prefix ``s3://b/p/`` list it once (``ListObjectsV2``, 1000 keys
a page), and the listing answers existence, ETag and size for every key directly under it: a key
missing from a complete listing does not exist. A prefix is listed only once the check has asked
about enough keys under it to pay for the listing (two, or one per hundred keys it last held).
S3 tells nobody about changes, so a listing answers for one epoch only; outside an epoch every
question goes to S3 as before. A key this process writes or removes during an epoch is never
answered from that epoch's listing again.

Records are small, written once and read at every check: their bodies are remembered by
(location, ETag, size), so a record the listing shows unchanged costs no ``GET``. A record is
uploaded in one piece, so its ETag is the MD5 of its bytes: only a writer who crafted two records
with one MD5 could make it stand for other bytes, and a signed record still needs its signature.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import itertools
import threading
from typing import Any, Dict, Iterator, Optional, Set, Tuple

import attrs

__all__ = [
    "Listed",
    "RecordBodies",
    "check_epoch",
    "forget_s3",
    "listed",
    "record_bodies",
    "written",
]

#: Direct children of one prefix listed at most (pages of 1000): beyond, HEAD is cheaper.
MAX_LISTED_PAGES = 20

#: A prefix is listed once an epoch has asked about this many keys under it, or about one key
#: per this many keys its last listing held: a page of a thousand keys takes far longer than one
#: ``HEAD`` (about a hundred times on moto), so a check of one task keeps asking ``HEAD``.
LIST_AFTER_KEYS = 2
KEYS_PER_QUESTION = 100


@attrs.frozen
class Listed:
    """What a listing says of one key: whether it exists, and its ETag and size if so."""

    exists: bool
    etag: Optional[str] = None
    size: int = 0


@attrs.define
class _Prefix:
    """The direct children of one prefix: None when it could not be listed whole."""

    objects: Optional[Dict[str, Listed]]
    folders: Set[str] = attrs.field(factory=set)

    def __len__(self) -> int:
        return len(self.objects or ()) + len(self.folders)


class _Epoch:
    """The listings, the keys asked about and the keys written during one outermost check."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.prefixes: Dict[Tuple[str, str], _Prefix] = {}
        self.asked: Dict[Tuple[str, str], Set[str]] = {}
        self.written: Set[Tuple[str, str]] = set()
        self.lock = threading.Lock()

    def worth_listing(self, where: Tuple[str, str], key: str) -> bool:
        """Has this epoch asked about enough keys under ``where`` to pay for its listing?"""
        asked = self.asked.setdefault(where, set())
        asked.add(key)
        size = _sizes.get(where, 0)
        return len(asked) >= max(LIST_AFTER_KEYS, size // KEYS_PER_QUESTION)


#: How many keys the last listing of each prefix held (bounded: a hint, not a truth).
_sizes: Dict[Tuple[str, str], int] = {}
_MAX_SIZES = 4096


_numbers = itertools.count(1)
_current: contextvars.ContextVar[Optional[_Epoch]] = contextvars.ContextVar(
    "luigi_repro_s3_epoch", default=None
)


@contextlib.contextmanager
def check_epoch(fresh: bool = False) -> Iterator[int]:
    """Let S3 listings answer for the duration of the block (one outermost check).

    Nested blocks share the open epoch unless ``fresh``. Yields the epoch's number.
    """
    current = _current.get()
    if current is not None and not fresh:
        yield current.number
        return
    epoch = _Epoch(next(_numbers))
    token = _current.set(epoch)
    try:
        yield epoch.number
    finally:
        _current.reset(token)


def prefix_of(key: str) -> str:
    """The folder-like prefix holding ``key``: everything up to its last ``/``."""
    return key[: key.rfind("/") + 1]


def listed(api: Any, bucket: str, key: str) -> Optional[Listed]:
    """What this epoch's listing of ``key``'s prefix says of it; None when it cannot tell
    (no epoch open, the key written meanwhile, a folder of that name, a prefix too big or
    not listable)."""
    epoch = _current.get()
    if epoch is None or not key or key.endswith("/"):
        return None
    store = store_of(api, bucket)
    where = (store, prefix_of(key))
    with epoch.lock:
        if (store, key) in epoch.written:
            return None
        prefix = epoch.prefixes.get(where)
        if prefix is None:
            if not epoch.worth_listing(where, key):
                return None
            prefix = epoch.prefixes[where] = _list(api, bucket, where[1])
            if len(_sizes) >= _MAX_SIZES:
                _sizes.clear()
            _sizes[where] = MAX_LISTED_PAGES * 1000 if prefix.objects is None else len(prefix)
    if prefix.objects is None:
        return None
    found = prefix.objects.get(key)
    if found is not None:
        return found
    if key + "/" in prefix.folders or key + "_$folder$" in prefix.objects:
        return None  # a "folder": S3Target.exists() has its own rules for those
    return Listed(exists=False)


def _list(api: Any, bucket: str, prefix: str) -> _Prefix:
    """One paginated ``ListObjectsV2`` of the direct children of ``prefix``."""
    objects: Dict[str, Listed] = {}
    folders: Set[str] = set()
    arguments: Dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
    try:
        for _ in range(MAX_LISTED_PAGES):
            page = api.list_objects_v2(**arguments)
            for item in page.get("Contents", ()):
                objects[item["Key"]] = Listed(True, item.get("ETag"), int(item.get("Size", 0)))
            folders.update(p["Prefix"] for p in page.get("CommonPrefixes", ()))
            if not page.get("IsTruncated"):
                return _Prefix(objects, folders)
            arguments["ContinuationToken"] = page["NextContinuationToken"]
    except Exception:  # noqa: BLE001 - no right to list (or no answer): ask key by key
        pass
    return _Prefix(None)


def written(api: Any, bucket: str, key: str) -> None:
    """This process writes or removes ``key``: the open epoch's listing no longer answers for
    it."""
    epoch = _current.get()
    if epoch is not None:
        with epoch.lock:
            epoch.written.add((store_of(api, bucket), key))


def store_of(api: Any, bucket: str) -> str:
    """Which bucket, on which server: two endpoints (AWS and a MinIO beside it) may each have a
    bucket of one name."""
    meta = getattr(api, "meta", None)
    endpoint = getattr(meta, "endpoint_url", "") or ""
    region = getattr(meta, "region_name", "") or ""
    return f"{endpoint}|{region}|{bucket}"


class RecordBodies:
    """Record bodies keyed by (location, ETag, size). Bounded (LRU); thread-safe."""

    def __init__(self, capacity: int = 8192, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: collections.OrderedDict[Tuple[str, str, int], bytes] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, location: str, etag: Optional[str], size: int) -> Optional[bytes]:
        if not etag:
            return None
        with self._lock:
            body = self._items.get((location, etag, size))
            if body is not None:
                self._items.move_to_end((location, etag, size))
            return body

    def put(self, location: str, etag: Optional[str], body: bytes) -> None:
        """Remember ``body`` as the content of ``location`` while its ETag is ``etag``."""
        if not etag or len(body) > self._max_bytes // 16:
            return
        key = (location, etag, len(body))
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += len(body) - (len(old) if old is not None else 0)
            self._items[key] = body
            while len(self._items) > self._capacity or self._bytes > self._max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


record_bodies = RecordBodies()


def forget_s3() -> None:
    """Forget the record bodies and prefix sizes remembered in this process (listings die with
    their epoch)."""
    record_bodies.clear()
    _sizes.clear()
