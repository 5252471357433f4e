"""The software a run used: Python, Luigi, luigi_repro and every imported third-party package.

Finding which distribution provides an imported module means scanning all installed
distributions (~0.1 s), so the mapping is built once per process and shared with forked workers,
which inherit it. Versions are looked up only for distributions that were actually imported, and
the package metadata machinery itself is imported only when a version is first needed.
"""

from __future__ import annotations

import platform
import sys
import threading
from typing import Dict, Mapping, Optional, Tuple

__all__ = ["current_versions", "env_drift", "imported_packages", "installed_version"]

_lock = threading.Lock()
_module_to_dists: Optional[Mapping[str, list[str]]] = None
_versions: Dict[str, Optional[str]] = {}


def _mapping() -> Mapping[str, list[str]]:
    global _module_to_dists
    with _lock:
        if _module_to_dists is None:
            from importlib import metadata

            try:
                _module_to_dists = metadata.packages_distributions()
            except Exception:  # noqa: BLE001 - a broken dist must not fail a run
                _module_to_dists = {}
        return _module_to_dists


def warm() -> None:
    """Build the module→distribution map now, so that forked workers inherit it (cheap after)."""
    if _module_to_dists is None:
        _mapping()


def installed_version(dist: str) -> Optional[str]:
    """The installed version of a distribution, or None if it is not installed (cached)."""
    with _lock:
        if dist in _versions:
            return _versions[dist]
    from importlib import metadata

    try:
        version: Optional[str] = metadata.version(dist)
    except (metadata.PackageNotFoundError, ValueError):  # ValueError: an empty name
        version = None
    with _lock:
        _versions[dist] = version
    return version


def current_versions() -> Dict[str, str]:
    """Versions of Python, Luigi and luigi_repro."""
    from luigi_repro.version import __version__

    return {
        "python": platform.python_version(),
        "luigi": installed_version("luigi") or "unknown",
        "luigi_repro": __version__,
    }


_imported: Tuple[int, Dict[str, str]] = (-1, {})


def imported_packages() -> Dict[str, str]:
    """``{distribution: version}`` of every distribution with a module imported right now.

    Recomputed only when the number of imported modules changed since the last call.
    """
    global _imported
    count = len(sys.modules)
    if _imported[0] == count:
        return dict(_imported[1])
    mapping = _mapping()
    tops = {name.partition(".")[0] for name in list(sys.modules)}
    result: Dict[str, str] = {}
    for top in sorted(tops):
        for dist in mapping.get(top, ()):
            version = installed_version(dist)
            if version is not None:
                result[dist] = version
    _imported = (count, result)
    return dict(result)


def env_drift(
    versions: Mapping[str, str], packages: Mapping[str, str]
) -> Dict[str, Tuple[str, str]]:
    """``{name: (recorded, now)}`` for Python/Luigi and each recorded package whose version moved.

    luigi_repro's own version is not drift: records stay valid across its upgrades.
    """
    drift: Dict[str, Tuple[str, str]] = {}
    now = current_versions()
    for name in ("python", "luigi"):
        if name in versions and versions[name] != now[name]:
            drift[name] = (versions[name], now[name])
    for dist, recorded in sorted(packages.items()):
        if dist in ("luigi", "luigi-repro", "luigi_repro"):
            continue
        installed = installed_version(dist) or "not installed"
        if installed != recorded:
            drift[dist] = (recorded, installed)
    return drift
