"""Parameters in the order their task class declares them, for labels read from records.

Records are written with sorted keys, so ``Data(alpha=a, i=0, zeta=z)`` is all a record can say;
people wrote ``Data(i=0, zeta=z, alpha=a)``, and that is how task mode (Luigi's ``repr``) shows
it. Where the record's module can be imported here, its class gives the declared order;
elsewhere (an auditor without the pipeline's code) the record's order is kept.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from typing import Any, Iterable, List, Mapping, Optional, Tuple, TypeVar

__all__ = ["declared_order", "params_label"]

V = TypeVar("V")


@functools.lru_cache(maxsize=512)
def _declared_names(family: str, module: str) -> Optional[Tuple[str, ...]]:
    """The parameter names ``family`` of ``module`` declares, in order; None when unknown."""
    if not module or module == "__main__":
        return None  # a script's __main__ is not importable by name (it would be this one)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # a module printing must not spoil a report
            namespace = importlib.import_module(module)
    except (Exception, SystemExit):  # noqa: BLE001 - anything at all means "not importable"
        return None
    for cls in _classes(vars(namespace).values()):
        try:
            if cls.get_task_family() == family:
                return tuple(name for name, _ in cls.get_params())
        except Exception:  # noqa: BLE001 - a class that cannot say is not the one
            continue
    return None


def _classes(values: Iterable[Any]) -> Iterable[Any]:
    import luigi

    return (v for v in values if isinstance(v, type) and issubclass(v, luigi.Task))


def declared_order(family: str, module: str, params: Mapping[str, V]) -> List[Tuple[str, V]]:
    """``params`` in declaration order where the class can be found, else as given; names the
    class no longer declares come last, in the given order."""
    names = _declared_names(family, module)
    if names is None:
        return list(params.items())
    declared = [(name, params[name]) for name in names if name in params]
    return declared + [(name, value) for name, value in params.items() if name not in names]


def params_label(family: str, module: str, params: Mapping[str, Any]) -> str:
    """``Data(i=0, zeta=z, alpha=a)``: a task as people write it."""
    shown = ", ".join(f"{name}={value}" for name, value in declared_order(family, module, params))
    return f"{family}({shown})"
