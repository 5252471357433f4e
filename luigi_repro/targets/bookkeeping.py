"""Which files in an output folder are luigi_repro's own bookkeeping, not the user's content.

Records, run locks and temporaries sit beside outputs; a folder's fingerprint must leave them out
or it would change with every run. A file is recognised by its name and, when the name alone
could be the user's, by its content, so a user file that happens to end in the record suffix
still counts.
"""

from __future__ import annotations

import collections
import json
import os
import re
import stat as stat_module
import threading
from typing import Any, Callable, FrozenSet, Tuple

from luigi_repro.locking import LOCK_FILE_MARK, LOCK_SUFFIX, TMP_MARK


def is_bookkeeping(entry: os.DirEntry[str], record_suffix: str, siblings: FrozenSet[str]) -> bool:
    """Is this entry of a folder luigi_repro's own file rather than the user's data?

    Only what luigi_repro wrote for an output in this very folder: ``<x>.repro.json`` beside an
    ``<x>`` when it is a record describing that ``<x>``, ``.<x>.repro.lock`` when it carries
    the run-lock mark, and hidden ``.<x>.repro-tmp…`` temporaries. A file merely *named* like a
    record or a lock (a copied record, a user's ``notes.repro.json``) is data, and so counts in
    the folder's fingerprint.
    """
    name = entry.name
    if name.endswith(record_suffix) and name[: -len(record_suffix)] in siblings:
        output = name[: -len(record_suffix)]
        return _recognised(entry, lambda data: describes_output(data, output))
    if not name.startswith("."):
        return False
    if name.endswith(LOCK_SUFFIX):
        return _recognised(entry, lambda data: data == LOCK_FILE_MARK)
    return _is_temporary(entry, record_suffix, siblings)


def _is_temporary(entry: os.DirEntry[str], record_suffix: str, siblings: FrozenSet[str]) -> bool:
    """A temporary luigi_repro writes beside ``<x>``: ``.<x>.repro-tmp-<pid>-<hex>`` (a record
    being written, or a folder output set aside while it is replaced), or the fixed names of
    earlier versions, ``.<x>.repro-tmp`` and ``.<x>.repro-tmp-old`` — only beside an ``<x>``
    (or its record) that is there."""
    match = _TEMPORARY.fullmatch(entry.name)
    if match is None:
        return False
    stem = match.group(1)
    if stem.endswith(record_suffix):
        stem = stem[: -len(record_suffix)]
    return stem in siblings


_TEMPORARY = re.compile(r"\.(.+)" + re.escape(TMP_MARK.rstrip("-")) + r"(?:-old|-\d+-[0-9a-f]{8})?")
#: Files read to recognise them as records or locks: larger ones are data.
_RECOGNISE_LIMIT = 16 * 1024 * 1024
_recognitions: collections.OrderedDict[Tuple[Any, ...], bool] = collections.OrderedDict()
_recognitions_lock = threading.Lock()


def _recognised(entry: os.DirEntry[str], test: Callable[[bytes], bool]) -> bool:
    """``test`` on the content of a regular file, remembered while its stat is unchanged."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    if not stat_module.S_ISREG(st.st_mode) or st.st_size > _RECOGNISE_LIMIT:
        return False  # a link, a pipe, a device or a huge file is never one of ours
    key = (entry.name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _recognitions_lock:
        known = _recognitions.get(key)
    if known is not None:
        return known
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        with os.fdopen(os.open(entry.path, flags), "rb") as stream:
            data = stream.read(st.st_size + 1)  # not the limit: that would allocate all of it
    except OSError:
        return False
    answer = test(data)
    with _recognitions_lock:
        _recognitions[key] = answer
        while len(_recognitions) > 4096:
            _recognitions.popitem(last=False)
    return answer


def describes_output(data: bytes, output: str) -> bool:
    """Is ``data`` a luigi_repro record with an entry for an output named ``output``?

    By name, not by absolute location: a project moved or copied (or a folder reached through
    a symlink) keeps its records, and they still describe the files beside them.
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return False
    if not isinstance(doc, dict) or doc.get("tool") != "luigi_repro":
        return False
    outputs = doc.get("outputs")
    if not isinstance(outputs, list):
        return False
    return any(
        isinstance(o, dict)
        and isinstance(o.get("uri"), str)
        and o["uri"].rstrip("/").rsplit("/", 1)[-1] == output
        for o in outputs
    )
