"""The hashable target itself: what it observes, the context it observes in, its record cache.

A :class:`HashableTarget` can say what its content is (:meth:`~HashableTarget.observe`, a
fingerprint plus the target's own cheap proof that the content has not changed since), store the
record that vouches for it beside itself, and name the lock that guards it during a run. The
task-side code only ever talks to this contract, so a new storage backend is one new subclass.
"""

from __future__ import annotations

import abc
import os
from typing import Any, Dict, FrozenSet, Hashable, Mapping, Optional, Tuple

import attrs

from luigi_repro.config import Settings, load_settings
from luigi_repro.errors import TargetMissing
from luigi_repro.fingerprint import Counters
from luigi_repro.locking import lock_file_for_uri
from luigi_repro.record import Record
from luigi_repro.statcache import PersistentStatCache, open_stat_cache
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

    def fingerprint(
        self, settings: Optional[Settings] = None, counters: Optional[Counters] = None
    ) -> str:
        """The fingerprint of the content now, ``"algorithm:hex"`` with the configured
        algorithm (``xxh3_128:…`` by default): the value a record of this target stores.

        Made as a check makes it, through the per-user stat cache, so asking again about
        unchanged content costs a stat (an S3 ``HEAD``), not a read, once the content is older
        than ``racy_window``; ``counters`` shows what it cost. ``settings`` are the ones in
        force unless given. Raises :class:`TargetMissing` (a ``FileNotFoundError``) when the
        content does not exist.
        """
        settings = settings or load_settings()
        context = FingerprintContext(
            algorithm=settings.hash_algorithm,
            racy_window_ns=settings.racy_window_ns,
            record_suffix=settings.record_suffix,
            cache=open_stat_cache(settings.stat_cache_path),
            counters=counters if counters is not None else Counters(),
        )
        try:
            return self.observe(context).fingerprint
        except FileNotFoundError:
            raise TargetMissing(self.uri) from None

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

    def read_record(self, settings: Settings) -> Optional[Record]:
        """The parsed record, None when there is none; :class:`RecordError` when it is unusable
        (through the process's :class:`~luigi_repro.recordstore.RecordStore`)."""
        from luigi_repro.runtime import runtime

        return runtime().records(settings).read(self)

    def write_record(self, settings: Settings, record: Record) -> None:
        """Serialize (and sign, when a key is configured) and store ``record``."""
        from luigi_repro.runtime import runtime

        runtime().records(settings).write(self, record)
