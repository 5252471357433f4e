"""Looking at the user's objects without trusting them.

The code closure walks whatever the user's code holds, and computing it must never raise: a lazy
proxy may raise on every attribute, a metaclass may refuse ``vars()`` or ``__mro__``, a class may
be unhashable (a metaclass that defines ``__eq__`` without ``__hash__``), a proxy may claim
another ``__class__``. The helpers here ask such objects in ways that cannot fail, and say
"nothing to follow" when the object will not answer.
"""

from __future__ import annotations

import types
import weakref
from typing import Any, Dict, Generic, List, Mapping, Optional, Tuple, TypeVar

__all__ = [
    "MISSING",
    "ClassMemo",
    "attribute_of",
    "function_in",
    "is_class",
    "module_name_of",
    "mro_of",
    "object_at",
    "own_items",
]

#: What :func:`attribute_of` answers for an attribute that is absent or cannot be read.
MISSING: Any = object()


def attribute_of(obj: Any, name: str) -> Any:
    """``getattr(obj, name)``, or ``MISSING`` when it is absent or looking it up raises anything.

    Objects of the user's may refuse every attribute (a lazy proxy raises until configured).
    """
    try:
        return getattr(obj, name, MISSING)
    except Exception:  # noqa: BLE001 - any error means "not something to follow"
        return MISSING


def is_class(value: Any) -> bool:
    """By the object's real type: a proxy that claims another ``__class__`` is not asked."""
    return issubclass(type(value), type)


def own_items(cls: type) -> List[Tuple[str, Any]]:
    """``vars(cls).items()``; empty when the class will not say (a metaclass may refuse)."""
    try:
        return [(str(name), value) for name, value in vars(cls).items()]
    except Exception:  # noqa: BLE001
        return []


def module_name_of(cls: type) -> str:
    """The class's ``__module__``, or "" when it is not a string (or looking it up raises)."""
    module = attribute_of(cls, "__module__")
    return module if isinstance(module, str) else ""


def mro_of(cls: type) -> Tuple[type, ...]:
    """``cls.__mro__``; empty when the class will not say (a metaclass may refuse)."""
    try:
        return tuple(cls.__mro__)
    except Exception:  # noqa: BLE001 - a metaclass may refuse
        return ()


def object_at(namespace: Mapping[str, Any], qualname: str) -> Any:
    """The object a qualified name refers to now in a module's globals, or None."""
    if "<locals>" in qualname:
        return None
    value: Any = namespace
    for step, name in enumerate(qualname.split(".")):
        value = value.get(name, MISSING) if step == 0 else attribute_of(value, name)
        if value is MISSING or value is None:
            return None
    return value


def function_in(value: Any) -> Optional[types.FunctionType]:
    """The plain function behind a class attribute (method, static/class method, property)."""
    kind = type(value)
    if issubclass(kind, (staticmethod, classmethod)):
        value = value.__func__
    elif issubclass(kind, property):
        value = value.fget
    for _ in range(16):
        if type(value) is types.FunctionType and "__wrapped__" not in vars(value):
            return value
        wrapped = attribute_of(value, "__wrapped__")
        if wrapped is MISSING or wrapped is None:
            break
        value = wrapped
    return value if type(value) is types.FunctionType else None


V = TypeVar("V")


class ClassMemo(Generic[V]):
    """Something learned per class: weakly keyed, or by identity (keeping the class alive) for a
    class that cannot be hashed (its metaclass defines ``__eq__`` without ``__hash__``)."""

    def __init__(self) -> None:
        self._weak: weakref.WeakKeyDictionary[type, V] = weakref.WeakKeyDictionary()
        self._pinned: Dict[int, Tuple[type, V]] = {}

    def get(self, cls: type) -> Optional[V]:
        try:
            return self._weak.get(cls)
        except TypeError:
            entry = self._pinned.get(id(cls))
            return entry[1] if entry is not None and entry[0] is cls else None

    def set(self, cls: type, value: V) -> V:
        """Keep ``value`` for ``cls`` unless one is kept already; the one kept."""
        try:
            return self._weak.setdefault(cls, value)
        except TypeError:
            return self._pinned.setdefault(id(cls), (cls, value))[1]

    def clear(self) -> None:
        self._weak.clear()
        self._pinned.clear()
