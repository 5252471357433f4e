"""Object targets: a Python object kept in a local file as JSON (:class:`JsonTarget`) or as a
pickle (:class:`PickleTarget`), written with ``dump(obj)`` and read back with ``load()``.

Both are :class:`~luigi_repro.targets.local.HashableLocalTarget` files opened as bytes, so
records, run locks, atomic writes and the stat cache work as for any local output, and the
fingerprint is of the file's bytes. The bytes are made deterministic where the format allows,
so that dumping an object equal to the previous one leaves the fingerprint unchanged and the
tasks downstream are not run again (early cutoff).
"""

from __future__ import annotations

import json
import os
import pickle
import stat
from typing import Any, Optional

import luigi.format

from luigi_repro.errors import UntrustedPickle
from luigi_repro.targets.local import HashableLocalTarget

__all__ = ["JsonTarget", "PICKLE_PROTOCOL", "PickleTarget"]

#: The pickle protocol :class:`PickleTarget` writes: fixed, so that the bytes (and therefore the
#: fingerprint) of an object do not change with the Python version's default protocol.
#: Protocol 5 is read by every Python luigi_repro supports.
PICKLE_PROTOCOL = 5


class _ObjectTarget(HashableLocalTarget):
    """A local file holding one object, encoded to bytes before the file is touched."""

    #: What the format is called in error messages.
    format_name = "an object"

    def __init__(self, path: Optional[Any] = None, is_tmp: bool = False) -> None:
        super().__init__(path, format=luigi.format.Nop, is_tmp=is_tmp)

    def encode(self, obj: Any) -> bytes:
        """The bytes that hold ``obj``; raises TypeError or ValueError when it cannot be held."""
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        """The object the bytes of the file hold."""
        raise NotImplementedError

    def dump(self, obj: Any) -> None:
        """Write ``obj`` atomically, replacing any earlier content.

        It is encoded first: an object that cannot be written leaves the file as it was.
        """
        try:
            data = self.encode(obj)
        except (TypeError, ValueError, AttributeError, pickle.PicklingError, RecursionError) as exc:
            raise TypeError(
                f"cannot write {type(obj).__name__} to {self.path} as {self.format_name}: {exc}"
            ) from exc
        with self.open("w") as stream:
            stream.write(data)

    def load(self) -> Any:
        """The object the file holds."""
        with self.open("r") as stream:
            data: bytes = stream.read()
        return self.decode(data)


class JsonTarget(_ObjectTarget):
    """A JSON file: ``dump(obj)`` writes ``obj``, ``load()`` reads it back.

    The bytes are canonical: keys sorted, no spaces (``","`` and ``":"``), non-ASCII characters
    kept as UTF-8 rather than escaped, and one trailing newline. Equal objects therefore give
    equal bytes and an equal fingerprint, however their dictionaries were ordered. Tuples are
    written as lists; keys must be strings (or numbers, booleans, None, which JSON turns into
    strings) of one kind, so that they can be sorted. NaN and infinities are written as
    Python's ``json`` writes them (``NaN``, ``Infinity``): ``load()`` reads them back, strict
    JSON readers do not.
    """

    format_name = "JSON"

    def encode(self, obj: Any) -> bytes:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return (text + "\n").encode("utf-8")

    def decode(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


class PickleTarget(_ObjectTarget):
    """A pickle file: ``dump(obj)`` writes ``obj`` with pickle protocol 5
    (:data:`PICKLE_PROTOCOL`), ``load()`` reads it back.

    Loading a pickle runs code chosen by whoever wrote the file: only ``load()`` pickles you
    trust. So ``load()`` refuses (:class:`~luigi_repro.errors.UntrustedPickle`) a file that
    another user owns or that others may write (world-writable, or group-writable for a group
    that is not the user's own private group), as a pickle planted in a shared results folder
    would be; ``load(trust_writer=True)`` reads it anyway.

    The fingerprint is of the bytes pickle makes, which are equal for equal objects built the
    same way (lists, tuples, numbers, strings, dictionaries filled in the same order). Two equal
    dictionaries filled in different orders, or sets of strings (whose order changes with
    ``PYTHONHASHSEED``), may give different bytes: the task downstream then runs again, which
    is wasted work but never a wrong result. Use :class:`JsonTarget` where that matters.
    """

    format_name = "a pickle"

    def encode(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)

    def load(self, trust_writer: bool = False) -> Any:
        """The object the file holds, once the file is one only you (or root) could write."""
        if not trust_writer:
            _refuse_foreign_writers(self.path)
        return super().load()

    def decode(self, data: bytes) -> Any:
        return pickle.loads(data)  # load() checked who could have written it


def _refuse_foreign_writers(path: str) -> None:
    """Raise :class:`UntrustedPickle` when someone but this user (or root) could have written
    ``path`` (followed through a symlink, as opening it would be)."""
    st = os.stat(path)
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise UntrustedPickle(path, f"it belongs to another user (uid {st.st_uid})")
    if st.st_mode & stat.S_IWOTH:
        raise UntrustedPickle(path, "every user may write it (it is world-writable)")
    if st.st_mode & stat.S_IWGRP and not _is_private_group(st.st_gid):
        raise UntrustedPickle(path, f"the users of group {st.st_gid} may write it")


def _is_private_group(gid: int) -> bool:
    """Is ``gid`` this user's own group (their primary group, listing no other member)? With
    user private groups (umask 002) a user's files are group-writable by that group alone."""
    if gid != os.getegid():
        return False
    try:
        import grp
        import pwd

        members = set(grp.getgrgid(gid).gr_mem)
        me = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return False
    return members <= {me}
