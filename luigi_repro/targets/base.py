"""The contract every hashable target fulfils.

A :class:`HashableTarget` can say what its content is (:meth:`~HashableTarget.observe`, a
fingerprint plus the target's own cheap proof that the content has not changed since), store the
record that vouches for it beside itself, and name the lock that guards it during a run. The
task-side code only ever talks to this contract, so a new storage backend is one new subclass.

Records name every target by its location and, when the content is not read as raw bytes, by a
description (:meth:`~HashableTarget.describe`); :func:`locate_target` turns the two back into a
target, so that an audit from records alone fingerprints each file the way the run did.
"""

from __future__ import annotations

import abc
import collections
import importlib
import json
import os
import re
import stat as stat_module
import sys
import threading
from typing import Any, Callable, Dict, FrozenSet, Hashable, Mapping, Optional, Tuple

import attrs

from luigi_repro.config import Settings
from luigi_repro.errors import RecordError
from luigi_repro.fingerprint import Counters
from luigi_repro.locking import LOCK_FILE_MARK, LOCK_SUFFIX, TMP_MARK, lock_file_for_uri
from luigi_repro.plainfiles import refusal_at
from luigi_repro.record import Record, dump_record, parse_record
from luigi_repro.statcache import PersistentStatCache

__all__ = [
    "FingerprintContext",
    "HashableTarget",
    "Observation",
    "RecordCache",
    "as_hashable",
    "is_bookkeeping",
    "locate_target",
    "register_adapter",
    "register_target_type",
    "register_uri_resolver",
    "target_from_uri",
]


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


def is_bookkeeping(entry: os.DirEntry[str], record_suffix: str, siblings: FrozenSet[str]) -> bool:
    """Is this entry of a folder luigi_repro's own file rather than the user's data?

    Only what luigi_repro wrote for an output in this very folder: ``<x>.repro.json`` beside an
    ``<x>`` when it is a record describing that ``<x>``, ``.<x>.repro.lock`` when it carries
    the run-lock mark, and hidden ``.<x>.repro-tmp…`` temporaries. A file merely *named* like a
    record or a lock (a copied record, a user's ``notes.repro.json``) is data, and so counts in
    the folder's fingerprint.
    """
    name = entry.name
    if name.endswith(record_suffix) and name[: -len(record_suffix)] in siblings:
        output = name[: -len(record_suffix)]
        return _recognised(entry, lambda data: _describes(data, output))
    if not name.startswith("."):
        return False
    if name.endswith(LOCK_SUFFIX):
        return _recognised(entry, lambda data: data == LOCK_FILE_MARK)
    return _is_temporary(entry, record_suffix, siblings)


def _is_temporary(entry: os.DirEntry[str], record_suffix: str, siblings: FrozenSet[str]) -> bool:
    """A temporary luigi_repro writes beside ``<x>``: ``.<x>.repro-tmp-<pid>-<hex>`` (a record
    being written, or a folder output set aside while it is replaced), or the fixed names of
    earlier versions, ``.<x>.repro-tmp`` and ``.<x>.repro-tmp-old`` — only beside an ``<x>``
    (or its record) that is there."""
    match = _TEMPORARY.fullmatch(entry.name)
    if match is None:
        return False
    stem = match.group(1)
    if stem.endswith(record_suffix):
        stem = stem[: -len(record_suffix)]
    return stem in siblings


_TEMPORARY = re.compile(r"\.(.+)" + re.escape(TMP_MARK.rstrip("-")) + r"(?:-old|-\d+-[0-9a-f]{8})?")


#: Files read to recognise them as records or locks: larger ones are data.
_RECOGNISE_LIMIT = 16 * 1024 * 1024
_recognitions: collections.OrderedDict[Tuple[Any, ...], bool] = collections.OrderedDict()
_recognitions_lock = threading.Lock()


def _recognised(entry: os.DirEntry[str], test: Callable[[bytes], bool]) -> bool:
    """``test`` on the content of a regular file, remembered while its stat is unchanged."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    if not stat_module.S_ISREG(st.st_mode) or st.st_size > _RECOGNISE_LIMIT:
        return False  # a link, a pipe, a device or a huge file is never one of ours
    key = (entry.name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _recognitions_lock:
        known = _recognitions.get(key)
    if known is not None:
        return known
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        with os.fdopen(os.open(entry.path, flags), "rb") as stream:
            data = stream.read(st.st_size + 1)  # not the limit: that would allocate all of it
    except OSError:
        return False
    answer = test(data)
    with _recognitions_lock:
        _recognitions[key] = answer
        while len(_recognitions) > 4096:
            _recognitions.popitem(last=False)
    return answer


def _describes(data: bytes, output: str) -> bool:
    """Is ``data`` a luigi_repro record with an entry for an output named ``output``?

    By name, not by absolute location: a project moved or copied (or a folder reached through
    a symlink) keeps its records, and they still describe the files beside them.
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return False
    if not isinstance(doc, dict) or doc.get("tool") != "luigi_repro":
        return False
    outputs = doc.get("outputs")
    if not isinstance(outputs, list):
        return False
    return any(
        isinstance(o, dict)
        and isinstance(o.get("uri"), str)
        and o["uri"].rstrip("/").rsplit("/", 1)[-1] == output
        for o in outputs
    )


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


#: Turns a Luigi target that is not a HashableTarget into an equivalent one, or returns None.
TargetAdapter = Callable[[Any], Optional[HashableTarget]]

_adapters: Dict[str, Tuple[int, TargetAdapter]] = {}

#: Backends whose adapter is loaded the first time a target of theirs is seen:
#: {module of Luigi's target class: our module that registers an adapter for it}.
_LAZY_BACKENDS = {
    "luigi.contrib.s3": "luigi_repro.targets.s3",
    "luigi.mock": "luigi_repro.targets.mock",
}


def register_adapter(name: str, adapter: TargetAdapter, priority: int = 100) -> None:
    """Teach :func:`as_hashable` a new kind of plain Luigi target (lowest priority first)."""
    _adapters[name] = (priority, adapter)


def as_hashable(target: Any) -> Optional[HashableTarget]:
    """``target`` itself if hashable, else an equivalent hashable view of it, else None."""
    if isinstance(target, HashableTarget):
        return target
    backend = _LAZY_BACKENDS.get(type(target).__module__)
    if backend is not None and backend not in sys.modules:
        importlib.import_module(backend)  # registers the backend's adapter
    for _, adapter in sorted(_adapters.values(), key=lambda item: item[0]):
        view = adapter(target)
        if view is not None:
            return view
    return None


#: Turns a URI found in a record back into a target, or returns None if it is not its kind.
UriResolver = Callable[[str], Optional[HashableTarget]]

#: Turns a location and a description of its type back into a target; raises ValueError (with
#: the reason) when the description's options or the location do not fit the type.
TypeResolver = Callable[[str, Mapping[str, Any]], HashableTarget]

_resolvers: Dict[str, UriResolver] = {}
_types: Dict[str, TypeResolver] = {}


def register_uri_resolver(name: str, resolver: UriResolver) -> None:
    """Teach :func:`target_from_uri` a new kind of location."""
    _resolvers[name] = resolver


def register_target_type(name: str, resolver: TypeResolver) -> None:
    """Teach :func:`locate_target` the targets whose :meth:`~HashableTarget.describe` has
    ``{"type": name}``."""
    _types[name] = resolver


#: Location prefixes whose backend is loaded the first time such a location is resolved.
_LAZY_SCHEMES = {
    "s3://": "luigi_repro.targets.s3",
    "s3a://": "luigi_repro.targets.s3",
    "s3n://": "luigi_repro.targets.s3",
    "mock:": "luigi_repro.targets.mock",
}

#: Described types whose backend is loaded the first time such a description is resolved.
_LAZY_TYPES = {
    "csv": "luigi_repro.targets.dataframe",
    "feather": "luigi_repro.targets.dataframe",
    "parquet": "luigi_repro.targets.dataframe",
}


def locate_target(
    uri: str, description: Optional[Mapping[str, Any]] = None
) -> Tuple[Optional[HashableTarget], Optional[str]]:
    """The target at ``uri`` that fingerprints its content as ``description`` says, or None
    with the reason it cannot be located.

    Without a description the location alone decides (raw bytes). A description of a type this
    version does not know, or with options it cannot use, is never read as raw bytes instead:
    that would compare two different kinds of fingerprint.
    """
    local = uri[len("file://") :] if uri.startswith("file://") else uri
    refused = refusal_at(local) if os.path.isabs(local) and "\0" not in local else None
    if refused is not None:
        # A record names it (a hostile or broken one): reading /proc/self/pagemap never ends.
        return None, refused
    if description is None:
        for prefix, backend in _LAZY_SCHEMES.items():
            if uri.startswith(prefix) and backend not in sys.modules:
                importlib.import_module(backend)  # registers the backend's resolver
        for resolver in _resolvers.values():
            try:
                target = resolver(uri)
            except Exception:  # noqa: BLE001 - a URI nobody can resolve is "cannot be located"
                target = None
            if target is not None:
                return target, None
        return None, "is not a location luigi_repro can read"
    kind = description.get("type")
    typed_backend = _LAZY_TYPES.get(kind) if isinstance(kind, str) else None
    if typed_backend is not None and typed_backend not in sys.modules:
        importlib.import_module(typed_backend)  # registers the backend's types
    type_resolver = _types.get(kind) if isinstance(kind, str) else None
    if type_resolver is None:
        return None, (
            f"is described as a {kind!r} target, which this version of luigi_repro cannot read"
        )
    try:
        return type_resolver(uri, description), None
    except ValueError as exc:
        return None, f"cannot be read as a {kind} target ({exc})"


def target_from_uri(
    uri: str, description: Optional[Mapping[str, Any]] = None
) -> Optional[HashableTarget]:
    """A target for a URI (and target description) read from a record, or None.

    :func:`locate_target` also says why a location cannot be located.
    """
    return locate_target(uri, description)[0]


def probe_exists(target: Any) -> Tuple[bool, Optional[str]]:
    """Whether ``target`` exists, and why it could not be told (a backend error), if so.

    Checks answer, they never raise: an S3 403, a vanished bucket or an unreachable file
    system makes the target count as absent, with the error kept as evidence.
    """
    if not hasattr(target, "exists"):
        return False, None
    try:
        return bool(target.exists()), None
    except Exception as exc:  # noqa: BLE001 - see above
        return False, f"cannot be checked ({exc})"
