"""Records beside outputs: one interface, bound to the settings in force.

A target knows where its record lives and how to move bytes there (``record_location``,
``read_record_bytes``, ``write_record_bytes``, ``remove_record``, ``record_token``). A
:class:`RecordStore` adds what is the same for every target, steered by one
:class:`~luigi_repro.config.Settings`: parsing and signature checks, the cache of parsed records
(by the record's token, and by content), signing on write, the suffix and whether writes are
flushed to disk. The process's store for the settings in force is ``runtime().records()``;
targets reach the settings through it instead of reading the configuration themselves.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Any, Optional, Tuple

import attrs

from luigi_repro.config import Settings
from luigi_repro.errors import RecordError
from luigi_repro.record import Record, dump_record, parse_record

if TYPE_CHECKING:
    from luigi_repro.targets.hashable import HashableTarget

__all__ = ["RecordCache", "RecordStore"]


#: Records up to this size are also remembered by their bytes (big manifests are not kept twice).
_CONTENT_KEY_LIMIT = 64 * 1024


class RecordCache:
    """Parsed records keyed by a token that changes whenever the record file is replaced.

    Records are replaced atomically (a new inode every time), so a stat of the record file is
    enough to reuse its parsed form across checks in one process. Bounded; thread-safe.
    """

    def __init__(self, capacity: int = 8192) -> None:
        self._capacity = capacity
        self._items: collections.OrderedDict[Tuple[Any, ...], Record] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: Tuple[Any, ...]) -> Optional[Record]:
        with self._lock:
            record = self._items.get(token)
            if record is not None:
                self._items.move_to_end(token)
            return record

    def put(self, token: Tuple[Any, ...], record: Record) -> None:
        with self._lock:
            self._items[token] = record
            self._items.move_to_end(token)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class RecordStore:
    """How records are read, written and removed under one set of settings."""

    def __init__(self, settings: Settings, cache: RecordCache) -> None:
        self.settings = settings
        self.cache = cache

    @property
    def fsync(self) -> bool:
        """Whether writes (outputs and records alike) are flushed to disk before they count."""
        return self.settings.fsync

    @property
    def suffix(self) -> str:
        return self.settings.record_suffix

    def location(self, target: HashableTarget) -> str:
        return target.record_location(self.settings)

    def read(self, target: HashableTarget) -> Optional[Record]:
        """The parsed record, None when there is none; :class:`RecordError` when it is unusable."""
        settings = self.settings
        try:
            token = target.record_token(settings)
        except ValueError:
            token = None
        key = None if token is None else (type(target).__name__, *token, settings.signing_key)
        if key is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        location = target.record_location(settings)
        try:
            data = target.read_record_bytes(settings)
        except RecordError:
            raise
        except OSError as exc:
            raise RecordError(location, f"it cannot be read ({exc.strerror or exc})") from None
        except ValueError as exc:  # e.g. a NUL byte in the location
            raise RecordError(location, f"it cannot be read ({exc})") from None
        if data is None:
            return None
        if key is not None:
            try:
                after = target.record_token(settings)
            except ValueError:
                after = None
            if after != token:
                key = None  # replaced while it was read: these bytes are not what ``token`` named
        # Same bytes, same record: a record too fresh for its stat to be trusted is still read
        # (never assumed), but parsing and checking its signature again would change nothing.
        writer = target.record_writer(settings)
        by_content = ("bytes", location, data, settings.signing_key, writer)
        small = len(data) <= _CONTENT_KEY_LIMIT
        record = self.cache.get(by_content) if small else None
        if record is None:
            record = parse_record(data, location, settings.signing_key, settings.max_record_bytes)
            record = attrs.evolve(record, writer=writer) if writer is not None else record
            if small:
                self.cache.put(by_content, record)
        if key is not None:
            self.cache.put(key, record)
        return record

    def write(self, target: HashableTarget, record: Record) -> None:
        """Serialize (and sign, when a key is configured) and store ``record``."""
        target.write_record_bytes(self.settings, dump_record(record, self.settings.signing_key))

    def remove(self, target: HashableTarget) -> None:
        target.remove_record(self.settings)
