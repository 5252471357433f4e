"""The hashable target itself: what it observes, the context it observes in, its record cache.

A :class:`HashableTarget` can say what its content is (:meth:`~HashableTarget.observe`, a
fingerprint plus the target's own cheap proof that the content has not changed since), store the
record that vouches for it beside itself, and name the lock that guards it during a run. The
task-side code only ever talks to this contract, so a new storage backend is one new subclass.
"""

from __future__ import annotations

import abc
import collections
import os
import threading
from typing import Any, Dict, FrozenSet, Hashable, Mapping, Optional, Tuple

import attrs

from luigi_repro.config import Settings
from luigi_repro.errors import RecordError
from luigi_repro.fingerprint import Counters
from luigi_repro.locking import lock_file_for_uri
from luigi_repro.record import Record, dump_record, parse_record
from luigi_repro.statcache import PersistentStatCache
from luigi_repro.targets.bookkeeping import (
    is_bookkeeping,
)


@attrs.frozen
class Observation:
    """What a target saw when it fingerprinted its content.

    ``state`` is the target's proof of unchanged content (local stat, S3 ETag…), kept in the
    record so that the next check can reuse ``fingerprint`` without reading the data.
    ``stable`` is False when the content changed while it was being read.
    """

    fingerprint: str
    size: int
    state: Mapping[str, Any] = attrs.field(factory=dict)
    manifest: Optional[Mapping[str, str]] = None
    stable: bool = True


@attrs.frozen
class FingerprintContext:
    """What a target needs to fingerprint cheaply: algorithm, caches and the cost counters.

    ``full`` ignores every cache and reads all content again (``verify --full``).
    """

    algorithm: str
    racy_window_ns: int
    record_suffix: str
    cache: Optional[PersistentStatCache] = None
    counters: Counters = attrs.field(factory=Counters)
    full: bool = False

    def is_bookkeeping(self, entry: os.DirEntry[str], siblings: FrozenSet[str]) -> bool:
        """Is this file one of ours (a record, a lock, a temporary), not user data?"""
        return is_bookkeeping(entry, self.record_suffix, siblings)


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


class HashableTarget(abc.ABC):
    """A Luigi target whose content can be fingerprinted and which keeps a record beside itself.

    Implementations subclass both this and the Luigi target they stand in for, so that
    ``isinstance`` checks in user code keep working.
    """

    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """Where the content lives, as an absolute path or URL; stored in records."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Does the content exist?"""

    @abc.abstractmethod
    def observe(
        self, context: FingerprintContext, previous: Optional[Observation] = None
    ) -> Observation:
        """Fingerprint the content, reusing ``previous`` (from a record) when its state proves
        that nothing changed since.

        Raises ``FileNotFoundError`` when the content does not exist.
        """

    @abc.abstractmethod
    def record_location(self, settings: Settings) -> str:
        """Where this target's record lives (for messages and for ``verify PATH``)."""

    @abc.abstractmethod
    def read_record_bytes(self, settings: Settings) -> Optional[bytes]:
        """The raw record, or None when there is none."""

    @abc.abstractmethod
    def write_record_bytes(self, settings: Settings, data: bytes) -> None:
        """Store the raw record atomically: readers see the old record or the new one."""

    @abc.abstractmethod
    def remove_record(self, settings: Settings) -> None:
        """Delete the record (and any temporary file a crashed write left); no error if absent."""

    @property
    def supports_records(self) -> bool:
        """Can this target keep a record beside itself (be the output of a checked task)?"""
        return True

    #: What :meth:`observe` fingerprints: ``"bytes"`` (the raw content) or ``"table"`` (the data
    #: a DataFrame file holds). Fingerprints of different kinds are never compared.
    fingerprint_kind: str = "bytes"

    def describe(self) -> Optional[Dict[str, Any]]:
        """How :meth:`observe` reads the content, as a small JSON object kept in records.

        None for the raw bytes (of a file, folder, object…), which the location alone tells;
        otherwise ``{"type": …}`` plus the options that change the fingerprint (a CSV's
        delimiter), so that :func:`locate_target` can rebuild a target that fingerprints the
        same content the same way from a record alone.
        """
        return None

    def lock_name(self) -> str:
        """The name of the run lock guarding this output (a lock-file path for file locks).

        By default a file in the user's lock folder named after the URI: right for remote
        content, which has no folder of its own to put a lock file in.
        """
        return lock_file_for_uri(self.uri)

    def settled_token(self, observation: Observation, racy_window_ns: int) -> Optional[Hashable]:
        """A cheap proof that the content seen in ``observation`` is still there, or None.

        Only for content whose state can vouch for it (not written within the racy window);
        :meth:`still_settled` checks the proof later. Without one, the content is fingerprinted
        again (through the caches) whenever a remembered verdict is revalidated.
        """
        return None

    def still_settled(self, token: Hashable) -> bool:
        """Does a :meth:`settled_token` still hold?"""
        return False

    def watch_paths(self, settings: Settings) -> Optional[Tuple[str, ...]]:
        """The local files whose change events cover this target's content, existence and
        record, or None when a change could come without such an event (remote content).

        A long-lived process watches them, so that a remembered verdict stands without a stat
        until one of them changes.
        """
        return None

    def change_token(self) -> Optional[Hashable]:
        """A cheap value that changes whenever the content is rewritten; None if unknown.

        The run protocol compares it before and after ``run()`` to refuse recording an output
        that the run did not write (a leftover from an earlier run).
        """
        return None

    def record_writer(self, settings: Settings) -> Optional[Tuple[int, int]]:
        """``(uid, gid)`` owning the record this target's last ``read_record_bytes`` read, when
        the store has owners (local files); a record may only name what its writer can read."""
        return None

    def record_token(self, settings: Settings) -> Optional[Tuple[Any, ...]]:
        """A value that changes whenever the record is replaced, or None if there is no such value.

        When given, parsed records are reused across checks in one process.
        """
        return None

    _record_cache = RecordCache()

    def read_record(self, settings: Settings) -> Optional[Record]:
        """The parsed record, None when there is none; :class:`RecordError` when it is unusable."""
        try:
            token = self.record_token(settings)
        except ValueError:
            token = None
        key = None if token is None else (type(self).__name__, *token, settings.signing_key)
        if key is not None:
            cached = self._record_cache.get(key)
            if cached is not None:
                return cached
        location = self.record_location(settings)
        try:
            data = self.read_record_bytes(settings)
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
                after = self.record_token(settings)
            except ValueError:
                after = None
            if after != token:
                key = None  # replaced while it was read: these bytes are not what ``token`` named
        # Same bytes, same record: a record too fresh for its stat to be trusted is still read
        # (never assumed), but parsing and checking its signature again would change nothing.
        writer = self.record_writer(settings)
        by_content = ("bytes", location, data, settings.signing_key, writer)
        small = len(data) <= _CONTENT_KEY_LIMIT
        record = self._record_cache.get(by_content) if small else None
        if record is None:
            record = parse_record(data, location, settings.signing_key, settings.max_record_bytes)
            record = attrs.evolve(record, writer=writer) if writer is not None else record
            if small:
                self._record_cache.put(by_content, record)
        if key is not None:
            self._record_cache.put(key, record)
        return record

    def write_record(self, settings: Settings, record: Record) -> None:
        """Serialize (and sign, when a key is configured) and store ``record``."""
        self.write_record_bytes(settings, dump_record(record, settings.signing_key))
