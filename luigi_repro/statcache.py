"""Reusing a fingerprint without reading the file, when its stat proves the file is unchanged.

Re-hashing unchanged data on every check is the main cost to avoid. A fingerprint is reused only
when ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)`` is the same as when it was taken.
``ctime`` cannot be set back by ``utime``, so an edit followed by restoring the mtime is caught.

Racy rule: a fingerprint taken less than ``racy_window`` after the file's mtime (or ctime) is
not trusted later, because a write within the file system's timestamp granularity could leave
the stat unchanged. Such files are hashed again; the new fingerprint, taken long after the
write, is kept in the persistent cache and trusted from then on. A file whose stat differs before
and after hashing was being written while we read it: its fingerprint is used once, never cached.

Fingerprints of outputs travel in their records (``hint``); files without a record (raw inputs,
outputs of plain Luigi tasks, racy outputs) use :class:`PersistentStatCache`, one SQLite file per
user that any number of processes may share.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Callable, Dict, Optional, Tuple

from luigi_repro.fingerprint import Counters, hash_file
from luigi_repro.fsclock import fs_now_ns
from luigi_repro.localpath import physical_path
from luigi_repro.statstore import (
    BUSY_TIMEOUT_SECONDS,
    CachedFingerprint,
    PersistentStatCache,
    StatKey,
    pack_stat,
)
from luigi_repro.writerrights import check_may_read

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "CachedFingerprint",
    "PersistentStatCache",
    "StatKey",
    "fingerprint_file",
    "flush_stat_caches",
    "open_stat_cache",
    "pack_stat",
]


#: How often a file that keeps changing while it is hashed is tried again.
_UNSTABLE_RETRIES = 3


#: Computes ``(fingerprint, size)`` of the file at a path with an algorithm.
Digest = Callable[[str, str, Optional[Counters]], Tuple[str, int]]

_caches: Dict[str, PersistentStatCache] = {}
_caches_lock = threading.Lock()


def forget_folders() -> None:
    """Forget what every open cache remembers of folders in this process."""
    with _caches_lock:
        caches = list(_caches.values())
    for cache in caches:
        cache.folders.forget()


def flush_stat_caches() -> None:
    """Write every cache's pending entries (after each check, and when the process exits)."""
    with _caches_lock:
        caches = list(_caches.values())
    for cache in caches:
        cache.flush()


atexit.register(flush_stat_caches)


def open_stat_cache(path: Optional[str]) -> Optional[PersistentStatCache]:
    """The process-wide cache object for ``path`` (None or empty disables caching)."""
    if not path:
        return None
    with _caches_lock:
        cache = _caches.get(path)
        if cache is None:
            cache = _caches[path] = PersistentStatCache(path)
        return cache


def _stat(path: str, counters: Optional[Counters]) -> os.stat_result:
    if counters is not None:
        counters.files_statted += 1
    return os.stat(path)


def fingerprint_file(
    path: str,
    algorithm: str,
    *,
    hint: Optional[CachedFingerprint] = None,
    cache: Optional[PersistentStatCache] = None,
    racy_window_ns: int = 2_000_000_000,
    counters: Optional[Counters] = None,
    stat: Optional[os.stat_result] = None,
    kind: str = "bytes",
    digest: Optional[Digest] = None,
) -> CachedFingerprint:
    """The fingerprint of a local file, read only when neither ``hint`` nor ``cache`` can vouch.

    ``digest`` computes it when it must be read: the file's bytes by default; another ``kind``
    (e.g. ``"table"``, the data a Parquet file holds) keeps its own place in the cache.
    Raises ``OSError`` (``FileNotFoundError``…) when the file cannot be statted or read.
    """
    digest = digest or hash_file
    st = stat if stat is not None else _stat(path, counters)
    check_may_read(path, st)  # before any remembered fingerprint of it is used
    key = StatKey.of(st)
    if hint is not None and hint.trusted_for(key, algorithm, racy_window_ns):
        return hint
    cache_key = physical_path(path)
    slot = algorithm if kind == "bytes" else f"{algorithm}+{kind}"
    if cache is not None:
        cached = cache.get(cache_key, slot)
        if cached is not None and cached.trusted_for(key, algorithm, racy_window_ns):
            return cached
    for _ in range(_UNSTABLE_RETRIES):
        # Taken before reading: a write landing in a part already read must still look racy.
        # Read from the file system's clock, which stamped the file (a file server's may lag).
        taken_at = fs_now_ns(path, key.dev)
        fingerprint, size = digest(path, algorithm, counters)
        after = StatKey.of(_stat(path, counters))
        if after == key:
            entry = CachedFingerprint(fingerprint, size, key, taken_at)
            if cache is not None and not entry.is_racy(racy_window_ns):
                cache.put(cache_key, entry, slot)
            return entry
        key = after
    return CachedFingerprint(fingerprint, size, None, taken_at)
