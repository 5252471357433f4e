"""The clock of the file system a file lives on, for the racy rule of the stat cache.

A cached fingerprint is trusted only if it was taken well after the file's last write
(:meth:`~luigi_repro.statcache.CachedFingerprint.is_racy`). The write time is stamped by the file
system; the moment of hashing must be read from the same clock. A network file system (NFS, SMB,
FUSE mounts…) stamps files with its *server's* clock: with this host's clock ahead, a file just
written looks old, its fingerprint is trusted at once, and an edit within the server's timestamp
granularity (same size, same second) goes unseen. git faces the same problem and compares with
the modification time of its own index file; here the clock of such a file system is read the
same way: the modification time of a file just created on it.

Local file systems (ext4, xfs, btrfs, tmpfs, overlay…) stamp files with this kernel's clock,
which *is* the host clock, so nothing is written for them. For other file systems, a hidden
``.luigi-repro-clock-<random>`` file is created (and removed at once) in the file's folder, or
the nearest writable folder above it on the same file system, about once a minute. Where none
is writable, the host clock is used and a warning says so once.

Only ever errs one way: the estimate of the file system's "now" is never later than the truth
(a timestamp truncated to the file system's granularity only makes files look fresher), so a
fingerprint may be distrusted and read again, never trusted too early.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from typing import Dict, Optional, Tuple

from luigi_repro.log import logger

__all__ = ["fs_now_ns", "forget_clocks"]

#: File systems whose timestamps come from this kernel's own clock.
LOCAL_TYPES = frozenset(
    {
        "apfs",
        "bcachefs",
        "btrfs",
        "erofs",
        "exfat",
        "ext2",
        "ext3",
        "ext4",
        "f2fs",
        "hfsplus",
        "iso9660",
        "jfs",
        "nilfs2",
        "ntfs",
        "ntfs3",
        "overlay",
        "ramfs",
        "reiserfs",
        "squashfs",
        "tmpfs",
        "udf",
        "vfat",
        "xfs",
        "zfs",
    }
)

#: How long a measured offset, or a reading of the mount table, is used before it is renewed.
_TTL_S = 60.0
_MOUNTINFO = "/proc/self/mountinfo"

_lock = threading.Lock()
#: st_dev -> file system type, from the mount table (None when there is no mount table).
_types: Optional[Dict[int, str]] = None
_types_read_at = -_TTL_S
#: st_dev -> (offset of the file system's clock from the host's, in ns; when it was measured)
_offsets: Dict[int, Tuple[int, float]] = {}
_warned: set[int] = set()


def host_clock() -> int:
    """This host's clock, in ns since the epoch."""
    return time.time_ns()


def forget_clocks() -> None:
    """Forget the mount table and every measured offset (tests, or after remounts)."""
    global _types, _types_read_at
    with _lock:
        _types, _types_read_at = None, -_TTL_S
        _offsets.clear()
        _warned.clear()


def _read_mount_types() -> Optional[Dict[int, str]]:
    try:
        with open(_MOUNTINFO, encoding="utf-8", errors="replace") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return None  # not Linux: no way to tell, the host clock is used
    types: Dict[int, str] = {}
    for line in lines:
        fields = line.split()
        try:
            major, minor = fields[2].split(":")
            fstype = fields[fields.index("-") + 1]
            types[os.makedev(int(major), int(minor))] = fstype
        except (IndexError, ValueError):
            continue
    return types


def filesystem_type(dev: int) -> Optional[str]:
    """The type of the file system with device number ``dev``, or None if it is not known."""
    global _types, _types_read_at
    with _lock:
        types = _types
        stale = time.monotonic() - _types_read_at > _TTL_S
    if types is None or (dev not in types and stale):
        types = _read_mount_types()
        with _lock:
            _types, _types_read_at = types, time.monotonic()
    if types is None:
        return "unknown-host-clock"
    return types.get(dev)


def _stamps_with_host_clock(dev: int) -> bool:
    types = _types  # read without the lock: a dict lookup is atomic, and this is the hot path
    kind = types.get(dev) if types is not None else None
    if kind is None:
        kind = filesystem_type(dev)
    return kind == "unknown-host-clock" or kind in LOCAL_TYPES


def fs_now_ns(path: str, dev: int) -> int:
    """ "Now" by the clock of the file system holding ``path`` (device ``dev``), in ns.

    Never later than the truth: the host clock, or less when the file system's clock is behind.
    """
    host = host_clock()
    if _stamps_with_host_clock(dev):
        return host
    return host + min(0, _offset(dev, path))


def _offset(dev: int, path: str) -> int:
    with _lock:
        known = _offsets.get(dev)
    if known is not None and time.monotonic() - known[1] < _TTL_S:
        return known[0]
    measured = _measure(dev, path)
    if measured is None:
        with _lock:
            first = dev not in _warned
            _warned.add(dev)
        if first:
            logger.warning(
                "luigi_repro: cannot read the clock of the file system holding %s (no writable "
                "folder on it); its racy-write check uses this host's clock, which may run "
                "ahead of the file server's.",
                path,
            )
        measured = 0
    with _lock:
        _offsets[dev] = (measured, time.monotonic())
    return measured


def _measure(dev: int, path: str) -> Optional[int]:
    """The file system's clock minus the host's (rounded down), from a file created on it.

    Probed beside the file the path leads to: a symlink may sit on another file system.
    """
    folder = os.path.dirname(os.path.realpath(path))
    while True:
        offset = _probe(folder, dev)
        if offset is not None:
            return offset
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        try:
            if os.stat(parent).st_dev != dev:
                return None
        except OSError:
            return None
        folder = parent


def _probe(folder: str, dev: int) -> Optional[int]:
    probe = os.path.join(folder, f".luigi-repro-clock-{secrets.token_hex(6)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(probe, flags, 0o600)
    except OSError:
        return None
    try:
        stamped = os.fstat(fd)
        after = host_clock()  # taken after the file system stamped it: the offset errs low
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    if stamped.st_dev != dev:
        return None
    return stamped.st_mtime_ns - after
