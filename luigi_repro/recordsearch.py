"""Finding every record under a folder, for ``luigi-repro verify DIR`` (like ``dvc status`` on a
folder).

A folder that has a record of its own is an output (a folder target) and is audited as one. Any
other folder stands for every recorded output beneath it: the records are found by their suffix
(luigi_repro's run locks and temporaries never end with it), in name order, without following a
symlinked folder (it may lead out of the tree, or back into it). What an audit of the folder
stood on includes every folder listed, since a record added anywhere beneath changes the
listing of its folder, and the folder's own record staying absent.
"""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import attrs

__all__ = ["Expanded", "expand_folders", "records_under"]


def records_under(folder: str, record_suffix: str) -> Tuple[List[str], List[str]]:
    """The outputs whose records are under ``folder`` (paths beside their records), and every
    folder listed on the way (absolute)."""
    outputs: List[str] = []
    listed: List[str] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as found:
                entries = sorted(found, key=lambda entry: entry.name)
        except OSError:
            continue  # unreadable or vanished: nothing under it can be audited from here
        listed.append(os.path.abspath(current))
        below = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                below.append(entry.path)
            elif (
                entry.name.endswith(record_suffix)
                and len(entry.name) > len(record_suffix)
                and entry.is_file()
            ):
                outputs.append(entry.path[: -len(record_suffix)])
        pending.extend(reversed(below))
    return outputs, listed


@attrs.frozen
class Expanded:
    """The paths to audit, and what the choice of them stood on."""

    paths: Tuple[str, ...]
    #: Folders whose listing chose the paths: a record added beneath changes one of them.
    folders: Tuple[str, ...] = ()
    #: Records that were absent (a folder's own): one appearing changes what the folder means.
    absent: Tuple[str, ...] = ()
    #: Whether a folder was replaced by the records beneath it.
    searched: bool = False


def expand_folders(paths: Sequence[str], record_suffix: str) -> Expanded:
    """Each folder among ``paths`` without a record of its own, replaced by every recorded
    output beneath it; a folder that holds none is kept (the audit says it holds no record)."""
    result: List[str] = []
    folders: List[str] = []
    absent: List[str] = []
    for path in paths:
        own_record = os.path.abspath(path).rstrip("/") + record_suffix
        if "://" in path or not os.path.isdir(path) or os.path.lexists(own_record):
            result.append(path)
            continue
        absent.append(os.path.abspath(own_record))
        outputs, listed = records_under(path, record_suffix)
        folders.extend(listed)
        result.extend(outputs or [path])
    searched = bool(folders)
    return Expanded(tuple(dict.fromkeys(result)), tuple(folders), tuple(absent), searched)
