"""Plain files: the only kind of file luigi_repro reads at a location a record names.

Records sit in shared folders, so anyone who can write there chooses what a check reads. A named
pipe blocks its reader for ever, ``/dev/zero`` never ends, ``/proc/self/pagemap`` claims 256 TiB
and ``/proc/kmsg`` waits for the kernel to speak. So a file is read only when it is a regular file
on a file system that holds data: never a FIFO, device or socket, never a file on procfs, sysfs,
devtmpfs or another kernel file system. The file system is told by the *device* the file lives on
(``st_dev`` looked up in ``/proc/self/mountinfo``), not by the path, because a bind mount can show
``/proc`` anywhere.

The kind is checked before opening (opening some devices has effects of its own) and again on the
opened descriptor, which is opened without blocking: a file swapped for a pipe between the two
checks is refused, never waited on.
"""

from __future__ import annotations

import os
import stat as stat_module
import threading
from typing import Dict, Optional, Tuple

__all__ = [
    "KERNEL_FILE_SYSTEMS",
    "NotPlainFile",
    "file_system_type",
    "open_plain",
    "read_plain",
    "refusal",
    "refusal_at",
]

#: File systems whose files are the kernel's state, not data (reading them may never end).
KERNEL_FILE_SYSTEMS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "sysfs",
        "tracefs",
    }
)

#: Where the kernel's pseudo-files are mounted on every Linux system: the answer when the mount
#: table cannot be read (another OS, a sandbox without /proc).
_PSEUDO_FOLDERS = ("/proc", "/sys", "/dev")

_MOUNTINFO = "/proc/self/mountinfo"
_types: Dict[int, str] = {}
_types_lock = threading.Lock()
_KIND_NAMES = (
    (stat_module.S_ISFIFO, "a named pipe (FIFO)"),
    (stat_module.S_ISCHR, "a character device"),
    (stat_module.S_ISBLK, "a block device"),
    (stat_module.S_ISSOCK, "a socket"),
)


class NotPlainFile(OSError):
    """A location is not a regular file on a data file system; it was not read."""


def _read_mount_table() -> Optional[Dict[int, str]]:
    """``{st_dev: file system type}`` of every mount, or None when there is no mount table."""
    try:
        with open(_MOUNTINFO, encoding="utf-8", errors="replace") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return None
    table: Dict[int, str] = {}
    for line in lines:
        fields, sep, rest = line.partition(" - ")
        parts = fields.split()
        if not sep or len(parts) < 3 or ":" not in parts[2]:
            continue
        major, _, minor = parts[2].partition(":")
        try:
            device = os.makedev(int(major), int(minor))
        except ValueError:
            continue
        fs_type = rest.split(" ", 1)[0]
        table[device] = fs_type.split(".", 1)[0]  # "fuse.sshfs" is a fuse file system
    return table


def file_system_type(device: int) -> Optional[str]:
    """The type of the file system on ``device`` (an ``st_dev``), or None when it is unknown.

    The mount table is read once and again whenever a device not in it shows up (something was
    mounted since); a device still unknown then (a btrfs subvolume) is a data file system.
    """
    with _types_lock:
        known = _types.get(device)
        if known is not None:
            return known
        table = _read_mount_table()
        if table is not None:
            _types.update(table)
        return _types.get(device)


def _mount_table_readable() -> bool:
    with _types_lock:
        if _types:
            return True
    return _read_mount_table() is not None


def refusal(st: os.stat_result, path: str = "") -> Optional[str]:
    """Why a file with this stat is not read (None when it is a regular file or a folder holding
    data): it is a pipe, device or socket, or it lives on a kernel file system."""
    for test, name in _KIND_NAMES:
        if test(st.st_mode):
            return f"is {name}, not a regular file; not read"
    fs_type = file_system_type(st.st_dev)
    if fs_type in KERNEL_FILE_SYSTEMS:
        return f"is a pseudo-file of the system (on a {fs_type} file system), never data; not read"
    if fs_type is None and path and not _mount_table_readable():
        resolved = os.path.realpath(path)
        if any(resolved == top or resolved.startswith(top + os.sep) for top in _PSEUDO_FOLDERS):
            return "is a pseudo-file of the system (/proc, /sys, /dev), never data; not read"
    return None


def refusal_at(path: str) -> Optional[str]:
    """Why the file at ``path`` (symlinks followed) is not read; None when it may be, or when it
    does not exist (reading it then fails the usual way)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return refusal(st, path)


def open_plain(path: str) -> Tuple[int, os.stat_result]:
    """Open a regular data file for reading without ever blocking; ``(descriptor, fstat)``.

    Raises :class:`NotPlainFile` (naming why) for anything else, ``OSError`` when it cannot be
    opened. The caller closes the descriptor.
    """
    reason = refusal_at(path)
    if reason is not None:
        raise NotPlainFile(f"{path} {reason}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        reason = refusal(st, path)
        if reason is None and stat_module.S_ISDIR(st.st_mode):
            reason = "is a folder, not a file; not read"
        if reason is not None:
            raise NotPlainFile(f"{path} {reason}")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_plain(path: str, limit: int) -> Tuple[bytes, os.stat_result]:
    """At most ``limit + 1`` bytes of a regular data file, and its fstat.

    One byte more than ``limit`` tells the caller the file is too big, even when it grew after
    its size was taken; nothing beyond that is ever read.
    """
    fd, st = open_plain(path)
    with os.fdopen(fd, "rb") as stream:
        return stream.read(limit + 1), st
