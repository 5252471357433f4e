"""Fingerprinting a folder in one walk: one stat per file, compared with what was seen before.

A folder of 100,000 files must be checked in about the time a plain ``os.scandir`` + ``stat``
walk takes, so the warm path does no more than that walk: each file's stamp
``[st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns]`` is compared, as the walk meets the file,
with the stamp recorded beside the previous manifest (the :class:`Baseline`), and the
remembered fingerprint stands when they are equal. Nothing is kept for such a file: only files
without a matching stamp are set aside, so an unchanged folder builds no manifest of its own
(the baseline's is hashed once, to prove it is the fingerprint it claims). Files without a
matching stamp go further: the persistent stat cache is asked once for the whole folder (one
query, not one per file), and what it cannot vouch for is read. The racy rule is the stat
cache's: a stamp is kept for later only when the fingerprint was taken at least the racy window
after the file's last write.

The stamps a record keeps are compact (a list of integers per file, aligned with the sorted
manifest) so that the record of a folder of 100,000 files stays well under the record cap.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import attrs

from luigi_repro.fingerprint import (
    Counters,
    Exclude,
    algorithm_of,
    describe_special,
    hash_bytes,
    manifest_fingerprint,
    walk_directory,
)
from luigi_repro.localpath import physical_path
from luigi_repro.statcache import (
    CachedFingerprint,
    PersistentStatCache,
    StatKey,
    fingerprint_file,
    pack_stat,
)

__all__ = [
    "Baseline",
    "DirectoryFingerprint",
    "FileStamp",
    "Known",
    "STAMPS_FORMAT",
    "fingerprint_directory",
    "baseline_from_state",
    "stamp_state",
]

#: ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)``: equal stamps, same content.
FileStamp = Tuple[int, int, int, int, int]

#: Fingerprints that may be reused without reading, by relative path: ``(fingerprint, stamp)``.
Known = Mapping[str, Tuple[str, FileStamp]]

#: Marks the compact form of a folder's stamps in a record's state.
STAMPS_FORMAT = 2


@attrs.frozen
class DirectoryFingerprint:
    """A folder's fingerprint, its manifest and the stamps that vouch for its files later.

    ``stamps`` holds only files whose fingerprint may be reused (taken long enough after their
    last write, and stable while read); ``unchanged`` says every file matched the baseline
    exactly, so whatever was kept with it still describes the folder (``files`` is then the
    baseline's own manifest, not a copy).
    """

    fingerprint: str
    files: Mapping[str, str]
    stamps: Mapping[str, Sequence[int]]
    size: int
    stable: bool
    unchanged: bool = False

    def manifest(self) -> Mapping[str, str]:
        """``{relative path: fingerprint}``, the form kept in downstream records."""
        return self.files

    def known(self) -> Dict[str, Tuple[str, FileStamp]]:
        """The fingerprints a later walk may reuse, with the stamps that vouch for them."""
        return {rel: (self.files[rel], _as_stamp(stamp)) for rel, stamp in self.stamps.items()}


@attrs.frozen
class Baseline:
    """What a folder held when last fingerprinted: its manifest, and per file the stamp that
    vouches for its fingerprint, aligned with the sorted manifest (anything but a list of five
    integers there means "read it again": it can only fail to equal a real stat)."""

    manifest: Mapping[str, str]
    stamps: Sequence[Any]

    def by_path(self) -> Dict[str, Any]:
        """A fresh ``{relative path: recorded stamp}`` for every file of the manifest."""
        return dict(zip(sorted(self.manifest), self.stamps))

    @classmethod
    def of_known(cls, known: Known) -> Baseline:
        """The baseline of fingerprints already trusted, by relative path."""
        names = sorted(known)
        return cls({rel: known[rel][0] for rel in names}, [list(known[rel][1]) for rel in names])


def _as_stamp(stamp: Sequence[int]) -> FileStamp:
    dev, ino, size, mtime_ns, ctime_ns = stamp
    return (dev, ino, size, mtime_ns, ctime_ns)


#: Marks a path the baseline does not hold.
_ABSENT: Any = object()


class _CacheView:
    """The persistent cache's entries below one folder, fetched with one query when first
    needed (a folder where every file matched its stamp never asks)."""

    def __init__(
        self, cache: Optional[PersistentStatCache], root: str, slot: str, window_ns: int
    ) -> None:
        self._cache = cache
        self._root = root.rstrip(os.sep) + os.sep
        self._slot = slot
        self._window_ns = window_ns
        self._entries: Optional[Dict[str, Tuple[str, int, str]]] = None

    def vouched(self, rel: str, stamp: Sequence[int]) -> Optional[str]:
        """The cached fingerprint of ``rel`` if it was taken of a file with this very stamp,
        long enough after its last write; else None."""
        if self._cache is None:
            return None
        if self._entries is None:
            self._entries = self._cache.entries_below(self._root, self._slot)
        found = self._entries.get(self._root + rel)
        if found is None or found[0] != pack_stat(*stamp):
            return None
        if found[1] - max(stamp[3], stamp[4]) < self._window_ns:
            return None  # racy: taken too soon after the last write to be trusted
        return found[2]


def fingerprint_directory(
    root: str,
    algorithm: str,
    *,
    known: Optional[Known] = None,
    baseline: Optional[Baseline] = None,
    cache: Optional[PersistentStatCache] = None,
    racy_window_ns: int = 2_000_000_000,
    counters: Optional[Counters] = None,
    exclude: Optional[Exclude] = None,
) -> DirectoryFingerprint:
    """Fingerprint every file below ``root``, reading only those no stamp or cache vouches for.

    ``baseline`` (see :func:`baseline_from_state`), or ``known``, holds fingerprints already
    trusted for ``algorithm``. Files are compared with it as the walk meets them, and only the
    ones that differ are kept aside: an unchanged folder costs its walk and the baseline's
    manifest hashed once, with no per-file objects kept.
    """
    if baseline is None and known:
        baseline = Baseline.of_known(known)
    remaining: Dict[str, Any] = baseline.by_path() if baseline is not None else {}
    fresh: Dict[str, str] = {}  # files the baseline does not vouch for, and what they hold
    fresh_stamps: Dict[str, List[int]] = {}  # as a record keeps them
    size = 0
    stable = True
    statted = 0
    view = _CacheView(cache, physical_path(root), algorithm, racy_window_ns)
    pop = remaining.pop
    recorded_files = baseline.manifest if baseline is not None else {}
    for rel, path, st in walk_directory(root, exclude):
        if st is None:
            # Described, not read: cheap to redo, so never reused from a stamp.
            described = hash_bytes(describe_special(path), algorithm)
            if pop(rel, _ABSENT) is _ABSENT or recorded_files.get(rel) != described:
                fresh[rel] = described
            continue
        statted += 1
        stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        size += stamp[2]
        if pop(rel, None) == stamp:
            continue  # the baseline's fingerprint stands, and its stamp with it
        vouched = view.vouched(rel, stamp)
        if vouched is not None:
            fresh[rel] = vouched
            fresh_stamps[rel] = stamp
            continue
        entry = fingerprint_file(
            path,
            algorithm,
            cache=cache,
            racy_window_ns=racy_window_ns,
            counters=counters,
            stat=st,
        )
        fresh[rel] = entry.fingerprint
        if entry.stat is None:
            stable = False
        elif not entry.is_racy(racy_window_ns):
            fresh_stamps[rel] = list(_stamp_of_key(entry.stat))
    if counters is not None:
        counters.files_statted += statted
    if baseline is not None and not fresh and not remaining:
        files = baseline.manifest  # every file matched its stamp: nothing new to build
        fingerprint = manifest_fingerprint(files, algorithm)
        return DirectoryFingerprint(fingerprint, files, _Lazy(baseline), size, stable, True)
    files, stamps = _merged(baseline, remaining, fresh, fresh_stamps)
    return DirectoryFingerprint(
        manifest_fingerprint(files, algorithm), files, stamps, size, stable, False
    )


def _is_stamp(stamp: Any) -> bool:
    """Is ``stamp`` what a stamp is, ``[dev, ino, size, mtime_ns, ctime_ns]``? A record edited
    by hand may hold anything; such a value is dropped (the file is then read next time)."""
    return (
        isinstance(stamp, (list, tuple))
        and len(stamp) == 5
        and all(type(part) is int for part in stamp)
    )


def _merged(
    baseline: Optional[Baseline],
    gone: Mapping[str, Any],
    fresh: Dict[str, str],
    fresh_stamps: Dict[str, List[int]],
) -> Tuple[Dict[str, str], Dict[str, Sequence[int]]]:
    """The manifest and stamps of a folder that differs from its baseline: the baseline's files
    still there and unchanged, with the files read or described afresh."""
    if baseline is None:
        return fresh, dict(fresh_stamps)
    recorded = baseline.by_path()
    files: Dict[str, str] = {}
    stamps: Dict[str, Sequence[int]] = {}
    for rel, fingerprint in baseline.manifest.items():
        if rel not in gone and rel not in fresh:
            files[rel] = fingerprint
            stamp = recorded[rel]
            if _is_stamp(stamp):  # None: described, not read (or a record edited by hand)
                stamps[rel] = stamp
    files.update(fresh)
    stamps.update(fresh_stamps)
    return files, stamps


class _Lazy(Mapping[str, Sequence[int]]):
    """An unchanged folder's stamps: its baseline's, made into a mapping only if asked."""

    def __init__(self, baseline: Baseline) -> None:
        self._baseline = baseline
        self._built: Optional[Dict[str, Sequence[int]]] = None

    def _mapping(self) -> Dict[str, Sequence[int]]:
        if self._built is None:
            recorded = self._baseline.by_path().items()
            self._built = {rel: stamp for rel, stamp in recorded if stamp is not None}
        return self._built

    def __getitem__(self, key: str) -> Sequence[int]:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


def _stamp_of_key(key: StatKey) -> FileStamp:
    return (key.dev, key.ino, key.size, key.mtime_ns, key.ctime_ns)


def stamp_state(result: DirectoryFingerprint, racy_window_ns: int) -> Mapping[str, Any]:
    """The state a record keeps for a folder: per file of the sorted manifest, its stamp as
    ``[dev, ino, size, mtime_ns, ctime_ns]`` or null when it must be read again.

    Built only when read (when a record is written): checking an input never needs it.
    """
    return _StampState(result, racy_window_ns)


class _StampState(Mapping[str, Any]):
    """A folder's state, made into JSON-ready lists on first use."""

    def __init__(self, result: DirectoryFingerprint, racy_window_ns: int) -> None:
        self._result = result
        self._window = racy_window_ns
        self._built: Optional[Dict[str, Any]] = None

    def _state(self) -> Dict[str, Any]:
        if self._built is None:
            stamps = self._result.stamps
            listed: List[Optional[List[int]]] = []
            for rel in sorted(self._result.files):
                stamp = stamps.get(rel)
                if stamp is None or not _is_stamp(stamp):
                    stamp = None  # described, not read; or a record edited by hand
                elif type(stamp) is not list:
                    stamp = list(stamp)
                listed.append(stamp)  # shared, not copied: nothing changes a stamp's list
            self._built = {
                "kind": "dir",
                "format": STAMPS_FORMAT,
                "racy_window_ns": self._window,
                "stamps": listed,
            }
        return self._built

    def get(self, key: str, default: Any = None) -> Any:
        if key == "kind":
            return "dir"  # asked on every check: answered without building the lists
        if key == "format":
            return STAMPS_FORMAT
        return self._state().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._state()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._state())

    def __len__(self) -> int:
        return len(self._state())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # a mapping, compared by content


def baseline_from_state(
    fingerprint: str,
    state: Mapping[str, Any],
    manifest: Optional[Mapping[str, str]],
    algorithm: str,
    racy_window_ns: int,
) -> Optional[Baseline]:
    """The fingerprints a folder's recorded state vouches for, or None.

    None when the state is of another kind, another algorithm, or was judged settled with a
    racy window shorter than today's. The per-file form of earlier versions is read too.
    Nothing per file is built here: the recorded lists are used as they are.
    """
    if manifest is None or state.get("kind") != "dir":
        return None
    try:
        if algorithm_of(fingerprint) != algorithm:
            return None
    except ValueError:
        return None
    if state.get("format") == STAMPS_FORMAT:
        window = state.get("racy_window_ns")
        listed = state.get("stamps")
        if not isinstance(window, int) or window < racy_window_ns or not isinstance(listed, list):
            return None
        return Baseline(manifest, listed) if len(listed) == len(manifest) else None
    known = _known_from_files(state.get("files"), manifest, algorithm, racy_window_ns)
    names = sorted(manifest)
    return Baseline(manifest, [list(known[rel][1]) if rel in known else None for rel in names])


def _known_from_files(
    files: Any, manifest: Mapping[str, str], algorithm: str, racy_window_ns: int
) -> Dict[str, Tuple[str, FileStamp]]:
    """Stamps in the earlier form ``{rel: {"stat": {...}, "taken_at_ns": n}}``."""
    known: Dict[str, Tuple[str, FileStamp]] = {}
    if not isinstance(files, dict):
        return known
    for rel, fingerprint in manifest.items():
        entry = files.get(rel)
        if not isinstance(entry, dict) or not isinstance(entry.get("taken_at_ns"), int):
            continue
        try:
            key = StatKey.from_json(entry.get("stat"))
        except ValueError:
            continue
        cached = CachedFingerprint(fingerprint, key.size, key, entry["taken_at_ns"])
        if cached.trusted_for(key, algorithm, racy_window_ns):
            known[rel] = (fingerprint, _stamp_of_key(key))
    return known
