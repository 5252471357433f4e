"""Reusing fingerprints when a file's stat proves it unchanged."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from files import write
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import fingerprints

from luigi_repro.fingerprint import Counters, diff_manifests, hash_bytes, hash_file, hash_stream
from luigi_repro.folderprint import fingerprint_directory
from luigi_repro.log import LOGGER_NAME
from luigi_repro.statcache import (
    CachedFingerprint,
    PersistentStatCache,
    StatKey,
    fingerprint_file,
    open_stat_cache,
)

ALGO = "sha256"

#: A racy window short enough for tests to wait it out: files "settle" after it has passed.
WINDOW_NS = 50_000_000

FIELDS = ("dev", "ino", "size", "mtime_ns", "ctime_ns")

u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
n63 = st.integers(0, 2**63 - 1)
stat_keys = st.builds(StatKey, dev=u64, ino=u64, size=n63, mtime_ns=i64, ctime_ns=i64)
#: Stats of files last changed by a write, which sets mtime and ctime to the same moment.
written_keys = st.builds(
    lambda dev, ino, size, when: StatKey(dev, ino, size, when, when),
    u64,
    u64,
    n63,
    st.integers(-(2**62), 2**62),
)
entries = st.builds(
    CachedFingerprint, fingerprint=fingerprints, size=n63, stat=stat_keys, taken_at_ns=n63
)


def settle() -> None:
    """Wait until files written so far are older than WINDOW_NS (mtime and ctime alike)."""
    time.sleep(WINDOW_NS / 1e9 + 0.02)


def overwrite_keeping_mtime(path: str, data: bytes) -> None:
    """Rewrite ``path`` in place, then set its atime and mtime back to what they were."""
    before = os.stat(path)
    with open(path, "r+b") as stream:
        stream.write(data)
        stream.truncate()
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def hashed(path: str, *, hint: Optional[CachedFingerprint] = None, **kwargs: Any) -> int:
    """How many files ``fingerprint_file`` read to answer for ``path``."""
    counters = Counters()
    fingerprint_file(path, ALGO, hint=hint, counters=counters, **kwargs)
    return counters.files_hashed


def cache_at(path: str = "cache/stat.sqlite3") -> PersistentStatCache:
    return PersistentStatCache(os.path.abspath(path))


# --- StatKey --------------------------------------------------------------------------------------


@given(key=stat_keys)
def test_stat_key_json_round_trip(key: StatKey) -> None:
    """A StatKey survives to_json, a JSON text round trip and from_json unchanged."""
    assert StatKey.from_json(json.loads(json.dumps(key.to_json()))) == key


def test_stat_key_of_reads_the_identifying_fields() -> None:
    """``StatKey.of`` keeps device, inode, size and the nanosecond mtime and ctime of a stat."""
    st_ = os.stat(write("f.txt", b"hello"))
    key = StatKey.of(st_)
    assert key == StatKey(st_.st_dev, st_.st_ino, 5, st_.st_mtime_ns, st_.st_ctime_ns)


def _bad_stat_documents() -> List[Any]:
    good = dict.fromkeys(FIELDS, 1)
    bad: List[Any] = [None, [], [1, 2, 3, 4, 5], "1:2:3:4:5", 7]
    for name in FIELDS:
        bad.append({k: v for k, v in good.items() if k != name})
        bad.extend({**good, name: value} for value in ("1", 1.0, True, None, [1]))
    return bad


@pytest.mark.parametrize("document", _bad_stat_documents())
def test_stat_key_from_json_rejects_bad_input(document: Any) -> None:
    """Anything but an object of five integers (booleans excluded) raises ValueError."""
    with pytest.raises(ValueError, match="stat"):
        StatKey.from_json(document)


# --- CachedFingerprint ----------------------------------------------------------------------------


@given(key=written_keys, delay=st.integers(-(10**12), 10**12), window=st.integers(0, 10**10))
def test_fingerprint_is_racy_when_taken_within_window_of_the_write(
    key: StatKey, delay: int, window: int
) -> None:
    """A fingerprint taken less than ``window`` after the write (or before it) is racy, else not."""
    entry = CachedFingerprint("sha256:00", key.size, key, key.mtime_ns + delay)
    assert entry.is_racy(window) == (delay < window)


@given(taken=n63, window=st.integers(0, 10**10))
def test_unstable_fingerprint_is_always_racy(taken: int, window: int) -> None:
    """An entry without a stat (file changed while hashed) is racy for every window."""
    assert CachedFingerprint("sha256:00", 0, None, taken).is_racy(window)


@given(key=written_keys, field=st.sampled_from(FIELDS), bump=st.integers(1, 10))
def test_trusted_for_needs_same_stat_algorithm_and_no_race(
    key: StatKey, field: str, bump: int
) -> None:
    """Trust needs the exact stat, the same algorithm and no race; any difference breaks it."""
    settled = CachedFingerprint(hash_bytes(b"x", ALGO), key.size, key, key.mtime_ns + 10)
    assert settled.trusted_for(key, ALGO, window_ns=5)
    other = StatKey(**{**key.to_json(), field: getattr(key, field) + bump})
    assert not settled.trusted_for(other, ALGO, window_ns=5)
    assert not settled.trusted_for(key, "xxh3_128", window_ns=5)
    assert not settled.trusted_for(key, ALGO, window_ns=11)
    unstable = CachedFingerprint(settled.fingerprint, key.size, None, key.mtime_ns + 10)
    assert not unstable.trusted_for(key, ALGO, window_ns=5)


# --- fingerprint_file -----------------------------------------------------------------------------


def test_fingerprint_file_hashes_and_records_the_stat() -> None:
    """A first fingerprint reads the file and keeps its size, its stat and when it was taken."""
    path = write("f.txt", b"content")
    counters = Counters()
    before = time.time_ns()
    entry = fingerprint_file(path, ALGO, counters=counters)
    assert entry.fingerprint == hash_bytes(b"content", ALGO)
    assert entry.size == 7
    assert entry.stat == StatKey.of(os.stat(path))
    assert before <= entry.taken_at_ns <= time.time_ns()
    assert (counters.files_hashed, counters.bytes_hashed) == (1, 7)
    assert counters.files_statted >= 1


def test_missing_file_raises_file_not_found() -> None:
    """A path that does not exist raises FileNotFoundError rather than yielding a fingerprint."""
    with pytest.raises(FileNotFoundError):
        fingerprint_file("absent.txt", ALGO)


def test_settled_hint_is_reused_without_reading() -> None:
    """A non-racy hint whose stat still matches is returned as is and no byte is read."""
    path = write("f.txt", b"content")
    settle()
    hint = fingerprint_file(path, ALGO, racy_window_ns=WINDOW_NS)
    counters = Counters()
    again = fingerprint_file(path, ALGO, hint=hint, racy_window_ns=WINDOW_NS, counters=counters)
    assert again == hint
    assert (counters.files_hashed, counters.bytes_hashed) == (0, 0)


def _append(path: str) -> None:
    with open(path, "ab") as stream:
        stream.write(b"!")


def _append_keeping_mtime(path: str) -> None:
    before = os.stat(path)
    _append(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _touch(path: str) -> None:
    os.utime(path)


def _same_size_swap_keeping_mtime(path: str) -> None:
    overwrite_keeping_mtime(path, b"CONTENT")


def _replace_by_rename(path: str) -> None:
    before = os.stat(path)
    write(path + ".new", b"CONTENT")
    os.utime(path + ".new", ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(path + ".new", path)


@pytest.mark.parametrize(
    "edit",
    [_append, _append_keeping_mtime, _touch, _same_size_swap_keeping_mtime, _replace_by_rename],
)
def test_changed_stat_forces_a_rehash(edit: Any) -> None:
    """A size, mtime, ctime-only or inode change makes the hint untrusted and the file re-read."""
    path = write("f.txt", b"content")
    settle()
    hint = fingerprint_file(path, ALGO, racy_window_ns=WINDOW_NS)
    edit(path)
    counters = Counters()
    fresh = fingerprint_file(path, ALGO, hint=hint, racy_window_ns=WINDOW_NS, counters=counters)
    assert counters.files_hashed == 1
    assert fresh.fingerprint == hash_bytes(Path(path).read_bytes(), ALGO)
    assert fresh.stat == StatKey.of(os.stat(path))


def test_edit_restoring_mtime_is_caught_by_ctime() -> None:
    """Swapping same-size content and restoring the mtime with utime is caught: only ctime moved."""
    path = write("f.txt", b"aaaa")
    settle()
    hint = fingerprint_file(path, ALGO, racy_window_ns=WINDOW_NS)
    overwrite_keeping_mtime(path, b"bbbb")
    now = StatKey.of(os.stat(path))
    assert hint.stat is not None
    assert (now.dev, now.ino, now.size, now.mtime_ns) == (
        hint.stat.dev,
        hint.stat.ino,
        hint.stat.size,
        hint.stat.mtime_ns,
    )
    fresh = fingerprint_file(path, ALGO, hint=hint, racy_window_ns=WINDOW_NS)
    assert fresh.fingerprint == hash_bytes(b"bbbb", ALGO) != hint.fingerprint


def test_hint_of_another_algorithm_is_not_used() -> None:
    """A hint made with another algorithm is not used: the file is hashed with the one asked for."""
    path = write("f.txt", b"content")
    settle()
    hint = fingerprint_file(path, "xxh3_128", racy_window_ns=WINDOW_NS)
    counters = Counters()
    entry = fingerprint_file(path, ALGO, hint=hint, racy_window_ns=WINDOW_NS, counters=counters)
    assert counters.files_hashed == 1
    assert entry.fingerprint == hash_bytes(b"content", ALGO)


def test_racy_fingerprint_is_rehashed_and_not_cached() -> None:
    """A fingerprint taken right after a write is not trusted next time nor stored in the cache."""
    path = write("f.txt", b"content")
    cache = cache_at()
    first = fingerprint_file(path, ALGO, cache=cache)  # default window: 2 s
    assert first.is_racy(2_000_000_000)
    assert cache.get(os.path.abspath(path), ALGO) is None
    assert hashed(path, hint=first, cache=cache) == 1


def test_settled_fingerprint_is_cached_and_reused() -> None:
    """A non-racy fingerprint is cached and then vouches for the file, also once reopened."""
    path = write("f.txt", b"content")
    settle()
    cache = cache_at()
    first = fingerprint_file(path, ALGO, cache=cache, racy_window_ns=WINDOW_NS)
    assert cache.get(os.path.abspath(path), ALGO) == first
    assert hashed(path, cache=cache, racy_window_ns=WINDOW_NS) == 0
    cache.close()
    assert hashed(path, cache=cache_at(), racy_window_ns=WINDOW_NS) == 0
    assert hashed(path, racy_window_ns=WINDOW_NS) == 1


def test_cached_fingerprint_is_not_trusted_after_an_edit() -> None:
    """The persistent cache does not vouch for a file whose stat changed since it was stored."""
    path = write("f.txt", b"aaaa")
    settle()
    cache = cache_at()
    fingerprint_file(path, ALGO, cache=cache, racy_window_ns=WINDOW_NS)
    overwrite_keeping_mtime(path, b"bbbb")
    counters = Counters()
    entry = fingerprint_file(path, ALGO, cache=cache, racy_window_ns=WINDOW_NS, counters=counters)
    assert counters.files_hashed == 1
    assert entry.fingerprint == hash_bytes(b"bbbb", ALGO)


def test_file_changing_during_every_hash_is_returned_unstable_and_not_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file that changes during every read gets a stat-less entry, never cached nor trusted."""
    path = write("f.txt", b"content")
    settle()

    def hash_then_append(*args: Any, **kwargs: Any) -> Tuple[str, int]:
        result = hash_file(*args, **kwargs)
        _append(path)
        return result

    cache = cache_at()
    with monkeypatch.context() as patch:
        patch.setattr("luigi_repro.statcache.hash_file", hash_then_append)
        entry = fingerprint_file(path, ALGO, cache=cache, racy_window_ns=WINDOW_NS)
    assert entry.stat is None
    assert cache.get(os.path.abspath(path), ALGO) is None
    assert hashed(path, hint=entry, cache=cache, racy_window_ns=0) == 1


def test_file_changing_during_first_hash_gets_the_new_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the file changes during the first read only, the result is the new content's."""
    path = write("f.txt", b"content")
    settle()
    torn: List[str] = []

    def change_during_first_read(*args: Any, **kwargs: Any) -> Tuple[str, int]:
        result = hash_file(*args, **kwargs)
        if not torn:
            torn.append(result[0])
            write(path, b"new content")
        return result

    cache = cache_at()
    monkeypatch.setattr("luigi_repro.statcache.hash_file", change_during_first_read)
    entry = fingerprint_file(path, ALGO, cache=cache, racy_window_ns=WINDOW_NS)
    assert torn == [hash_bytes(b"content", ALGO)]
    assert entry.fingerprint == hash_bytes(b"new content", ALGO)
    assert entry.stat == StatKey.of(os.stat(path))
    cached = cache.get(os.path.abspath(path), ALGO)
    assert cached is None or cached.fingerprint == entry.fingerprint


# --- PersistentStatCache --------------------------------------------------------------------------


@given(items=st.dictionaries(st.text(min_size=1, max_size=30), entries, min_size=1, max_size=5))
@settings(max_examples=30)
def test_cache_put_get_round_trip(items: Dict[str, CachedFingerprint]) -> None:
    """Every stored entry comes back equal, by path and algorithm, also through a new instance."""
    cache = cache_at()
    for path, entry in items.items():
        cache.put(path, entry)
    for path, entry in items.items():
        assert cache.get(path, entry.algorithm) == entry
    cache.close()
    reopened = cache_at()
    for path, entry in items.items():
        assert reopened.get(path, entry.algorithm) == entry
    reopened.close()


def test_cache_get_misses_unknown_paths_and_other_algorithms() -> None:
    """``get`` returns None for a path never stored and for a stored path in another algorithm."""
    cache = cache_at()
    assert cache.get("/nowhere", ALGO) is None
    entry = CachedFingerprint(hash_bytes(b"x", ALGO), 1, StatKey(1, 2, 1, 3, 4), 5)
    cache.put("/somewhere", entry)
    assert cache.get("/somewhere", ALGO) == entry
    assert cache.get("/somewhere", "xxh3_128") is None
    assert cache.get("/somewhere/else", ALGO) is None


def test_cache_keeps_the_latest_entry_and_ignores_unstable_ones() -> None:
    """A second put for the same path replaces the first; an entry without stat is not stored."""
    cache = cache_at()
    old = CachedFingerprint(hash_bytes(b"old", ALGO), 3, StatKey(1, 2, 3, 4, 5), 6)
    new = CachedFingerprint(hash_bytes(b"new", ALGO), 3, StatKey(1, 2, 3, 7, 8), 9)
    cache.put("/p", old)
    cache.put("/p", new)
    assert cache.get("/p", ALGO) == new
    cache.put("/q", CachedFingerprint(hash_bytes(b"q", ALGO), 1, None, 9))
    assert cache.get("/q", ALGO) is None


def _hammer(
    cache: PersistentStatCache,
    worker: int,
    start: Any,
    results: Any,
) -> None:
    """Child process body: 200 put/get pairs on the shared cache; report failures and warnings."""
    warnings: List[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    logging.getLogger(LOGGER_NAME).addHandler(Collect())
    problems: List[str] = []
    try:
        start.wait(timeout=30)
        for i in range(200):
            entry = CachedFingerprint(
                hash_bytes(f"{worker}/{i}".encode(), ALGO), i, StatKey(1, worker, i, i, i), i
            )
            cache.put(f"/w{worker}/{i}", entry)
            if cache.get(f"/w{worker}/{i}", ALGO) != entry:
                problems.append(f"entry {i} not read back")
            if cache.get("/parent", ALGO) is None:
                problems.append("parent's entry not visible")
        cache.flush()  # a forked child ends without exit handlers: write what it learned
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent
        problems.append(repr(exc))
    results.put((worker, problems[:3], warnings))


def test_cache_is_shared_by_concurrent_processes() -> None:
    """Four forked processes doing 200 puts and gets each on one cache all succeed; all is kept."""
    context = multiprocessing.get_context("fork")
    cache = cache_at()
    parent = CachedFingerprint(hash_bytes(b"parent", ALGO), 6, StatKey(1, 1, 6, 1, 1), 1)
    cache.put("/parent", parent)  # the connection opened here must not be used by the children
    start = context.Barrier(4)
    results = context.Queue()
    workers = [context.Process(target=_hammer, args=(cache, w, start, results)) for w in range(4)]
    for process in workers:
        process.start()
    reports = sorted(results.get(timeout=60) for _ in workers)
    for process in workers:
        process.join(timeout=60)
    assert [process.exitcode for process in workers] == [0, 0, 0, 0]
    assert reports == [(w, [], []) for w in range(4)]
    assert cache.get("/parent", ALGO) == parent
    fresh = cache_at()
    for worker in range(4):
        for i in (0, 199):
            found = fresh.get(f"/w{worker}/{i}", ALGO)
            assert found is not None
            assert found.size == i


def test_corrupt_cache_is_disabled_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A cache file that is not a database logs one warning; fingerprints are made by reading."""
    db = Path("cache/stat.sqlite3")
    db.parent.mkdir()
    db.write_bytes(b"this is not a database\n" * 300)
    path = write("f.txt", b"content")
    settle()
    cache = cache_at(str(db))
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        for _ in range(3):
            counters = Counters()
            entry = fingerprint_file(
                path, ALGO, cache=cache, racy_window_ns=WINDOW_NS, counters=counters
            )
            assert entry.fingerprint == hash_bytes(b"content", ALGO)
            assert counters.files_hashed == 1
        assert cache.get(os.path.abspath(path), ALGO) is None
    warnings = [r for r in caplog.records if r.name == LOGGER_NAME and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert os.path.abspath(db) in warnings[0].getMessage()


def test_open_stat_cache_disabled_or_shared() -> None:
    """No path means no cache; the same path always gives the same object, another path another."""
    assert open_stat_cache(None) is None
    assert open_stat_cache("") is None
    first = open_stat_cache(os.path.abspath("one.sqlite3"))
    assert first is not None
    assert open_stat_cache(os.path.abspath("one.sqlite3")) is first
    assert open_stat_cache(os.path.abspath("two.sqlite3")) is not first


# --- fingerprint_directory ------------------------------------------------------------------------


def _tree() -> Dict[str, bytes]:
    files = {"a.txt": b"alpha", "sub/b.txt": b"beta", "sub/deep/c.txt": b"gamma"}
    for rel, data in files.items():
        write(os.path.join("root", rel), data)
    return files


def test_directory_hints_avoid_reading_unchanged_files() -> None:
    """With valid, settled per-file hints, a folder is fingerprinted without reading any file."""
    files = _tree()
    settle()
    first = fingerprint_directory("root", ALGO, racy_window_ns=WINDOW_NS)
    assert first.manifest() == {rel: hash_bytes(data, ALGO) for rel, data in files.items()}
    assert first.size == sum(len(data) for data in files.values())
    assert first.stable
    counters = Counters()
    again = fingerprint_directory(
        "root", ALGO, known=first.known(), racy_window_ns=WINDOW_NS, counters=counters
    )
    assert counters.files_hashed == 0
    assert again.fingerprint == first.fingerprint


def test_directory_rehashes_only_the_changed_file() -> None:
    """After one file is edited, only that file is read again and only it shows as changed."""
    _tree()
    settle()
    first = fingerprint_directory("root", ALGO, racy_window_ns=WINDOW_NS)
    overwrite_keeping_mtime("root/sub/b.txt", b"BETA")
    counters = Counters()
    again = fingerprint_directory(
        "root", ALGO, known=first.known(), racy_window_ns=WINDOW_NS, counters=counters
    )
    assert (counters.files_hashed, counters.bytes_hashed) == (1, 4)
    assert diff_manifests(first.manifest(), again.manifest()).changed == ("sub/b.txt",)
    assert again.fingerprint != first.fingerprint


def test_directory_uses_the_persistent_cache() -> None:
    """Without hints, settled files already in the persistent cache are not read again."""
    _tree()
    settle()
    cache = cache_at()
    first = fingerprint_directory("root", ALGO, cache=cache, racy_window_ns=WINDOW_NS)
    counters = Counters()
    again = fingerprint_directory(
        "root", ALGO, cache=cache, racy_window_ns=WINDOW_NS, counters=counters
    )
    assert counters.files_hashed == 0
    assert again.fingerprint == first.fingerprint


# --- bugs -----------------------------------------------------------------------------------------


def test_non_utf8_file_name_with_cache() -> None:
    """A file whose name is not valid UTF-8 is fingerprinted through the persistent cache."""
    name = os.fsdecode(b"caf\xe9.txt")
    write(name, b"content")
    entry = fingerprint_file(name, ALGO, cache=cache_at())
    assert entry.fingerprint == hash_bytes(b"content", ALGO)


def test_first_open_waits_for_a_concurrent_writer(caplog: pytest.LogCaptureFixture) -> None:
    """Opening a new cache file while another connection holds its write lock waits, then works."""
    db = os.path.abspath("cache.sqlite3")
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    release.start()
    try:
        cache = cache_at(db)
        entry = CachedFingerprint(hash_bytes(b"x", ALGO), 1, StatKey(1, 2, 1, 3, 4), 5)
        with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
            cache.put("/p", entry)
            found = cache.get("/p", ALGO)
    finally:
        release.join()
        other.close()
    assert not caplog.records
    assert found == entry


def test_fingerprint_taken_just_after_ctime_is_racy() -> None:
    """A fingerprint taken just after a change is not trusted, even if utime set the mtime back."""
    path = write("f.txt", b"content")
    long_ago = time.time_ns() - 3_600 * 10**9
    os.utime(path, ns=(long_ago, long_ago))  # as cp -p, rsync -t or tar x do
    first = fingerprint_file(path, ALGO)  # default window: 2 s; the ctime is a few µs old
    assert hashed(path, hint=first) == 1


class _SlowReader:
    """A file read in two parts with a pause between them, like a large file on a slow disk."""

    def __init__(self, path: str, pause_s: float) -> None:
        self._data = Path(path).read_bytes()
        self._pos = 0
        self._pause_s = pause_s

    def read(self, size: int = -1) -> bytes:
        if self._pos == 1:
            time.sleep(self._pause_s)
        end = 1 if self._pos == 0 else len(self._data)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk


def test_slow_read_started_within_window_is_racy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fingerprint whose reading began within the racy window stays racy, however long it took."""
    window_ns = 300_000_000
    path = write("f.txt", b"content")

    def slow_hash_file(
        path: str, algorithm: str, counters: Optional[Counters] = None
    ) -> Tuple[str, int]:
        return hash_stream(_SlowReader(path, 0.4), algorithm, counters)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr("luigi_repro.statcache.hash_file", slow_hash_file)
        first = fingerprint_file(path, ALGO, racy_window_ns=window_ns)
    assert first.fingerprint == hash_bytes(b"content", ALGO)
    assert hashed(path, hint=first, racy_window_ns=window_ns) == 1


def _hold_exclusively(db: str, ready: Any, release: Any) -> None:
    """Child process body: lock the whole cache file (even readers wait) until told to stop."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("CREATE TABLE IF NOT EXISTS squatter (x)")
    ready.set()
    release.wait(timeout=60)
    conn.close()


@pytest.mark.timeout(30)
def test_cache_held_by_another_process_costs_at_most_about_a_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another process holding the cache locked: this one waits ~1 s once, warns once, and
    hashes on without it (it used to stall ~60 s)."""
    db = os.path.abspath("held.sqlite3")
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_exclusively, args=(db, ready, release))
    holder.start()
    try:
        assert ready.wait(timeout=20)
        path = write("f.txt", b"content")
        settle()
        cache = cache_at(db)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
            for _ in range(5):
                entry = fingerprint_file(path, ALGO, cache=cache, racy_window_ns=WINDOW_NS)
                assert entry.fingerprint == hash_bytes(b"content", ALGO)
                cache.flush()
        elapsed = time.monotonic() - started
    finally:
        release.set()
        holder.join(timeout=20)
    assert elapsed < 2.5, elapsed
    warnings = [r for r in caplog.records if r.name == LOGGER_NAME and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "another process has held it locked" in warnings[0].getMessage()


def test_a_cache_reached_through_a_planted_link_is_never_opened(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A symlink at the cache's name (to someone's database, or pointing nowhere), or a cache
    file owned by another user: the cache is not opened, with one warning, and nothing is
    written where the link points."""
    victim = tmp_path / "victim.db"
    victim.write_bytes(b"not yours\n")
    dangling = tmp_path / "nowhere" / "created"
    for target in (victim, dangling):
        db = tmp_path / f"cache-{target.name}.sqlite3"
        db.symlink_to(target)
        cache = cache_at(str(db))
        with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
            cache.put("/p", CachedFingerprint(hash_bytes(b"x", ALGO), 1, StatKey(1, 2, 1, 3, 4), 5))
            cache.flush()
            assert cache.get("/q", ALGO) is None
        assert "is a symlink" in caplog.text
        caplog.clear()
    assert victim.read_bytes() == b"not yours\n"
    assert not dangling.exists()
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign.sqlite3"
        sqlite3.connect(foreign).close()
        os.chown(foreign, 65534, 65534)
        with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
            assert cache_at(str(foreign)).get("/q", ALGO) is None
        assert "belongs to another user" in caplog.text
