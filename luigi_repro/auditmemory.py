"""Remembered record-only audits: a later ``verify PATH…`` replays one by stat instead of deciding.

Deciding a record-only audit means importing the pipeline machinery (Luigi included), parsing
every record and fingerprinting every file; a fresh process paid that on every call. So when an
audit finds everything up to date, what it stood on is kept in the stat cache's SQLite file: the
stat of every record and every file it read, the Luigi configuration files (present or absent),
and the report. The entry is found by a key naming everything else the verdict may depend on:
the paths asked for, the working folder, the user, the whole environment (settings overrides,
the signing key, ``PYTHONPATH``), the Python and luigi_repro code in use. An audit of a folder
(every record beneath it) also stands on the stat of each folder listed, whose mtime moves when
a record is added or removed in it, and on the folder's own record staying absent. A later
process with the same key replays the entry when every stat is the same, without importing
Luigi; otherwise it decides.

A file is kept only when its last change (mtime or ctime) came more than ``racy_window`` before
the audit started: a write within the file system's timestamp granularity of the audit could
otherwise leave the stat unchanged. An edit that restores the mtime still moves the ctime. Any
unreadable, truncated or foreign entry, or a store that cannot be used, means deciding again.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import stat as stat_module
import sys
import time
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple

from luigi_repro.fingerprint import Counters
from luigi_repro.fsclock import fs_now_ns, host_clock
from luigi_repro.reportmodel import Report, TaskReport
from luigi_repro.statcache import open_stat_cache
from luigi_repro.statstore import PersistentStatCache, default_stat_cache_path, pack_stat
from luigi_repro.status import Reason, ReasonKind

__all__ = [
    "AUDIT_SCHEMA",
    "CONFIG_FILES",
    "audit_key",
    "audit_store",
    "remember_audit",
    "replay_audit",
]

#: Version of a remembered entry; an entry of another version is never replayed.
AUDIT_SCHEMA = 2

#: Where Luigi looks for its configuration (both parsers; ``LUIGI_CONFIG_PATH`` is added).
CONFIG_FILES = (
    "/etc/luigi/client.cfg",
    "/etc/luigi/luigi.cfg",
    "client.cfg",
    "luigi.cfg",
    "/etc/luigi/luigi.toml",
    "luigi.toml",
)

_OFF = ("off", "none", "false", "0")

#: Variables a shell or terminal library sets that no verdict can depend on.
_VOLATILE = frozenset({b"COLUMNS", b"LINES", b"OLDPWD", b"PWD", b"SHLVL", b"_"})


def _config_files() -> Tuple[str, ...]:
    extra = os.environ.get("LUIGI_CONFIG_PATH")
    return CONFIG_FILES + ((extra,) if extra else ())


def audit_store() -> Optional[str]:
    """The stat cache file the settings name, read without Luigi; None when it cannot be told
    this way (a TOML parser, an interpolated value) or caching is off."""
    value = os.environ.get("LUIGI_REPRO_STAT_CACHE")
    if value is None:
        if os.environ.get("LUIGI_CONFIG_PARSER", "cfg") not in ("cfg", "conf", "ini"):
            return None
        parser = configparser.RawConfigParser()
        try:
            parser.read([path for path in _config_files() if path.endswith(".cfg")])
            value = parser.get("luigi_repro", "stat_cache", fallback="")
        except (configparser.Error, UnicodeDecodeError):
            return None
        if "$" in value or "%" in value:
            return None
    value = value.strip()
    if value.lower() in _OFF:
        return None
    return os.path.abspath(os.path.expanduser(value or default_stat_cache_path()))


def _code_token() -> List[Any]:
    """The luigi_repro modules in use, by stat: an upgraded or edited copy decides again."""
    package = os.path.dirname(os.path.abspath(__file__))
    found: List[Any] = []
    for folder in (package, os.path.join(package, "targets"), os.path.join(package, "cli")):
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    st = entry.stat()
                    found.append((entry.path, st.st_ino, st.st_size, st.st_mtime_ns))
    return sorted(found)


def audit_key(paths: Sequence[str]) -> str:
    """What an audit of ``paths`` may depend on besides the files it reads, as one digest."""
    raw = getattr(os.environ, "_data", None)
    if not isinstance(raw, dict):
        raw = {os.fsencode(k): os.fsencode(v) for k, v in os.environ.items()}
    environment = sorted(item for item in raw.items() if item[0] not in _VOLATILE)
    described = repr(
        (
            AUDIT_SCHEMA,
            sys.version,
            sys.executable,
            os.getcwd(),
            os.geteuid() if hasattr(os, "geteuid") else None,
            environment,
            list(paths),
            # Where each path leads now: an audit places inputs by where its outputs really are
            # (a symlink switched to another release, "link/.." resolved after the link).
            [path if "://" in path else os.path.realpath(path) for path in paths],
            _code_token(),
        )
    )
    return hashlib.sha256(described.encode("utf-8", "surrogateescape")).hexdigest()


def _packed(st: os.stat_result) -> str:
    return pack_stat(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _stable_stats(
    paths: Collection[str], started_host_ns: int, window_ns: int, folders: bool = False
) -> Optional[List[Tuple[str, str]]]:
    """``(path, packed stat)`` of every path, or None when one is not a regular file (with
    ``folders``: a folder, whose stat vouches for its listing only) or changed within
    ``window_ns`` of the audit's start (by its file system's clock)."""
    elapsed = host_clock() - started_host_ns
    starts: Dict[int, int] = {}
    found = []
    for path in sorted(paths):
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not (stat_module.S_ISDIR if folders else stat_module.S_ISREG)(st.st_mode):
            return None  # a folder's stat does not vouch for the files inside it
        if st.st_dev not in starts:
            starts[st.st_dev] = fs_now_ns(path, st.st_dev) - elapsed
        if max(st.st_mtime_ns, st.st_ctime_ns) + window_ns > starts[st.st_dev]:
            return None
        found.append((path, _packed(st)))
    return found


def config_state() -> Optional[List[Tuple[str, Optional[str]]]]:
    """The stat of each of Luigi's configuration files (None: absent); None when one cannot be
    told. Taken before the settings are read, and again when the audit is remembered."""
    config: List[Tuple[str, Optional[str]]] = []
    for path in _config_files():
        try:
            config.append((path, _packed(os.stat(path))))
        except FileNotFoundError:
            config.append((path, None))
        except OSError:
            return None
    return config


def remember_audit(
    store: PersistentStatCache,
    key: str,
    report: Report,
    read: Collection[str],
    started_host_ns: int,
    window_ns: int,
    config_before: Optional[List[Tuple[str, Optional[str]]]],
    listed: Collection[str] = (),
    absent: Collection[str] = (),
) -> bool:
    """Keep an up-to-date ``report`` and what it stood on (``read``: every local file the audit
    read, records included; ``config_before``: :func:`config_state` before the settings were
    read; ``listed``: folders whose listing chose what to audit; ``absent``: files that must
    stay absent); False when it cannot be replayed safely and was not kept."""
    if not report.ok or not read or config_before is None:
        return False
    files = _stable_stats(read, started_host_ns, window_ns)
    folders = _stable_stats(listed, started_host_ns, window_ns, folders=True)
    config = config_state()
    if files is None or folders is None or config != config_before:
        return False  # a file, or the settings the audit decided under, changed meanwhile
    if any(os.path.lexists(path) for path in absent):
        return False
    present = [path for path, packed in config if packed is not None]
    if present and _stable_stats(present, started_host_ns, window_ns) is None:
        return False  # a configuration file too fresh for its stat to vouch for it
    entry = {
        "schema": AUDIT_SCHEMA,
        "files": files,
        "folders": folders,
        "absent": sorted(absent),
        "config": config,
        "report": {
            "mode": report.mode,
            "roots": list(report.roots),
            "notes": list(report.notes),
            "tasks": [task.to_json() for task in report.tasks.values()],
        },
    }
    store.put_audit(key, json.dumps(entry, separators=(",", ":")))
    return True


def _reasons(items: Any) -> Tuple[Reason, ...]:
    return tuple(
        Reason(ReasonKind(item["kind"]), str(item["message"]), dict(item["evidence"]))
        for item in items
    )


def _task(item: Dict[str, Any]) -> TaskReport:
    return TaskReport(
        task_id=str(item["task_id"]),
        family=str(item["family"]),
        kind=str(item["kind"]),
        status=str(item["status"]),
        ok=item["ok"] is True,
        label=str(item["label"]),
        reasons=_reasons(item["reasons"]),
        notes=_reasons(item["notes"]),
        upstream=tuple(map(str, item["upstream"])),
        outputs=tuple(map(str, item["outputs"])),
    )


def _still_holds(entry: Dict[str, Any], counters: Counters) -> bool:
    """Whether every file and configuration file is as the entry saw it (stat by stat)."""
    for path, packed in entry["config"]:
        try:
            now: Optional[str] = _packed(os.stat(path))
        except FileNotFoundError:
            now = None
        if now != packed:
            return False
    for path, packed in [*entry["files"], *entry["folders"]]:
        counters.files_statted += 1
        try:
            if _packed(os.stat(path)) != packed:
                return False
        except OSError:
            return False
    return not any(os.path.lexists(path) for path in entry["absent"])


def replay_audit(paths: Sequence[str], counters: Optional[Counters] = None) -> Optional[Report]:
    """The remembered report of an audit of ``paths`` when nothing it stood on changed since;
    None when there is none or it does not hold (then the audit must be decided)."""
    started = time.perf_counter()
    location = audit_store()
    if location is None or not os.path.exists(location):
        return None
    store = open_stat_cache(location)  # the process's own: a broken store warns once
    if store is None:
        return None
    try:
        text = store.get_audit(audit_key(paths))
        if text is None:
            return None
        counters = counters if counters is not None else Counters()
        entry = json.loads(text)
        if entry.get("schema") != AUDIT_SCHEMA or not _still_holds(entry, counters):
            return None
        shown = entry["report"]
        tasks = [_task(item) for item in shown["tasks"]]
        if not all(task.ok for task in tasks):
            return None
        return Report(
            mode=str(shown["mode"]),
            roots=tuple(map(str, shown["roots"])),
            tasks={task.task_id: task for task in tasks},
            counters=counters,
            seconds=time.perf_counter() - started,
            notes=tuple(map(str, shown["notes"])),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # a truncated or foreign entry: decide instead
