"""Modules that the user's functions import when they run, found (and imported) for the closure.

A module imported inside a function (``import helpers`` in ``run()``) may not be imported yet
when the fingerprint is taken, yet it is the code the function will run, so the closure imports
it as the function would. Only the user's modules are: whether a module is the user's is decided
from where its spec says it lives before anything is executed, and an installed package is never
imported for a fingerprint. Importing runs the user's code, so every failure, even
``sys.exit()``, is caught and said in one line rather than ending the check.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Optional, Tuple

from luigi_repro.codesource import is_user_namespace

__all__ = ["import_user_module"]


def import_user_module(name: str) -> Tuple[Optional[types.ModuleType], Optional[str]]:
    """The user module called ``name``, imported now if it is not yet; None if installed.

    A module imported inside a function may not be imported yet when the fingerprint is
    taken; it is the code the function will run, so it is imported (as the function would).
    Whether it is the user's is decided from its top-level package's location first: finding
    ``pkg.sub`` imports ``pkg``, and an installed package is never imported for a fingerprint.
    """
    module = sys.modules.get(name)
    if module is not None:
        return (module if is_user_namespace(vars(module)) else None), None
    top = name.partition(".")[0]
    if top != name:
        parent = sys.modules.get(top)
        if parent is not None:
            if not is_user_namespace(vars(parent)):
                return None, None
        else:
            users, problem = _spec_is_users(top)
            if not users:
                return None, problem
    users, problem = _spec_is_users(name)
    if not users:
        return None, problem
    try:
        module = importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - even sys.exit() at import must not end a check
        return None, f"importing it failed: {type(exc).__name__}: {exc}"
    return (module if is_user_namespace(vars(module)) else None), None


def _spec_is_users(name: str) -> Tuple[bool, Optional[str]]:
    """Is the module ``name`` (found, not imported) the user's? With why not, if it is missing."""
    try:
        spec = importlib.util.find_spec(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - finding ``a.b`` runs ``a``: it may fail
        return False, f"finding it failed: {type(exc).__name__}: {exc}"
    if spec is None:
        return False, "it cannot be found"
    origin = spec.origin
    if spec.has_location and isinstance(origin, str):
        return is_user_namespace({"__name__": name, "__file__": origin}), None
    if origin in ("built-in", "frozen"):
        return False, None
    folders = spec.submodule_search_locations
    if folders is not None:  # a namespace package: only folders
        return is_user_namespace({"__name__": name, "__path__": list(folders)}), None
    return True, None
