"""Where user code ends: which modules are the user's, whose code a fingerprint must cover.

User code is code the user wrote: not the standard library, not installed packages (in a
folder called site-packages or dist-packages, not merely one whose name contains the words),
not Luigi, not luigi_repro. Installed packages count through the environment check instead
(their versions are recorded). The decision is made per module, by where its file lives rather
than by its name, so a pipeline module called like a standard-library one (``profile.py``) is
still the user's. A module without a file is the user's (code typed into ``__main__``, a
namespace made by ``exec``) unless Python built it in or a library made it to evaluate code it
generates (``namedtuple``'s). The package of a task class that itself lives in site-packages
(an installed pipeline) counts as the user's too.
"""

from __future__ import annotations

import builtins
import functools
import os
import site
import sys
import sysconfig
import threading
from typing import Any, Dict, Mapping, Optional, Set, Tuple

#: Top-level packages that are never the user's code, whatever their location.
OUR_PACKAGES = frozenset({"luigi", "luigi_repro", "builtins"})

_lock = threading.Lock()


@functools.cache
def _installed_prefixes() -> Tuple[str, ...]:
    """Folders of the standard library and of installed packages, as given and as real paths."""
    paths = sysconfig.get_paths()
    folders = [paths.get(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")]
    try:
        folders.extend(site.getsitepackages())
        folders.append(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - a virtualenv's old site.py lacks them
        pass
    found: Set[str] = set()
    for folder in folders:
        if folder:
            found.add(os.path.join(folder, ""))
            found.add(os.path.join(os.path.realpath(folder), ""))
    return tuple(sorted(found))


@functools.cache
def _stdlib_prefixes() -> Tuple[str, ...]:
    paths = sysconfig.get_paths()
    folders = [paths.get("stdlib"), paths.get("platstdlib")]
    return tuple({os.path.join(os.path.realpath(f), "") for f in folders if f})


_PACKAGE_FOLDERS = frozenset({"site-packages", "dist-packages"})


def _in_package_folder(path: str) -> bool:
    """Is one of the path's folders ``site-packages``/``dist-packages`` (not merely a name
    containing those words, such as a project checked out in ``site-packages-audit/``)?"""
    return not _PACKAGE_FOLDERS.isdisjoint(path.replace("\\", "/").split("/"))


def is_stdlib_path(path: str) -> bool:
    """Is ``path`` a file of the standard library (and not of an installed package)?"""
    real = os.path.realpath(path)
    return not _in_package_folder(real) and real.startswith(_stdlib_prefixes())


def _is_installed_path(path: str) -> bool:
    def installed(candidate: str) -> bool:
        return _in_package_folder(candidate) or candidate.startswith(_installed_prefixes())

    return installed(path) or installed(os.path.realpath(path))


#: Top-level packages of task classes that live among installed packages: still the user's.
_home_packages: Set[str] = set()
_namespace_verdicts: Dict[Tuple[str, Optional[str]], bool] = {}


def note_task_module(module_name: str) -> None:
    """Count the package of a task class's module as user code even if it is installed."""
    top = module_name.partition(".")[0]
    if top in OUR_PACKAGES or top in _home_packages:
        return
    module = sys.modules.get(module_name)
    filename = getattr(module, "__file__", None)
    if filename and _is_installed_path(filename):
        with _lock:
            _home_packages.add(top)
            _namespace_verdicts.clear()


def is_user_namespace(namespace: Mapping[str, Any]) -> bool:
    """Is the module whose globals are ``namespace`` the user's code?"""
    name = str(namespace.get("__name__") or "")
    filename = namespace.get("__file__")
    if not isinstance(filename, str) and _is_library_sandbox(namespace):
        return False
    cache_key = (name, filename if isinstance(filename, str) else None)
    known = _namespace_verdicts.get(cache_key)
    if known is None:
        known = _namespace_verdicts[cache_key] = _decide_namespace(name, namespace)
    return known


def _is_library_sandbox(namespace: Mapping[str, Any]) -> bool:
    """A namespace a library evaluates code it generates in, such as ``namedtuple``'s.

    It is no module (nothing in ``sys.modules`` has it as globals) and it was given builtins
    of its own (none at all for ``namedtuple``), which code typed or ``exec``-ed by the user,
    even in a namespace of its own, never is.
    """
    given = namespace.get("__builtins__", builtins)
    if given is builtins or given is vars(builtins):
        return False
    module = sys.modules.get(str(namespace.get("__name__") or ""))
    return getattr(module, "__dict__", None) is not namespace


def _decide_namespace(name: str, namespace: Mapping[str, Any]) -> bool:
    top = name.partition(".")[0]
    if top in OUR_PACKAGES:
        return False
    if top in _home_packages:
        return True
    filename = namespace.get("__file__")
    if isinstance(filename, str) and filename:
        return not _is_installed_path(filename)
    folders = namespace.get("__path__")  # a namespace package: no file, only folders
    if folders is not None:
        return any(not _is_installed_path(str(folder)) for folder in list(folders))
    spec = namespace.get("__spec__")
    if getattr(spec, "origin", None) in ("built-in", "frozen"):
        return False
    return name not in sys.builtin_module_names
