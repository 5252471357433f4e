"""The persistent stat cache: fingerprints of files without a record, in one SQLite file per user.

Kept apart from the reuse rules (when a stat proves a file unchanged) because it is storage: any
number of processes share the file, so it deals with locking, busy retries and unsafe places.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat as stat_module
import sys
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import attrs

from luigi_repro.fingerprint import (
    algorithm_of,
)
from luigi_repro.foldermemory import FolderMemory
from luigi_repro.log import logger


def default_stat_cache_path() -> str:
    """``luigi_repro/statcache.sqlite3`` in the user's cache folder (XDG on Linux)."""
    if sys.platform == "win32":  # pragma: no cover - not tested on Windows
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    elif sys.platform == "darwin":  # pragma: no cover - not tested on macOS
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "luigi_repro", "statcache.sqlite3")


def pack_stat(dev: int, ino: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    """A stat as the persistent cache stores it: ``"dev:ino:size:mtime_ns:ctime_ns"``."""
    return f"{dev}:{ino}:{size}:{mtime_ns}:{ctime_ns}"


@attrs.frozen
class StatKey:
    """The part of ``os.stat`` that changes whenever a file's content may have changed."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def to_json(self) -> Dict[str, int]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> StatKey:
        """Build from a record's dict; ValueError if any field is missing or not an integer."""
        if not isinstance(data, dict):
            raise ValueError("stat must be an object")
        values = []
        for field in attrs.fields(cls):
            value = data.get(field.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"stat.{field.name} must be an integer")
            values.append(value)
        return cls(*values)


@attrs.frozen
class CachedFingerprint:
    """A fingerprint with the stat of the file it was taken from and when it was taken.

    ``stat`` is None when the file changed while it was hashed: such a value is never reused.
    """

    fingerprint: str
    size: int
    stat: Optional[StatKey]
    taken_at_ns: int

    @property
    def algorithm(self) -> str:
        return algorithm_of(self.fingerprint)

    def is_racy(self, window_ns: int) -> bool:
        """True when the file may have been written within timestamp granularity of the hash.

        Both timestamps count: a tool that sets an old mtime (``cp -p``, ``tar x``) leaves the
        ctime as the only trace of the write.
        """
        if self.stat is None:
            return True
        return self.taken_at_ns - max(self.stat.mtime_ns, self.stat.ctime_ns) < window_ns

    def trusted_for(self, stat: StatKey, algorithm: str, window_ns: int) -> bool:
        """May this fingerprint stand for a file that now has ``stat``?"""
        return self.stat == stat and self.algorithm == algorithm and not self.is_racy(window_ns)


#: How long SQLite waits for another process's lock on the cache. The cache only saves time, so
#: a process that would wait longer (another process holding the file locked) goes on without it.
BUSY_TIMEOUT_SECONDS = 1.0
#: Entries written per transaction at most.
_BATCH = 512


def _unsafe_place(path: str) -> Optional[str]:
    """Why the cache at ``path`` must not be opened, or None.

    Its fingerprints stand in for reading files, so a cache someone else can write could vouch
    for anything; and SQLite follows symlinks, so a link planted at its name (or at its
    ``-wal``/``-shm`` companions) would make us write wherever it points. The folder must be
    ours (or root's) and not writable by everyone; the files, when they exist, ours and not
    symlinks.
    """
    me = os.geteuid()
    folder = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(folder)
    except OSError as exc:
        return f"its folder cannot be used ({exc.strerror or exc})"
    if st.st_uid not in (me, 0) or st.st_mode & stat_module.S_IWOTH:
        return f"its folder {folder} can be written by other users"
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"{name} cannot be checked ({exc.strerror or exc})"
        if stat_module.S_ISLNK(st.st_mode):
            return f"{name} is a symlink"
        if st.st_uid != me:
            return f"{name} belongs to another user"
    return None


class PersistentStatCache:
    """Fingerprints of files without records, keyed by absolute path and algorithm, in SQLite.

    Safe under concurrent processes (SQLite's own locking, WAL journal, busy timeout) and across
    ``fork`` (each process opens its own connection). The cache is only ever an optimisation: any
    database error, or a lock held by another process for more than ``BUSY_TIMEOUT_SECONDS``,
    disables it for this process with one warning, and checks carry on by hashing.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: Optional[sqlite3.Connection] = None
        self._pid = -1
        self._disabled = False
        # Entries this process has read or written, in front of SQLite. Every use is validated
        # by the stat anyway, so an entry inherited through fork is as safe as a fresh one.
        self._memory: Dict[Tuple[str, str], Optional[CachedFingerprint]] = {}
        # Written in batches (one transaction each): a commit per file cost more than the
        # check itself. Losing unwritten entries in a crash only means hashing those again.
        self._pending: Dict[Tuple[bytes, str], Tuple[Any, ...]] = {}
        self._pending_pid = os.getpid()
        #: Folders without a record as this process last saw them (see ``foldermemory``).
        self.folders = FolderMemory()

    def _connection(self) -> Optional[sqlite3.Connection]:
        if self._disabled:
            return None
        if self._conn is None or self._pid != os.getpid():
            # A connection inherited through fork must not be used by the child.
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            problem = _unsafe_place(self.path)
            if problem is not None:
                raise OSError(problem)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
            try:
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self._pid = os.getpid()
        return self._conn

    @staticmethod
    def _prepare(conn: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment without writers and SQLite does not wait for it; once
        # any process has switched, the setting stays in the file, so a busy database is fine.
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS remote ("
            " uri TEXT NOT NULL, slot TEXT NOT NULL, state TEXT NOT NULL,"
            " size INTEGER NOT NULL, fingerprint TEXT NOT NULL,"
            " PRIMARY KEY (uri, slot)) WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS fingerprints ("
            " path BLOB NOT NULL, algorithm TEXT NOT NULL, stat TEXT NOT NULL,"
            " size INTEGER NOT NULL, taken_at_ns INTEGER NOT NULL, fingerprint TEXT NOT NULL,"
            " PRIMARY KEY (path, algorithm)) WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS audits (key TEXT NOT NULL PRIMARY KEY, entry TEXT NOT NULL)"
        )
        conn.commit()

    def _guard(self, action: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            try:
                conn = self._connection()
                return None if conn is None else action(conn)
            except (sqlite3.Error, OSError) as exc:
                self._disabled = True
                problem = str(exc)
                if "locked" in problem or "busy" in problem:
                    problem = (
                        f"another process has held it locked for over {BUSY_TIMEOUT_SECONDS:g} s"
                    )
                logger.warning(
                    "luigi_repro: the stat cache %s is unusable (%s); this process goes on "
                    "without it: files without a record will be hashed on every check.",
                    self.path,
                    problem,
                )
                return None

    def get(self, path: str, algorithm: str) -> Optional[CachedFingerprint]:
        """The cached fingerprint of ``path``, or None."""
        if not self._disabled and (path, algorithm) in self._memory:
            return self._memory[(path, algorithm)]
        found = self._query(path, algorithm)
        # A miss is remembered too (a file just written is looked up on every check while it is
        # too fresh to be cached); another process's later entry is then only not used here.
        self._remember(path, algorithm, found)
        return found

    def _remember(self, path: str, slot: str, entry: Optional[CachedFingerprint]) -> None:
        if len(self._memory) > 100_000:
            self._memory.clear()
        self._memory[(path, slot)] = entry

    def _query(self, path: str, algorithm: str) -> Optional[CachedFingerprint]:

        def query(conn: sqlite3.Connection) -> Any:
            return conn.execute(
                "SELECT stat, size, taken_at_ns, fingerprint FROM fingerprints"
                " WHERE path = ? AND algorithm = ?",
                (os.fsencode(path), algorithm),
            ).fetchone()

        row = self._guard(query)
        if row is None:
            return None
        try:
            stat = StatKey(*(int(part) for part in str(row[0]).split(":")))
            return CachedFingerprint(str(row[3]), int(row[1]), stat, int(row[2]))
        except (TypeError, ValueError):
            return None

    def entries_below(self, folder: str, slot: str) -> Dict[str, Tuple[str, int, str]]:
        """Every entry for a path inside ``folder`` (absolute) as ``{path: (packed stat,
        taken_at_ns, fingerprint)}``: one query for a folder of any size, where asking file by
        file cost more than the whole walk. The packed stat is ``pack_stat``'s string."""
        self.flush()  # what this process put is written, so one query sees it all
        low = os.fsencode(folder.rstrip(os.sep) + os.sep)
        high = low[:-1] + bytes([low[-1] + 1])

        def query(conn: sqlite3.Connection) -> Any:
            return conn.execute(
                "SELECT path, stat, taken_at_ns, fingerprint FROM fingerprints"
                " WHERE path >= ? AND path < ? AND algorithm = ?",
                (low, high, slot),
            ).fetchall()

        rows = self._guard(query) or ()
        return {
            path.decode("utf-8", "surrogateescape"): (packed, taken_at, fingerprint)
            for path, packed, taken_at, fingerprint in rows
            if isinstance(path, bytes) and isinstance(taken_at, int)
        }

    def put(self, path: str, entry: CachedFingerprint, slot: Optional[str] = None) -> None:
        """Remember ``entry`` for ``path`` (only stable, non-racy entries are worth keeping).

        ``slot`` (the algorithm by default) separates kinds of fingerprint of one file, such as
        its bytes and the table it holds.
        """
        if entry.stat is None:
            return
        slot = slot or entry.algorithm
        st = entry.stat
        packed = pack_stat(st.dev, st.ino, st.size, st.mtime_ns, st.ctime_ns)
        encoded = os.fsencode(path)
        row = (encoded, slot, packed, entry.size, entry.taken_at_ns, entry.fingerprint)
        with self._lock:
            self._own_pending()
            self._pending[(encoded, slot)] = row
            waiting = len(self._pending)
        if not self._disabled:
            self._remember(path, slot, entry)
        if waiting >= _BATCH:
            self.flush()

    def _own_pending(self) -> None:
        """Drop entries inherited through fork: the parent writes its own (lock held)."""
        if self._pending_pid != os.getpid():
            self._pending.clear()
            self._pending_pid = os.getpid()

    def flush(self) -> None:
        """Write the entries put since the last flush (the end of every check calls this)."""
        with self._lock:
            self._own_pending()
            rows = list(self._pending.values())
            self._pending.clear()
        if not rows or self._disabled:
            return

        def store(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?, ?, ?, ?)", rows
                )

        self._guard(store)

    def get_state(self, uri: str, slot: str) -> Optional[Tuple[str, int, Dict[str, Any]]]:
        """``(fingerprint, size, state)`` last seen for remote content (an S3 object…).

        The state (ETag, size, version) is the remote store's proof of unchanged content; the
        caller compares it with what the store reports now.
        """

        def query(conn: sqlite3.Connection) -> Any:
            return conn.execute(
                "SELECT fingerprint, size, state FROM remote WHERE uri = ? AND slot = ?",
                (uri, slot),
            ).fetchone()

        row = self._guard(query)
        if row is None:
            return None
        try:
            state = json.loads(row[2])
        except ValueError:
            return None
        return (str(row[0]), int(row[1]), state) if isinstance(state, dict) else None

    def put_state(
        self, uri: str, slot: str, fingerprint: str, size: int, state: Mapping[str, Any]
    ) -> None:
        """Remember the fingerprint of remote content together with its state."""
        packed = json.dumps(dict(state), sort_keys=True)

        def store(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    "INSERT OR REPLACE INTO remote VALUES (?, ?, ?, ?, ?)",
                    (uri, slot, packed, size, fingerprint),
                )

        self._guard(store)

    def get_audit(self, key: str) -> Optional[str]:
        """The remembered audit stored under ``key`` (see :mod:`luigi_repro.auditmemory`)."""

        def query(conn: sqlite3.Connection) -> Any:
            return conn.execute("SELECT entry FROM audits WHERE key = ?", (key,)).fetchone()

        row = self._guard(query)
        return row[0] if row is not None and isinstance(row[0], str) else None

    def put_audit(self, key: str, entry: str) -> None:
        """Store a remembered audit under ``key``, replacing any earlier one (one transaction)."""

        def store(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("INSERT OR REPLACE INTO audits VALUES (?, ?)", (key, entry))

        self._guard(store)

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
