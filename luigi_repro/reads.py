"""Files that ``run()`` reads without declaring them, seen through a Python audit hook.

A task that opens ``data/financials.csv`` in ``run()`` without requiring it depends on that file,
yet no fingerprint of declared inputs covers it: editing the file would change nothing. While the
user code of a checked task runs, an audit hook (:func:`sys.addaudithook`, event ``open``) notes
every file opened for reading, resolved against the working folder at that moment, with its
``os.stat`` at the first open (so a change between the read and the end of the run is seen).
The run protocol then warns about them, tracks them as implicit inputs or fails the task
(``[luigi_repro] undeclared_reads``).

Not counted: declared inputs (and files inside declared folders), the task's own outputs and their
temporary files, luigi_repro's records, locks and stat cache, anything under the interpreter's
prefixes and site-packages, the time-zone database, the temp folder, ``/proc``, ``/sys``, ``/dev``,
folders, files opened only to be truncated or created, and the module files the import system
reads. luigi_repro's own reads while a watch is active (user code calling ``complete()`` inside
``run()``) happen under :func:`unwatched` and are not counted.

What the hook cannot see: reads by native code that does not go through Python's ``open``
(pyarrow's C++ readers, e.g. ``pyarrow.parquet.read_table(path)``; SQLite; C extensions), reads by
subprocesses (and by forked children, whose notes stay in their own memory), ``mmap`` of a
file that was already open before the watch started, and data the process read earlier and kept
in memory (a ``functools.lru_cache`` loader shared by two tasks: only the task that opened the
file first is charged with it, and with ``--workers N`` each task is).

Attribution: a context variable names the watch of the task whose code runs in this context.
Threads do not inherit context variables, so an open from a context without a watch goes to every
watch active in the process: with one Luigi worker tasks run one at a time; with several, each
task runs in its own forked process, which inherits the hook.

The hook is installed once per process, the first time a watch starts; hooks cannot be removed,
so while nothing is watched it returns after comparing the event name.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import functools
import os
import stat as stat_module
import sys
import threading
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Set,
    Tuple,
    TypeVar,
    cast,
)

from luigi_repro.config import Settings
from luigi_repro.localpath import physical_path
from luigi_repro.notdata import (
    inside,
    is_glob,
    is_repro_file,
    module_files,
    system_folders,
)
from luigi_repro.statcache import StatKey
from luigi_repro.targets.base import as_hashable

__all__ = ["ReadWatch", "local_path_of", "unwatched", "unwatched_call", "watching"]

#: Luigi's temporary names for an output: ``<output>-luigi-tmp-<digits>``.
_LUIGI_TMP = "-luigi-tmp-"

_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: An open with these flags discards or creates the content: nothing is read from the file.
_DISCARDS = os.O_TRUNC
_CREATES_NEW = os.O_CREAT | os.O_EXCL

_current: contextvars.ContextVar[Optional[ReadWatch]] = contextvars.ContextVar(
    "luigi_repro_read_watch", default=None
)
_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "luigi_repro_reads_suppressed", default=False
)
#: Watches whose task's user code is running now, in this process (any thread).
_active: List[ReadWatch] = []
_installed = False
_install_lock = threading.Lock()


def _hook(event: str, args: Tuple[Any, ...]) -> None:
    # Called for every audit event of the process: the cheapest possible test first.
    if event != "open" or not _active:
        return
    with contextlib.suppress(Exception):  # a watch must never break the user's open()
        _note_open(args)


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


def _is_read(mode: Any, flags: Any) -> bool:
    """Does an open with this mode and these flags read an existing file's content?"""
    if isinstance(flags, int):
        if flags & _O_DIRECTORY or flags & _DISCARDS or flags & _CREATES_NEW == _CREATES_NEW:
            return False
        return flags & os.O_ACCMODE in (os.O_RDONLY, os.O_RDWR)
    if isinstance(mode, str):
        return ("r" in mode or "+" in mode) and "w" not in mode and "x" not in mode
    return False


def _is_write(mode: Any, flags: Any) -> bool:
    """Does an open with this mode and these flags write (create, truncate, append)?"""
    if isinstance(flags, int):
        return flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR) or bool(flags & os.O_CREAT)
    if isinstance(mode, str):
        return any(char in mode for char in "wax+")
    return False


def _absolute(path: Any) -> Optional[str]:
    """``path`` made absolute against the working folder now; None for a file descriptor."""
    if isinstance(path, int):
        return None
    return physical_path(os.fsdecode(os.fspath(path)))  # `link/..` resolved as the OS does


def _note_open(args: Tuple[Any, ...]) -> None:
    if _suppressed.get() or len(args) != 3:
        return
    path, mode, flags = args
    reads = _is_read(mode, flags)
    if not reads and not _is_write(mode, flags):
        return
    absolute = _absolute(path)
    if absolute is None:
        return
    watch = _current.get()
    for target in (watch,) if watch is not None else tuple(_active):
        if reads:
            target.note(absolute)
        else:
            target.note_written(absolute)


@contextlib.contextmanager
def unwatched() -> Iterator[None]:
    """Opens in this block are luigi_repro's own (records, fingerprints): never counted."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


F = TypeVar("F", bound=Callable[..., Any])


def unwatched_call(func: F) -> F:
    """``func`` does luigi_repro's own work: its opens are never counted (see :func:`unwatched`)."""

    @functools.wraps(func)
    def quietly(*args: Any, **kwargs: Any) -> Any:
        with unwatched():
            return func(*args, **kwargs)

    return cast(F, quietly)


@contextlib.contextmanager
def watching(watch: Optional[ReadWatch]) -> Iterator[None]:
    """Attribute the files opened in this block (and in threads it starts) to ``watch``."""
    if watch is None:
        yield
        return
    _install()
    token = _current.set(watch)
    _active.append(watch)
    try:
        yield
    finally:
        _active.remove(watch)
        _current.reset(token)


def local_path_of(target: Any) -> Optional[str]:
    """The absolute local path of a target, or None when its content is not a local file."""
    hashable = as_hashable(target)
    location = hashable.uri if hashable is not None else getattr(target, "path", None)
    if not isinstance(location, str) or "://" in location or "\0" in location:
        return None
    if hashable is not None and not os.path.isabs(location):
        return None  # another file system's path (hdfs:…), not this machine's
    return physical_path(location)


class ReadWatch:
    """The files one run of one task opened for reading, minus everything that is not data.

    Built by the run protocol before ``run()``; :func:`watching` activates it around the user
    code; :meth:`undeclared` says, at the end of the run, what was read without being declared.
    """

    def __init__(self, task_id: str, settings: Settings) -> None:
        self.task_id = task_id
        self._record_suffix = settings.record_suffix
        #: Files and folders not counted: declared inputs and outputs.
        self._files: Set[str] = set()
        self._folders: Set[str] = set()
        self._outputs: Set[str] = set()
        #: The system's folders (interpreter, temp folder…), never data — but for a project
        #: that lives inside one of them (a checkout under /tmp, an app under /usr/src): files
        #: under the working folder then count, as anywhere else.
        self._system = system_folders()
        project = physical_path(os.getcwd())
        self._project: Optional[str] = project if inside(project, self._system) else None
        #: Files this run opened for writing before any read: its own scratch files.
        self._written: Set[str] = set()
        #: The stat cache, as a prefix that also covers SQLite's ``-wal`` and ``-shm`` files.
        self._stat_cache = (
            os.path.normpath(os.path.abspath(settings.stat_cache_path))
            if settings.stat_cache_path is not None
            else None
        )
        #: Every path seen, with its stat at the first open; None when it is not a data read.
        self._seen: Dict[str, Optional[StatKey]] = {}
        self._lock = threading.Lock()
        #: ``undeclared_reads_ignore``: folders, and glob patterns matched against a file and
        #: each folder above it.
        self._ignored_folders = {p for p in settings.undeclared_reads_ignore if not is_glob(p)}
        self._ignored_globs = [p for p in settings.undeclared_reads_ignore if is_glob(p)]
        #: The declared and output locations with their symlinks resolved, made when an open is
        #: not excluded by the path it was opened by (a declared input opened through a link).
        self._resolved: Optional[Tuple[Set[str], Set[str]]] = None

    def exclude_inputs(self, targets: Iterable[Any]) -> None:
        """Declared inputs are not undeclared reads, nor is anything inside a declared folder."""
        paths = [path for path in map(local_path_of, targets) if path is not None]
        with self._lock:
            self._files.update(paths)
            self._folders.update(paths)
            self._resolved = None

    def exclude_outputs(self, targets: Iterable[Any]) -> None:
        """The task's own outputs: read back, inside an output folder, or temporary names."""
        paths = [path for path in map(local_path_of, targets) if path is not None]
        with self._lock:
            self._files.update(paths)
            self._folders.update(paths)
            self._outputs.update(paths)
            self._resolved = None

    def _excluded(self, path: str) -> bool:
        if path in self._files or is_repro_file(path, self._record_suffix):
            return True
        if self._stat_cache is not None and path.startswith(self._stat_cache):
            return True
        if _LUIGI_TMP in path and path.partition(_LUIGI_TMP)[0] in self._outputs:
            return True  # <output>-luigi-tmp-NNN, or a file inside such a temporary folder
        if inside(path, self._folders):
            return True
        if not inside(path, self._system):
            return False
        return self._project is None or not inside(path, {self._project})

    def _excluded_anyhow(self, path: str) -> bool:
        """Excluded as opened, as the file the symlinks lead to, or by the ignore option."""
        if self._excluded(path):
            return True
        real = os.path.realpath(path)
        if real != path and self._excluded(real):
            return True
        with self._lock:
            if self._resolved is None:
                files = {os.path.realpath(p) for p in self._files}
                self._resolved = (files, {os.path.realpath(p) for p in self._folders} | files)
            files, folders = self._resolved
        if real in files or inside(real, folders):
            return True
        return self._ignored(path) or (real != path and self._ignored(real))

    def _ignored(self, path: str) -> bool:
        if inside(path, self._ignored_folders):
            return True
        if not self._ignored_globs:
            return False
        ancestors = [path]
        while True:
            parent = os.path.dirname(ancestors[-1])
            if parent == ancestors[-1]:
                break
            ancestors.append(parent)
        return any(fnmatch.fnmatchcase(a, g) for g in self._ignored_globs for a in ancestors)

    def note_written(self, path: str) -> None:
        """``path`` is being opened for writing: if it was not read before in this run, what
        the run reads from it later is its own scratch data, not an input."""
        with self._lock:
            if path not in self._seen:
                self._written.add(path)

    def note(self, path: str) -> None:
        """``path`` is being opened for reading (called by the hook, before the open)."""
        if path in self._seen:
            return
        stat: Optional[StatKey] = None
        if path not in self._written and not self._excluded_anyhow(path):
            try:
                st = os.stat(path)
            except (OSError, ValueError):
                st = None  # it will not open: nothing is read
            if st is not None and stat_module.S_ISREG(st.st_mode):
                stat = StatKey.of(st)
        with self._lock:
            self._seen.setdefault(path, stat)

    def undeclared(self) -> Dict[str, StatKey]:
        """The files read without being declared, each with its stat at the first open.

        Module files are filtered here, at the end: only now is it known which of the files
        opened were loaded by the import system.
        """
        with self._lock:
            seen = list(self._seen.items())
        # Checked again: inputs yielded after a file was first opened are excluded now.
        candidates = {
            path: stat
            for path, stat in seen
            if stat is not None and not self._excluded_anyhow(path)
        }
        if not candidates:
            return {}
        modules = module_files()
        marker = os.sep + "__pycache__" + os.sep
        return {
            path: candidates[path]
            for path in sorted(candidates)
            if path not in modules and marker not in path
        }
