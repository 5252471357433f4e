"""Change notifications for local files, so a remembered verdict can stand without a stat.

A long-lived process (a Luigi worker, a test session, a notebook) asks ``complete()`` of the
same tasks again and again. Revalidating a remembered verdict with a stat per file is cheap,
but a verdict also stands on every task upstream, and restating all of them on every call makes
a build quadratic. The kernel already knows when a file changes: Linux's inotify (through
``inotify_simple``, a thin, well-kept ctypes binding — a thread-based observer such as
``watchdog`` would deliver events late, and late means wrong here) queues an event for every
write, rename, deletion or permission change in a watched folder, whoever makes it.

:class:`ChangeWatch` watches every file a verdict was decided from, its folder (for files
made, renamed or removed there) and the folders above it (so that a renamed or replaced parent
folder is seen), *before* the file is read. The file's own watch also reports a write through a
hard link made later, which raises no event in the folder. :meth:`ChangeWatch.changes` drains
the queue: the paths that may have changed since.
Where notifications cannot be trusted the answer is "not watched", and the caller falls back
to revalidating by stat:

- file systems whose changes may come from elsewhere without an event (NFS, SMB, FUSE…; only
  the local types of :data:`~luigi_repro.fsclock.LOCAL_TYPES` are watched);
- symlinks and files that already have several hard links, and folders (their files would
  each need a watch of their own);
- a full event queue (every watched path counts as changed), and any system without inotify.

A forked child cannot read its parent's queue; :mod:`luigi_repro.forkhandoff` makes its watches
again and has the parent tell it what changed in between, so it keeps what the parent knew.

Files written through a shared memory map raise no event; such files must not be inputs of a
long-lived process's pipeline (the README says so).
"""

from __future__ import annotations

import contextlib
import os
import select
import stat as stat_module
import threading
from typing import Any, BinaryIO, Dict, Iterable, Optional, Set, Tuple

from luigi_repro.fsclock import LOCAL_TYPES, filesystem_type

__all__ = ["ChangeWatch", "Changes"]

try:  # Linux only; elsewhere every verdict is revalidated by stat
    from inotify_simple import INotify, flags  # type: ignore[import-untyped]  # no stubs
except ImportError:  # pragma: no cover - inotify_simple is a Linux dependency
    INotify = None
    flags = None

#: Events that may mean the content, the existence or the readability of a name changed.
if flags is not None:
    _MASK = (
        flags.MODIFY
        | flags.ATTRIB
        | flags.CLOSE_WRITE
        | flags.MOVED_FROM
        | flags.MOVED_TO
        | flags.CREATE
        | flags.DELETE
        | flags.DELETE_SELF
        | flags.MOVE_SELF
    )
    _GONE = flags.DELETE_SELF | flags.MOVE_SELF | flags.IGNORED | flags.UNMOUNT
    #: On a file itself: a write or a new hard link through any name raises these.
    _FILE_MASK = (
        flags.MODIFY | flags.ATTRIB | flags.CLOSE_WRITE | flags.DELETE_SELF | flags.MOVE_SELF
    )
else:  # pragma: no cover
    _MASK = _GONE = _FILE_MASK = 0

_MOUNTINFO = "/proc/self/mountinfo"

_LIMIT = "/proc/sys/fs/inotify/max_user_watches"


def watch_budget(limit_file: str = _LIMIT) -> int:
    """How many watches (folders and files) one process may hold: half of the kernel's limit for
    the user, which the kernel sizes by memory, so that other programs keep theirs. A pipeline
    holds about two per task (the output and its record); beyond the budget new files are
    revalidated by stat, and a build that outgrows it turns quadratic again."""
    try:
        with open(limit_file, "rb") as stream:
            limit = int(stream.read().strip() or b"0")
    except (OSError, ValueError):
        return 8192
    return max(1024, min(limit // 2, 1 << 21))


#: Beyond this many watches, new files are revalidated by stat instead.
MAX_WATCHES = watch_budget()


class Changes:
    """What may have changed since the last drain: exact paths and whole folder trees."""

    def __init__(self, everything: bool = False) -> None:
        self.everything = everything
        self.paths: Set[str] = set()
        self.trees: Set[str] = set()

    def __bool__(self) -> bool:
        return self.everything or bool(self.paths) or bool(self.trees)


class ChangeWatch:
    """One inotify instance per process, watching folders by path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inotify: Any = None
        self._failed = INotify is None
        self._folders: Dict[str, int] = {}
        self._paths_of: Dict[int, str] = {}
        self._files: Set[int] = set()
        self._owner = os.getpid()
        #: Set when events were lost (queue overflow, a failed read): all is suspect once.
        self._lost = False
        self._mounts: Optional[BinaryIO] = None
        self._poller: Any = None

    def disable(self) -> None:
        """Watch nothing from now on: a process that checks once and exits gains nothing."""
        self.forget()
        self._failed = True

    @property
    def available(self) -> bool:
        """Can this process be told of changes at all?"""
        return not self._failed and self._owner == os.getpid()

    def watch(self, paths: Iterable[str]) -> bool:
        """Watch each path's folder (and the folders above); True when every change to these
        paths from now on raises an event."""
        if not self.available:
            return False
        with self._lock:
            return all(self._watch_path(path) for path in paths)

    def _watch_path(self, path: str) -> bool:
        if not os.path.isabs(path):
            return False
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError:
            return False
        if st is not None and (
            stat_module.S_ISLNK(st.st_mode)
            or stat_module.S_ISDIR(st.st_mode)
            or (stat_module.S_ISREG(st.st_mode) and st.st_nlink > 1)
        ):
            return False
        folder = os.path.dirname(path)
        while folder not in self._folders:
            if os.path.isdir(folder):
                if os.path.realpath(folder) != folder:
                    return False  # through a symlink: the folders above its target are unwatched
                if not self._add_chain(folder):
                    return False
                break
            parent = os.path.dirname(folder)
            if parent == folder:
                return False
            folder = parent  # the file's folder does not exist yet: its creation is the event
        return st is None or self._add_file(path)

    def _add_file(self, path: str) -> bool:
        """Watch the file itself too: a write through another name (a hard link made later)
        raises no event in this folder, only on the file."""
        if len(self._paths_of) >= MAX_WATCHES:
            return False
        try:
            wd = self._inotify.add_watch(path, _FILE_MASK | flags.DONT_FOLLOW)
        except OSError:
            return False  # gone meanwhile: its folder's event says so
        if self._paths_of.setdefault(wd, path) != path:
            return False  # one file under two names: events name only one of them
        self._files.add(wd)
        return True

    def _add_chain(self, folder: str) -> bool:
        chain = []
        current = folder
        while True:
            chain.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for item in reversed(chain):  # from the root down: a parent's watch comes first
            if item in self._folders:
                continue
            if not self._add(item):
                return False
        return True

    def _add(self, folder: str) -> bool:
        if len(self._paths_of) >= MAX_WATCHES:
            return False
        try:
            st = os.stat(folder)
        except OSError:
            return False
        local = filesystem_type(st.st_dev) in LOCAL_TYPES
        if not local:
            return False  # changes made by another host raise no event here
        try:
            if self._inotify is None:
                self._inotify = INotify(nonblocking=True)
            wd = self._inotify.add_watch(folder, _MASK)
        except OSError:
            self._failed = not self._folders  # no inotify here at all, or out of watches
            return False
        if self._paths_of.setdefault(wd, folder) != folder:
            return False  # one folder under two names (a bind mount): events name only one
        self._folders[folder] = wd
        self._watch_mounts()
        return True

    def _watch_mounts(self) -> bool:
        """Mounting over a watched folder raises no inotify event; the mount table says so.
        False when it cannot be watched."""
        if self._mounts is not None:
            return True
        try:
            self._mounts = open(_MOUNTINFO, "rb")  # noqa: SIM115 - kept open to be polled
            self._mounts.read()
            self._poller = select.poll()
            self._poller.register(self._mounts, select.POLLPRI | select.POLLERR)
        except OSError:
            self._mounts = None
            self._failed = True  # no way to see a mount: trust no event alone
            return False
        return True

    def _mounts_changed(self) -> bool:
        if self._mounts is None or self._poller is None:
            return False
        if not self._poller.poll(0):
            return False
        self._mounts.seek(0)
        self._mounts.read()  # acknowledges the change
        return True

    def changes(self) -> Changes:
        """Drain the queue: what may have changed since the last call."""
        if not self.available or self._inotify is None:
            return Changes(everything=self._lost)
        with self._lock:
            return self.drain_held()

    def hold(self, timeout: float) -> bool:
        """Keep every other thread out (a fork is about to copy this state); False if busy."""
        return self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        self._lock.release()

    def drain_held(self) -> Changes:
        """:meth:`changes`, for a caller that already holds the watch's lock (a fork)."""
        if not self.available or self._inotify is None:
            return Changes(everything=self._lost)
        found = Changes(everything=self._lost or self._mounts_changed())
        self._lost = False
        try:
            events = self._inotify.read(timeout=0)
        except OSError:
            events = []
            found.everything = True
        for event in events:
            self._note(event, found)
        return found

    def _note(self, event: Any, found: Changes) -> None:
        if event.mask & flags.Q_OVERFLOW:
            found.everything = True
            return
        folder = self._paths_of.get(event.wd)
        if folder is None:
            return
        if event.wd in self._files:
            found.paths.add(folder)  # the file itself
            if event.mask & _GONE:  # the kernel drops the watch with the file
                self._paths_of.pop(event.wd, None)
                self._files.discard(event.wd)
            return
        if event.mask & _GONE:
            found.trees.add(folder)
            self._forget_folder(folder)
            return
        path = os.path.join(folder, event.name) if event.name else folder
        found.paths.add(path)
        if event.mask & flags.ISDIR or path in self._folders:
            # A folder made, renamed, removed, or swapped for a symlink (whose event says
            # nothing of folders): everything under that name, watched anew when next seen.
            found.trees.add(path)
            self._forget_folder(path)

    def _forget_folder(self, folder: str) -> None:
        below = [f for f in self._folders if f == folder or f.startswith(folder + os.sep)]
        for item in below:
            wd = self._folders.pop(item)
            self._paths_of.pop(wd, None)
            if self._inotify is not None:
                with contextlib.suppress(OSError):  # already gone with its folder
                    self._inotify.rm_watch(wd)

    def forget(self) -> None:
        """Drop every watch (tests, and a forked child that must not read its parent's queue)."""
        with self._lock:
            inotify, self._inotify = self._inotify, None
            self._folders.clear()
            self._paths_of.clear()
            self._files.clear()
            mounts, self._mounts, self._poller = self._mounts, None, None
            if self._owner == os.getpid():
                if inotify is not None:
                    inotify.close()
                if mounts is not None:
                    mounts.close()
            self._owner = os.getpid()
            self._lost = False

    def after_fork(self, rewatch: bool = False) -> Changes:
        """In a forked child: the inherited descriptor's queue is the parent's, never read here.

        Without ``rewatch`` the child watches nothing it inherited, and its next drain says that
        everything may have changed. With it, every inherited folder watch is made again on an
        instance of the child's own, *before* the parent drains what came meanwhile (see
        :mod:`luigi_repro.forkhandoff`); returned: what could not be watched again.
        """
        # Their copies of the descriptors close with them; the parent's stay. The mount table's
        # change flag belongs to the open file, shared with the parent: never read it here.
        had_mounts = self._mounts is not None
        folders = sorted(self._folders)  # a parent's path sorts before its children's
        self._inotify = self._mounts = self._poller = None
        self._lock = threading.Lock()
        self._folders.clear()
        self._paths_of.clear()
        self._files.clear()
        self._owner = os.getpid()
        self._lost = not rewatch
        lost = Changes(everything=not rewatch)
        if not rewatch or self._failed or not folders:
            return lost
        try:
            self._inotify = INotify(nonblocking=True)
        except OSError:
            lost.everything = self._lost = True
            return lost
        if had_mounts and not self._watch_mounts():  # no way to see a mount: trust no event
            lost.everything = self._lost = True
            return lost
        for folder in folders:
            if folder not in self._folders and not self._add(folder):
                lost.everything = self._lost = True  # gone meanwhile, or out of watches
                return lost
        # The files' own watches are not made again: a fork would cost ~10 µs per file (a
        # build of 10,000 tasks forks 10,000 times). They only add writes through a hard link
        # made later; the parent keeps them, and the child watches anew what it replays.
        return lost

    def watched_folders(self) -> Tuple[str, ...]:
        """The folders watched now (tests and benchmarks read it)."""
        return tuple(self._folders)
