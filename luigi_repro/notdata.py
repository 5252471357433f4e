"""Files an open is never charged for: the interpreter's, the system's, luigi_repro's own.

A read watch reports files ``run()`` opened without declaring them; most opens are not the
task's data at all (modules being imported, time-zone files, records and locks). The folders and
names that rule them out are decided here, apart from the watch's bookkeeping of what it saw.
"""

from __future__ import annotations

import contextlib
import functools
import os
import site
import sys
import tempfile
import zoneinfo
from typing import (
    FrozenSet,
    Iterable,
    List,
    Set,
)

from luigi_repro.config import default_stat_cache_path

#: Folders whose files are never the task's data, wherever the interpreter lives.
_SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")


def _interpreter_folders() -> List[str]:
    folders = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    with contextlib.suppress(AttributeError):  # site may be a stripped-down version
        folders.extend(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        folders.append(site.getusersitepackages())
    return folders


def _folders(paths: Iterable[str]) -> Set[str]:
    """Each folder made absolute, as given and with symbolic links resolved."""
    found: Set[str] = set()
    for path in paths:
        absolute = os.path.normpath(os.path.abspath(path))
        found.update((absolute, os.path.realpath(absolute)))
    found.discard(os.sep)  # an interpreter installed at the root must not hide every file
    return found


@functools.lru_cache(maxsize=1)
def _fixed_folders() -> FrozenSet[str]:
    """The interpreter's folders, the system's and the time-zone database: fixed per process."""
    return frozenset(_folders([*_interpreter_folders(), *_SYSTEM_FOLDERS, *zoneinfo.TZPATH]))


def system_folders() -> Set[str]:
    """Folders whose files are never the task's data: the above, the temp folder, and
    luigi_repro's cache folder (stat cache and run locks of non-local outputs)."""
    return {
        *_fixed_folders(),
        *_folders([tempfile.gettempdir(), os.path.dirname(default_stat_cache_path())]),
    }


def inside(path: str, folders: Set[str]) -> bool:
    """Is ``path`` inside one of ``folders``? One set lookup per parent folder."""
    end = len(path)
    while True:
        end = path.rfind(os.sep, 0, end)
        if end <= 0:
            return False
        if path[:end] in folders:
            return True


def module_files() -> FrozenSet[str]:
    """Where the modules imported now were loaded from (source and bytecode)."""
    found: Set[str] = set()
    for module in list(sys.modules.values()):
        try:
            namespace = vars(module)  # not getattr: a module's __getattr__ could run code
        except TypeError:
            continue
        spec = namespace.get("__spec__")
        candidates = [
            namespace.get("__file__"),
            namespace.get("__cached__"),
            getattr(spec, "origin", None),
            getattr(spec, "cached", None),
        ]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate:
                found.add(os.path.normpath(os.path.abspath(candidate)))
    return frozenset(found)


def is_glob(pattern: str) -> bool:
    """Is an ``undeclared_reads_ignore`` entry a glob pattern rather than a folder?"""
    return any(char in pattern for char in "*?[")


def is_repro_file(path: str, record_suffix: str) -> bool:
    """A record, run lock or temporary file of luigi_repro's."""
    if path.endswith(record_suffix):
        return True
    if ".repro" not in path:  # cheap first test: both names below contain it
        return False
    name = os.path.basename(path)
    return name.startswith(".") and (name.endswith(".repro.lock") or ".repro-tmp" in name)
