"""What a run cache holds: its entries with the blobs each names, its blobs, its leftovers.

``luigi-repro cache stats`` reports a survey and ``cache gc`` plans from one
(:mod:`luigi_repro.runcachegc`). Everything goes through the :class:`CacheStore` protocol
(``entries()``, ``blobs()``, ``read_entry()``), so any store can be surveyed; only the local
store has a ``tmp/`` folder of leftovers to list as well.

An entry this version cannot parse is *unreadable* (corrupt, truncated, not ours) unless it is
a well-formed entry of another schema (a newer luigi_repro sharing the cache): then the blobs it
names are found in its JSON, so a gc by an older version never takes them from under it.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import json
import os
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import attrs

from luigi_repro.runcacheentry import _TOOL as ENTRY_TOOL
from luigi_repro.runcacheentry import ENTRY_SCHEMA, EntryError, parse_entry
from luigi_repro.runcachestore import CacheStore, LocalStore, StoredItem

__all__ = [
    "CacheStats",
    "Survey",
    "SurveyedEntry",
    "cache_stats",
    "remove_temporary",
    "survey",
    "when",
]

#: The names the local store gives its temporaries (``<pid>-<16 hex>``); nothing else is ours.
_TEMPORARY = re.compile(r"\d+-[0-9a-f]{16}")


@attrs.frozen
class SurveyedEntry:
    """One entry: its action key, size and last use, the digests of the blobs it names, the
    task it was stored for, and why it cannot be used (None when it can)."""

    name: str
    size: int
    last_used: float
    blobs: Tuple[str, ...] = ()
    problem: Optional[str] = None
    other_schema: bool = False
    task: Optional[str] = None


@attrs.frozen
class Survey:
    """Everything in one store, listed once."""

    location: str
    entries: Tuple[SurveyedEntry, ...]
    blobs: Mapping[str, StoredItem]
    temporaries: Tuple[StoredItem, ...]

    def blob_size(self, digest: str) -> int:
        """The stored blob's size; 0 when it is not stored (gone, or never finished)."""
        item = self.blobs.get(digest)
        return 0 if item is None else item.size


def _digests_in(document: Any) -> Iterator[str]:
    """Every ``"digest"`` string anywhere in a JSON document (iteratively: any depth)."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            digest = value.get("digest")
            if isinstance(digest, str):
                yield digest
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _other_schema_blobs(data: bytes) -> Optional[Tuple[str, ...]]:
    """The blobs of a well-formed entry of another schema, or None when it is not one."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("tool") != ENTRY_TOOL:
        return None
    schema = document.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema == ENTRY_SCHEMA:
        return None
    return tuple(sorted(set(_digests_in(document))))


def _surveyed(item: StoredItem, data: bytes) -> SurveyedEntry:
    # No signing key: whether an entry may be restored is the restoring run's decision; what
    # gc needs is which blobs it names, so that a kept entry keeps them.
    try:
        entry = parse_entry(data, None)
        if entry.action_key != item.name:
            raise EntryError("it is stored under another action key")
    except EntryError as exc:
        others = _other_schema_blobs(data)
        if others is None and not exc.removable:  # e.g. an output kind of a newer version
            others = tuple(sorted(set(_digests_in(json.loads(data.decode("utf-8"))))))
        if others is not None:
            return SurveyedEntry(item.name, item.size, item.last_used, others, other_schema=True)
        return SurveyedEntry(item.name, item.size, item.last_used, problem=str(exc))
    digests = tuple(sorted({blob.digest for blob in entry.blobs()}))
    return SurveyedEntry(item.name, item.size, item.last_used, digests, task=entry.task_id)


def _local_temporaries(store: CacheStore) -> Iterator[StoredItem]:
    """The local store's ``tmp/`` files (name = file name); last use counts the inode change
    too, as a temporary made by linking an output keeps the output's old mtime."""
    if not isinstance(store, LocalStore):
        return
    try:
        with os.scandir(os.path.join(store.root, "tmp")) as found:
            items = [item for item in found if _TEMPORARY.fullmatch(item.name)]
    except FileNotFoundError:
        return
    for item in items:
        try:
            st = item.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield StoredItem(item.name, st.st_size, max(st.st_mtime, st.st_ctime))


def remove_temporary(store: CacheStore, name: str) -> None:
    """Delete one of the local store's temporaries (no error when it is gone)."""
    if not isinstance(store, LocalStore) or not _TEMPORARY.fullmatch(name):
        raise ValueError(f"{name!r} is not a temporary of this run cache")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(store.root, "tmp", name))


def survey(store: CacheStore) -> Survey:
    """List ``store``'s entries (each read and parsed), blobs and temporaries."""
    entries: List[SurveyedEntry] = []
    for item in store.entries():
        try:
            data = store.read_entry(item.name)
        except ValueError:
            continue  # a file whose name is no action key: not ours to count or remove
        if data is not None:  # else removed since it was listed
            entries.append(_surveyed(item, data))
    blobs = {item.name: item for item in store.blobs()}
    temporaries = tuple(_local_temporaries(store))
    return Survey(store.location, tuple(entries), blobs, temporaries)


def when(timestamp: Optional[float]) -> Optional[str]:
    """A time as ISO 8601 in UTC (as records write times), or None."""
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.isoformat(timespec="seconds")


@attrs.frozen
class CacheStats:
    """The figures ``cache stats`` prints."""

    entries: int
    unreadable_entries: int
    other_schema_entries: int
    blobs: int
    blob_bytes: int
    referenced_bytes: int
    logical_bytes: int
    shared_bytes: int
    unreferenced_blobs: int
    unreferenced_bytes: int
    missing_blobs: int
    temporaries: int
    temporary_bytes: int
    oldest_use: Optional[float]
    newest_use: Optional[float]

    def document(self) -> Dict[str, Any]:
        """The figures as the JSON of ``cache stats --format json`` has them."""
        fields = attrs.asdict(self)
        fields["oldest_use"], fields["newest_use"] = when(self.oldest_use), when(self.newest_use)
        return fields


def cache_stats(found: Survey) -> CacheStats:
    """Counts and sizes of a survey.

    ``logical_bytes`` counts a blob once per entry naming it (what the entries would take
    without sharing); ``shared_bytes`` counts once each blob named by more than one entry.
    """
    uses = collections.Counter(digest for entry in found.entries for digest in entry.blobs)
    usable = [entry for entry in found.entries if entry.problem is None]
    unreferenced = [item for name, item in found.blobs.items() if name not in uses]
    times = [entry.last_used for entry in found.entries]
    return CacheStats(
        entries=len(found.entries),
        unreadable_entries=len(found.entries) - len(usable),
        other_schema_entries=sum(1 for entry in found.entries if entry.other_schema),
        blobs=len(found.blobs),
        blob_bytes=sum(item.size for item in found.blobs.values()),
        referenced_bytes=sum(found.blob_size(digest) for digest in uses),
        logical_bytes=sum(found.blob_size(d) for entry in usable for d in entry.blobs),
        shared_bytes=sum(found.blob_size(digest) for digest, n in uses.items() if n > 1),
        unreferenced_blobs=len(unreferenced),
        unreferenced_bytes=sum(item.size for item in unreferenced),
        missing_blobs=sum(1 for digest in uses if digest not in found.blobs),
        temporaries=len(found.temporaries),
        temporary_bytes=sum(item.size for item in found.temporaries),
        oldest_use=min(times, default=None),
        newest_use=max(times, default=None),
    )
