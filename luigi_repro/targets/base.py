"""Where targets come from: a hashable target for a Luigi target, a URI or a record's entry.

The contract itself (:class:`HashableTarget`) lives in :mod:`luigi_repro.targets.hashable` and
the recognition of bookkeeping files in :mod:`luigi_repro.targets.bookkeeping`; both are
importable from here, where third-party targets have always imported them. Luigi targets that
are not hashable are turned into hashable ones by registered adapters.

Records name every target by its location and, when the content is not read as raw bytes, by a
description (:meth:`~HashableTarget.describe`); :func:`locate_target` turns the two back into a
target, so that an audit from records alone fingerprints each file the way the run did.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from luigi_repro.plainfiles import refusal_at
from luigi_repro.recordstore import RecordCache
from luigi_repro.targets.bookkeeping import is_bookkeeping
from luigi_repro.targets.hashable import (
    FingerprintContext,
    HashableTarget,
    Observation,
)

__all__ = [
    "FingerprintContext",
    "HashableTarget",
    "Observation",
    "RecordCache",
    "as_hashable",
    "is_bookkeeping",
    "locate_target",
    "register_adapter",
    "register_target_type",
    "register_uri_resolver",
    "target_from_uri",
]


#: Turns a Luigi target that is not a HashableTarget into an equivalent one, or returns None.
TargetAdapter = Callable[[Any], Optional[HashableTarget]]

_adapters: Dict[str, Tuple[int, TargetAdapter]] = {}

#: Backends whose adapter is loaded the first time a target of theirs is seen:
#: {module of Luigi's target class: our module that registers an adapter for it}.
_LAZY_BACKENDS = {
    "gokart.target": "luigi_repro.targets.gokart",
    "luigi.contrib.s3": "luigi_repro.targets.s3",
    "luigi.mock": "luigi_repro.targets.mock",
}


def register_adapter(name: str, adapter: TargetAdapter, priority: int = 100) -> None:
    """Teach :func:`as_hashable` a new kind of plain Luigi target (lowest priority first)."""
    _adapters[name] = (priority, adapter)


def as_hashable(target: Any) -> Optional[HashableTarget]:
    """``target`` itself if hashable, else an equivalent hashable view of it, else None."""
    if isinstance(target, HashableTarget):
        return target
    backend = _LAZY_BACKENDS.get(type(target).__module__)
    if backend is not None and backend not in sys.modules:
        importlib.import_module(backend)  # registers the backend's adapter
    for _, adapter in sorted(_adapters.values(), key=lambda item: item[0]):
        view = adapter(target)
        if view is not None:
            return view
    return None


#: Turns a URI found in a record back into a target, or returns None if it is not its kind.
UriResolver = Callable[[str], Optional[HashableTarget]]

#: Turns a location and a description of its type back into a target; raises ValueError (with
#: the reason) when the description's options or the location do not fit the type.
TypeResolver = Callable[[str, Mapping[str, Any]], HashableTarget]

_resolvers: Dict[str, UriResolver] = {}
_types: Dict[str, TypeResolver] = {}


def register_uri_resolver(name: str, resolver: UriResolver) -> None:
    """Teach :func:`target_from_uri` a new kind of location."""
    _resolvers[name] = resolver


def register_target_type(name: str, resolver: TypeResolver) -> None:
    """Teach :func:`locate_target` the targets whose :meth:`~HashableTarget.describe` has
    ``{"type": name}``."""
    _types[name] = resolver


#: Location prefixes whose backend is loaded the first time such a location is resolved.
_LAZY_SCHEMES = {
    "s3://": "luigi_repro.targets.s3",
    "s3a://": "luigi_repro.targets.s3",
    "s3n://": "luigi_repro.targets.s3",
    "mock:": "luigi_repro.targets.mock",
}

#: Described types whose backend is loaded the first time such a description is resolved.
_LAZY_TYPES = {
    "csv": "luigi_repro.targets.dataframe",
    "feather": "luigi_repro.targets.dataframe",
    "parquet": "luigi_repro.targets.dataframe",
}


def locate_target(
    uri: str, description: Optional[Mapping[str, Any]] = None
) -> Tuple[Optional[HashableTarget], Optional[str]]:
    """The target at ``uri`` that fingerprints its content as ``description`` says, or None
    with the reason it cannot be located.

    Without a description the location alone decides (raw bytes). A description of a type this
    version does not know, or with options it cannot use, is never read as raw bytes instead:
    that would compare two different kinds of fingerprint.
    """
    local = uri[len("file://") :] if uri.startswith("file://") else uri
    refused = refusal_at(local) if os.path.isabs(local) and "\0" not in local else None
    if refused is not None:
        # A record names it (a hostile or broken one): reading /proc/self/pagemap never ends.
        return None, refused
    if description is None:
        for prefix, backend in _LAZY_SCHEMES.items():
            if uri.startswith(prefix) and backend not in sys.modules:
                importlib.import_module(backend)  # registers the backend's resolver
        for resolver in _resolvers.values():
            try:
                target = resolver(uri)
            except Exception:  # noqa: BLE001 - a URI nobody can resolve is "cannot be located"
                target = None
            if target is not None:
                return target, None
        return None, "is not a location luigi_repro can read"
    kind = description.get("type")
    typed_backend = _LAZY_TYPES.get(kind) if isinstance(kind, str) else None
    if typed_backend is not None and typed_backend not in sys.modules:
        importlib.import_module(typed_backend)  # registers the backend's types
    type_resolver = _types.get(kind) if isinstance(kind, str) else None
    if type_resolver is None:
        return None, (
            f"is described as a {kind!r} target, which this version of luigi_repro cannot read"
        )
    try:
        return type_resolver(uri, description), None
    except ValueError as exc:
        return None, f"cannot be read as a {kind} target ({exc})"


def target_from_uri(
    uri: str, description: Optional[Mapping[str, Any]] = None
) -> Optional[HashableTarget]:
    """A target for a URI (and target description) read from a record, or None.

    :func:`locate_target` also says why a location cannot be located.
    """
    return locate_target(uri, description)[0]


def probe_exists(target: Any) -> Tuple[bool, Optional[str]]:
    """Whether ``target`` exists, and why it could not be told (a backend error), if so.

    Checks answer, they never raise: an S3 403, a vanished bucket or an unreachable file
    system makes the target count as absent, with the error kept as evidence.
    """
    if not hasattr(target, "exists"):
        return False, None
    try:
        return bool(target.exists()), None
    except Exception as exc:  # noqa: BLE001 - see above
        return False, f"cannot be checked ({exc})"
