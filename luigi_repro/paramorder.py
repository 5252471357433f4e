"""Parameters in the order their task class declares them, for labels read from records.

Records are written with sorted keys, so the ``params`` object alone can only say
``Data(alpha=a, i=0, zeta=z)``; people wrote ``Data(i=0, zeta=z, alpha=a)``, and that is how
task mode (Luigi's ``repr``) shows it. So a record also keeps the declared order of the names
(``task.param_order``), and a record-only audit shows the task as declared without importing
the pipeline's code. Records written before it was kept show the record's own order.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence, Tuple, TypeVar

__all__ = ["declared_order", "params_label"]

V = TypeVar("V")


def declared_order(params: Mapping[str, V], order: Sequence[str]) -> List[Tuple[str, V]]:
    """``params`` in ``order``; names ``order`` does not list come last, as given."""
    listed = [(name, params[name]) for name in order if name in params]
    named = set(order)
    return listed + [(name, value) for name, value in params.items() if name not in named]


def params_label(family: str, params: Mapping[str, Any], order: Sequence[str] = ()) -> str:
    """``Data(i=0, zeta=z, alpha=a)``: a task as people write it."""
    shown = ", ".join(f"{name}={value}" for name, value in declared_order(params, order))
    return f"{family}({shown})"
