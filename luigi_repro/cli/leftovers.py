"""``luigi-repro gc``: list the leftovers :mod:`luigi_repro.leftovers` finds; remove with --yes.

``--format json`` prints one object (schema 1)::

    {"schema": 1, "paths": [folder, ...], "older_than_seconds": 86400.0, "remove": bool,
     "leftovers": [{"path", "kind": "record"|"lock"|"temporary", "why", "bytes",
                    "removed": bool, "error": str|null}, ...],
     "kept": [{"path", "kind", "why", "bytes"}, ...],
     "summary": {"found": n, "removed": n, "failed": n, "kept": n}}

``kept`` lists files of ours that are still in use (a held lock, a young temporary, one whose
writer runs). Exit status: 0 when listed, or when everything found was removed; 1 when --yes
could not remove something; 2 for an error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from luigi_repro.cli.common import UsageError, add_style_options
from luigi_repro.cli.render import Style
from luigi_repro.localpath import physical_path
from luigi_repro.printable import printable

__all__ = ["parse_age", "run"]

DESCRIPTION = """\
Find luigi_repro's leftovers under folders: records whose output is gone, run-lock files no
process holds whose output is gone, and temporaries of Luigi (<x>-luigi-tmp-<digits>) and
luigi_repro (.<x>.repro-tmp-<pid>-<hex>) unchanged for longer than --older-than whose writer is
gone. Nothing else is ever touched. Lists them; --yes removes them.
"""

_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """``30m``, ``24h``, ``7d`` (or ``90s``) in seconds."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--older-than {text!r} is not an age like 30m, 24h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="luigi-repro gc",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument("paths", nargs="+", metavar="PATH", help="folders to search")
    result.add_argument(
        "--older-than", default="24h", help="age of temporaries to count (30m, 24h, 7d; 24h)"
    )
    result.add_argument("--format", choices=("text", "json"), default="text")
    result.add_argument("--yes", "-y", action="store_true", help="remove what is found")
    add_style_options(result)
    return result


def _entry(leftover: Any, outcome: Optional[Tuple[bool, Optional[str]]]) -> Dict[str, Any]:
    entry = {
        "path": leftover.path,
        "kind": leftover.kind,
        "why": leftover.why,
        "bytes": leftover.size,
    }
    if outcome is not None:
        entry["removed"], entry["error"] = outcome
    return entry


def run(argv: Sequence[str]) -> int:
    from luigi_repro.config import load_settings
    from luigi_repro.leftoverremoval import remove_leftovers
    from luigi_repro.leftovers import survey

    options = parser().parse_args(list(argv))
    older_than = parse_age(options.older_than)
    for path in options.paths:
        if not os.path.isdir(path):
            raise UsageError(f"{path} is not a folder; gc searches folders")
    # As the OS reads them: ``link/..`` is the folder above link's target, not the current one.
    paths = [physical_path(path) for path in options.paths]
    settings = load_settings()
    found = survey(
        paths, older_than, settings.record_suffix, settings.max_record_bytes, time.time()
    )
    outcomes: Dict[str, Tuple[bool, Optional[str]]] = {}
    if options.yes:
        for leftover, why_not in remove_leftovers(
            found.leftovers, older_than, settings.record_suffix, settings.max_record_bytes
        ):
            outcomes[leftover.path] = (why_not is None, why_not)
    failed = sum(1 for removed, _ in outcomes.values() if not removed)
    removed = len(outcomes) - failed
    leftovers: List[Dict[str, Any]] = [
        _entry(item, outcomes.get(item.path, (False, None))) for item in found.leftovers
    ]
    if options.format == "json":
        document = {
            "schema": 1,
            "paths": paths,
            "older_than_seconds": older_than,
            "remove": options.yes,
            "leftovers": leftovers,
            "kept": [_entry(item, None) for item in found.kept],
            "summary": {
                "found": len(leftovers),
                "removed": removed,
                "failed": failed,
                "kept": len(found.kept),
            },
        }
        print(json.dumps(document, indent=2))
        return 1 if failed else 0
    style = Style(sys.stdout, options.color)
    for entry in leftovers:
        if not options.yes:
            verb = style.dim("found")
        elif entry["removed"]:
            verb = style.good("removed")
        else:
            verb = style.bad("kept")
        print(f"  {verb}  {entry['kind']:<9}  {printable(entry['path'])}")
        note = entry["error"] or entry["why"]
        print(f"           {style.dim(printable(note))}")
    for item in found.kept:
        print(f"  {style.dim('in use')}  {item.kind:<9}  {printable(item.path)} ({item.why})")
    if not leftovers:
        print("No leftovers.")
    elif options.yes:
        print(f"Removed {removed} of {len(leftovers)} leftover(s).")
    else:
        print(f"Found {len(leftovers)} leftover(s); `luigi-repro gc --yes` removes them.")
    return 1 if failed else 0
