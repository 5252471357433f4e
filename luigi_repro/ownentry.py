"""Which entry of a record describes the output it sits beside, in place or in a moved copy.

A record lists every output of its run; an audit starting from one file must pick that file's
entry without guessing, also when the results folder was copied elsewhere, so the rule lives
here on its own: the exact location, else the entry ``beside`` names, else the unique best match
by trailing path components.
"""

from __future__ import annotations

import os
from typing import List, Union

from luigi_repro.dag import format_key
from luigi_repro.record import OutputEntry, Record
from luigi_repro.status import Reason, ReasonKind


def _components(uri: str) -> List[str]:
    return [part for part in uri.replace(os.sep, "/").split("/") if part]


def _common_suffix(one: str, other: str) -> int:
    """How many trailing path components ``one`` and ``other`` share."""
    count = 0
    for mine, theirs in zip(reversed(_components(one)), reversed(_components(other))):
        if mine != theirs:
            break
        count += 1
    return count


def own_entry(record: Record, uri: str) -> Union[OutputEntry, Reason]:
    """The record's entry for the output at ``uri``, or the BAD_RECORD reason none fits.

    The entry at that very location; else (the record was moved or copied) the entry its
    ``beside`` names; else, for a record written before ``beside`` existed, the entry whose
    location ends with the most path components in common with ``uri``. Never a guess: two
    entries that fit equally well are reported as ambiguous.
    """
    for entry in record.outputs:
        if entry.uri == uri:
            return entry
    if record.beside is not None:
        found = record.output(record.beside)
        if found is not None:
            return found
        return _not_described(
            uri, f"names output(){format_key(record.beside)} as its own, which it does not list"
        )
    scores = [(_common_suffix(entry.uri, uri), entry) for entry in record.outputs]
    best = max(score for score, _ in scores)
    fits = [entry for score, entry in scores if score == best]
    if best == 0:
        return _not_described(uri, "does not describe it")
    if len(fits) > 1:
        return Reason(
            ReasonKind.BAD_RECORD,
            f"the record beside {uri} is ambiguous: it does not say which of its outputs it "
            f"describes, and {' and '.join(entry.uri for entry in fits)} fit equally well",
            {"uri": uri, "problem": "ambiguous output", "candidates": [e.uri for e in fits]},
        )
    return fits[0]


def _not_described(uri: str, problem: str) -> Reason:
    return Reason(
        ReasonKind.BAD_RECORD,
        f"the record beside {uri} {problem}",
        {"uri": uri, "problem": "output not described"},
    )
