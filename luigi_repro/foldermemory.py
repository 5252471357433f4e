"""What this process last saw of folders without a record, in front of the persistent cache.

An input folder has no record to hold its stamps, so each check used to ask the persistent
cache for every file below it (one query returning a row per file, a path decoded and a stat
packed per file): half again the cost of the walk itself. The last observation of such a folder
(its fingerprint, manifest and stamps) is kept here instead, and the next check compares the
walk with it exactly as an output folder is compared with its record. Every reuse is still
proven file by file by the stamps, so an entry is never wrong, only useless when the folder has
changed; the persistent cache still vouches for files in a process that has not seen the folder.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = ["FolderMemory", "RememberedFolder"]

#: ``(fingerprint, manifest, state)`` of a folder's last observation.
RememberedFolder = Tuple[str, Mapping[str, str], Mapping[str, Any]]

#: Files remembered at most, over all folders: a few hundred bytes each.
MAX_FILES = 250_000


class FolderMemory:
    """The last observation of each folder, by physical path and slot (the algorithm); bounded
    by the number of files their manifests hold, the least recently stored dropped first."""

    def __init__(self, max_files: int = MAX_FILES) -> None:
        self._max_files = max_files
        self._folders: Dict[Tuple[str, str], RememberedFolder] = {}
        self._files = 0
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop every folder (tests reset through :func:`luigi_repro.runtime.reset`)."""
        with self._lock:
            self._folders.clear()
            self._files = 0

    def recall(self, folder: str, slot: str) -> Optional[RememberedFolder]:
        """The last observation stored for ``folder``, or None."""
        with self._lock:
            return self._folders.get((folder, slot))

    def remember(
        self, folder: str, slot: str, fingerprint: str, manifest: Mapping[str, str], state: Any
    ) -> None:
        """Keep this observation of ``folder`` (replacing any earlier one) if it fits."""
        size = len(manifest)
        with self._lock:
            earlier = self._folders.pop((folder, slot), None)
            if earlier is not None:
                self._files -= len(earlier[1])
            if size > self._max_files:
                return
            while self._folders and self._files + size > self._max_files:
                oldest = next(iter(self._folders))
                self._files -= len(self._folders.pop(oldest)[1])
            self._folders[(folder, slot)] = (fingerprint, manifest, state)
            self._files += size
