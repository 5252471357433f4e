"""The graph records draw: from an output's record to the files its run read, wherever they are.

``verify PATH`` (:mod:`luigi_repro.audit`) and ``show --lineage`` walk the same edges, so they
agree on where each input is — in particular in a copied results folder, where a record's
locations are looked for at the same place relative to the copy (never the original's files),
and only as far as the record's writer could read.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple, Union

import attrs

from luigi_repro.localpath import relocate
from luigi_repro.ownentry import own_entry
from luigi_repro.record import InputEntry, OutputEntry, Record
from luigi_repro.status import Reason
from luigi_repro.targets.base import HashableTarget, locate_target
from luigi_repro.writerrights import writer_refusal

__all__ = ["Edge", "inputs_of", "locate", "own_entry"]


@attrs.frozen
class Edge:
    """One input of a recorded run, as found from where its record sits now."""

    entry: InputEntry
    #: The input's location now (relocated when the record moved with its folder).
    location: str
    #: The target there, read as the record says, or None and ``unlocated`` says why.
    target: Optional[HashableTarget]
    unlocated: Optional[str]


def locate(
    location: str,
    description: Optional[Mapping[str, Any]],
    known: Optional[HashableTarget],
    record: Record,
) -> Tuple[Optional[HashableTarget], Optional[str]]:
    """The target at ``location`` that reads its content as ``description`` says (``known``
    itself when it already does), or None and why (also when the record's writer could not
    read it)."""
    if known is not None and known.uri == location and known.describe() == description:
        return known, None
    refused = writer_refusal(location, record.writer)
    if refused is not None:
        return None, refused
    return locate_target(location, description)


def inputs_of(
    record: Record, beside: HashableTarget
) -> Union[Reason, Tuple[OutputEntry, List[Edge]]]:
    """The record's own entry for the output it sits beside, and every input of its run as
    found from there; or the BAD_RECORD reason no entry describes that output."""
    own = own_entry(record, beside.uri)
    if isinstance(own, Reason):
        return own
    edges = []
    for entry in record.inputs:
        location = relocate(entry.uri, own.uri, beside.uri)
        target, unlocated = locate(location, entry.target, None, record)
        edges.append(Edge(entry, location, target, unlocated))
    return own, edges
