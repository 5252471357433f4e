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
from typing import Optional, Tuple

from luigi_repro.fsclock import filesystem_type
from luigi_repro.writerrights import check_may_read

__all__ = [
    "KERNEL_FILE_SYSTEMS",
    "NotPlainFile",
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

_KIND_NAMES = (
    (stat_module.S_ISFIFO, "a named pipe (FIFO)"),
    (stat_module.S_ISCHR, "a character device"),
    (stat_module.S_ISBLK, "a block device"),
    (stat_module.S_ISSOCK, "a socket"),
)


class NotPlainFile(OSError):
    """A location is not a regular file on a data file system; it was not read."""


def refusal(st: os.stat_result, path: str = "") -> Optional[str]:
    """Why a file with this stat is not read (None when it is a regular file or a folder holding
    data): it is a pipe, device or socket, or it lives on a kernel file system."""
    for test, name in _KIND_NAMES:
        if test(st.st_mode):
            return f"is {name}, not a regular file; not read"
    fs_type = filesystem_type(st.st_dev)  # None: unknown (a btrfs subvolume), so data
    if fs_type in KERNEL_FILE_SYSTEMS:
        return f"is a pseudo-file of the system (on a {fs_type} file system), never data; not read"
    if fs_type == "unknown-host-clock" and path:  # no mount table: the usual places
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
        check_may_read(path, st, fd)  # the file actually opened, if a record's writer bounds us
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_plain(path: str, limit: int) -> Tuple[bytes, os.stat_result]:
    """At most ``limit + 1`` bytes of a regular data file, and its fstat.

    A file already bigger than ``limit`` is not read at all (its fstat says so); one byte more
    than ``limit`` tells the caller it grew past the limit while it was read.
    """
    fd, st = open_plain(path)
    with os.fdopen(fd, "rb") as stream:
        if st.st_size > limit:
            return b"", st
        # Asking for the size it has: a read of ``limit`` bytes would allocate all of them.
        data = stream.read(st.st_size + 1)
        if len(data) > st.st_size:  # it grew since its fstat
            data += stream.read(limit + 1 - len(data))
        return data, st
