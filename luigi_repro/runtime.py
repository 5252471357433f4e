"""The one owner of what a process keeps between checks.

Remembered verdicts (with the file watches that keep them honest), parsed records and the
record stores of the settings in force, open stat caches, the clocks of file systems and the
warnings already given all live for the whole process. They are reached through
:func:`runtime`, and tests start from a clean slate with one call, :func:`reset`. A forked
worker is handed what its parent knew (:mod:`luigi_repro.forkhandoff`).
"""

from __future__ import annotations

import threading
from typing import Dict, Optional

# A forked child (Luigi runs each task in one when it has several workers) is handed what this
# process knows by the fork hooks this import registers.
from luigi_repro import forkhandoff  # noqa: F401
from luigi_repro.config import Settings, load_settings
from luigi_repro.memory import VerdictMemory
from luigi_repro.recordstore import RecordCache, RecordStore

__all__ = ["Runtime", "reset", "runtime"]


class Runtime:
    """Process-wide state of luigi_repro."""

    def __init__(self) -> None:
        self.memory = VerdictMemory()
        #: Parsed records, shared by the stores of every set of settings (keys name the key).
        self.record_cache = RecordCache()
        self._stores: Dict[Settings, RecordStore] = {}

    def records(self, settings: Optional[Settings] = None) -> RecordStore:
        """The record store for ``settings`` (by default, the settings in force)."""
        settings = settings or load_settings()
        store = self._stores.get(settings)
        if store is None:
            if len(self._stores) > 16:  # settings changed many times: keep the latest only
                self._stores.clear()
            store = self._stores[settings] = RecordStore(settings, self.record_cache)
        return store


_runtime: Optional[Runtime] = None
_lock = threading.Lock()


def runtime() -> Runtime:
    """This process's runtime state (created on first use)."""
    global _runtime
    current = _runtime
    if current is None:
        with _lock:
            if _runtime is None:
                _runtime = Runtime()
            current = _runtime
    return current


def reset() -> None:
    """Forget everything remembered in this process (tests call it between scenarios)."""
    from luigi_repro.evidence import forget_warnings
    from luigi_repro.fsclock import forget_clocks
    from luigi_repro.statcache import forget_folders
    from luigi_repro.targets.s3listing import forget_s3

    runtime().memory.forget()
    runtime().record_cache.clear()
    forget_clocks()
    forget_warnings()
    forget_s3()
    forget_folders()
