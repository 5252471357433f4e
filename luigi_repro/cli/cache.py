"""``luigi-repro cache stats|gc``: what the run cache holds, and keeping it in bounds.

The cache is the one ``[luigi_repro] run_cache`` (``LUIGI_REPRO_RUN_CACHE``) names, or
``--cache LOCATION``. ``stats --format json`` prints one object (schema 1)::

    {"schema": 1, "cache": location, "entries": n, "unreadable_entries": n,
     "other_schema_entries": n, "blobs": n, "blob_bytes": n, "referenced_bytes": n,
     "logical_bytes": n, "shared_bytes": n, "unreferenced_blobs": n, "unreferenced_bytes": n,
     "missing_blobs": n, "temporaries": n, "temporary_bytes": n,
     "oldest_use": iso|null, "newest_use": iso|null}

``gc --format json`` prints one object (schema 1)::

    {"schema": 1, "cache": location, "max_size_bytes": n|null, "older_than_seconds": s|null,
     "grace_seconds": s, "remove": bool,
     "removals": [{"kind": "entry"|"blob"|"temporary", "name", "task": str|null, "bytes",
                   "why", "removed": bool, "error": str|null}, ...],
     "summary": {"entries_before": n, "entries_after": n, "bytes_before": n, "bytes_after": n,
                 "referenced_bytes_after": n, "young_unreferenced_blobs": n,
                 "planned": n, "removed": n, "failed": n, "kept": n}}

``kept`` counts planned removals left alone because the cache changed since the plan (an entry
used, a blob stored again). Exit status: 0 when listed (dry run) or everything planned was
removed or kept; 1 when --yes could not remove something; 2 for an error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from luigi_repro.cli.common import UsageError, add_style_options
from luigi_repro.cli.leftovers import parse_age
from luigi_repro.cli.style import Style, human_bytes
from luigi_repro.printable import printable

if TYPE_CHECKING:
    from luigi_repro.runcachestore import CacheStore

__all__ = ["parse_size", "run"]

DESCRIPTION = """\
Look after the run cache ([luigi_repro] run_cache, LUIGI_REPRO_RUN_CACHE, or --cache).

  luigi-repro cache stats [--cache LOCATION] [--format text|json]
  luigi-repro cache gc --max-size SIZE [--older-than AGE] [--grace AGE] [--yes]
                      [--cache LOCATION] [--format text|json]

gc removes unreadable entries, entries not used for AGE (30d, 12h, 90m), then entries least
recently used first until the blobs still referenced fit in SIZE (e.g. 500MiB, 20GiB); then
blobs no remaining entry names and temporaries left by stores that did not finish, but never
one younger than --grace, an hour (a run in progress may not have named it yet). Without --yes
it only lists what it would remove and the size after.
"""

_SIZE = re.compile(r"(\d+)\s*(|b|kib|mib|gib|tib)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str) -> int:
    """``1048576``, ``512KiB``, ``20 GiB`` in bytes (binary units, as the settings take)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--max-size {text!r} is not a size like 500MiB or 20GiB")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def _age(option: str, text: str) -> float:
    """An age option's seconds; the error names the option."""
    try:
        return parse_age(text)
    except UsageError:
        raise UsageError(f"{option} {text!r} is not an age like 90m, 12h or 30d") from None


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="luigi-repro cache",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = result.add_subparsers(dest="command", metavar="{stats,gc}", required=True)
    stats = commands.add_parser("stats", help="what the run cache holds")
    gc = commands.add_parser("gc", help="evict entries and remove unused blobs")
    gc.add_argument("--max-size", metavar="SIZE", help="what the kept entries may take")
    gc.add_argument("--older-than", metavar="AGE", help="evict entries not used for AGE")
    gc.add_argument(
        "--grace",
        metavar="AGE",
        default="1h",
        help="never remove a blob or temporary younger than AGE (1h; less only when no run "
        "is storing into the cache)",
    )
    gc.add_argument("--yes", "-y", action="store_true", help="remove (else: a dry run)")
    for command in (stats, gc):
        command.add_argument("--cache", metavar="LOCATION", help="a run cache folder")
        command.add_argument("--format", choices=("text", "json"), default="text")
        add_style_options(command)
    return result


def open_cache(location: Optional[str]) -> CacheStore:
    """The store of ``location``, else the configured run cache; UsageError when there is none."""
    import attrs

    from luigi_repro.config import _run_cache, load_settings
    from luigi_repro.errors import ConfigError
    from luigi_repro.runcache import open_store
    from luigi_repro.runcachestore import LocalStore

    settings = load_settings()
    try:
        if location is not None:
            settings = attrs.evolve(settings, run_cache=_run_cache(location))
        store = open_store(settings)
    except ConfigError as exc:
        raise UsageError(str(exc).rstrip(".")) from None
    if store is None:
        raise UsageError(
            "no run cache is configured: set [luigi_repro] run_cache or LUIGI_REPRO_RUN_CACHE, "
            "or pass --cache LOCATION"
        )
    if isinstance(store, LocalStore):
        if not os.path.isdir(store.root):
            raise UsageError(f"the run cache {store.root} does not exist (no folder there)")
        inside = set(os.listdir(store.root))
        if inside and not inside & {"entries", "blobs", "tmp"}:
            raise UsageError(f"{store.root} is not a run cache (no entries, blobs or tmp folder)")
    return store


def _stats(store: CacheStore, options: argparse.Namespace) -> int:
    from luigi_repro.runcachesurvey import cache_stats, survey, when

    figures = cache_stats(survey(store))
    if options.format == "json":
        print(json.dumps({"schema": 1, "cache": store.location, **figures.document()}, indent=2))
        return 0
    style = Style(sys.stdout, options.color)
    rows = [
        ("entries", f"{figures.entries} ({figures.unreadable_entries} unreadable)"),
        ("blobs", f"{figures.blobs}, {human_bytes(figures.blob_bytes)}"),
        ("referenced", human_bytes(figures.referenced_bytes)),
        ("shared", f"{human_bytes(figures.shared_bytes)} between entries "
                   f"({human_bytes(figures.logical_bytes)} without sharing)"),
        ("unreferenced", f"{figures.unreferenced_blobs} blobs, "
                         f"{human_bytes(figures.unreferenced_bytes)}"),
        ("missing", f"{figures.missing_blobs} blobs named by entries but not stored"),
        ("leftovers", f"{figures.temporaries} temporaries, "
                      f"{human_bytes(figures.temporary_bytes)}"),
        ("oldest use", when(figures.oldest_use) or "-"),
        ("newest use", when(figures.newest_use) or "-"),
    ]  # fmt: skip
    if figures.other_schema_entries:
        rows.insert(1, ("other schema", f"{figures.other_schema_entries} entries (kept)"))
    print(style.bold(f"Run cache {printable(store.location)}"))
    for label, value in rows:
        print(f"  {label:<13} {value}")
    return 0


def _gc(store: CacheStore, options: argparse.Namespace) -> int:
    from luigi_repro.runcachegc import carry_out, plan_gc
    from luigi_repro.runcachesurvey import survey

    if options.max_size is None and options.older_than is None:
        raise UsageError("cache gc needs --max-size SIZE, --older-than AGE or both")
    max_size = None if options.max_size is None else parse_size(options.max_size)
    older_than = None if options.older_than is None else _age("--older-than", options.older_than)
    found = survey(store)
    grace = _age("--grace", options.grace)
    plan = plan_gc(found, max_size=max_size, older_than=older_than, now=time.time(), grace=grace)
    tasks = {entry.name: entry.task for entry in found.entries}
    outcomes = carry_out(store, plan) if options.yes else plan.listed()
    removals: List[Dict[str, Any]] = [
        {
            "kind": item.kind,
            "name": item.name,
            "task": tasks.get(item.name) if item.kind == "entry" else None,
            "bytes": item.bytes,
            "why": item.why,
            "removed": item.removed,
            "error": item.error,
        }
        for item in outcomes
    ]
    removed = sum(1 for item in outcomes if item.removed)
    failed = sum(1 for item in outcomes if item.error is not None)
    kept = len(outcomes) - removed - failed if options.yes else 0
    summary = {
        "entries_before": len(found.entries),
        "entries_after": plan.kept_entries,
        "bytes_before": plan.bytes_before,
        "bytes_after": plan.bytes_after,
        "referenced_bytes_after": plan.referenced_after,
        "young_unreferenced_blobs": len(plan.young_blobs),
        "planned": len(outcomes),
        "removed": removed,
        "failed": failed,
        "kept": kept,
    }
    if options.format == "json":
        document = {
            "schema": 1,
            "cache": store.location,
            "max_size_bytes": max_size,
            "older_than_seconds": older_than,
            "grace_seconds": grace,
            "remove": options.yes,
            "removals": removals,
            "summary": summary,
        }
        print(json.dumps(document, indent=2))
        return 1 if failed else 0
    _print_gc(Style(sys.stdout, options.color), removals, summary, options.yes)
    return 1 if failed else 0


def _print_gc(
    style: Style, removals: List[Dict[str, Any]], summary: Dict[str, int], yes: bool
) -> None:
    for item in removals:
        if not yes:
            verb = style.dim("would remove")
        elif item["removed"]:
            verb = style.good("removed")
        else:
            verb = style.note("kept") if item["error"] is None else style.bad("failed")
        what = item["task"] or item["name"]
        print(f"  {verb}  {item['kind']:<9}  {printable(what)} ({human_bytes(item['bytes'])})")
        print(f"      {style.dim(printable(item['error'] or item['why']))}")
    sizes = (
        f"{summary['entries_before']} entries, {human_bytes(summary['bytes_before'])} of blobs "
        f"-> {summary['entries_after']} entries, {human_bytes(summary['bytes_after'])}"
    )
    if summary["young_unreferenced_blobs"]:
        sizes += (
            f" ({summary['young_unreferenced_blobs']} blob(s) named by no entry stay: younger"
            " than --grace)"
        )
    if not removals:
        print(f"Nothing to remove: {sizes}.")
    elif not yes:
        print(f"Would remove {len(removals)} item(s): {sizes} (dry run; --yes removes them).")
    else:
        print(f"Removed {summary['removed']} of {len(removals)} item(s): {sizes}.")


def run(argv: Sequence[str]) -> int:
    options = parser().parse_args(list(argv))
    store = open_cache(options.cache)
    if options.command == "stats":
        return _stats(store, options)
    return _gc(store, options)
