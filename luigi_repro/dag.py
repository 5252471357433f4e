"""Where each input and output sits in a task's nested ``requires()`` / ``output()`` structures.

Luigi accepts a single object, a list, a tuple, a dict, or any nesting of them. Every leaf gets a
*key*: the path of dict keys and list indexes that leads to it, so a record can say "input
``['model']``" rather than "the third file", and inputs can be matched between runs by place.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Set, Tuple

import attrs
import luigi
from luigi.parameter import ParameterVisibility

from luigi_repro.record import Key

__all__ = [
    "InputRef",
    "upstream_first",
    "dynamic_inputs",
    "flatten_with_keys",
    "format_key",
    "lost_in_transfer",
    "requirements_of",
    "static_inputs",
]


def flatten_with_keys(struct: Any, prefix: Key = ()) -> List[Tuple[Key, Any]]:
    """``[(key, leaf)]`` in the order ``luigi.task.flatten`` would give the leaves.

    Sets have no order, so their members are sorted by ``str``; other iterables keep theirs.
    """
    return list(_walk(struct, prefix))


def _walk(struct: Any, prefix: Key) -> Iterator[Tuple[Key, Any]]:
    if struct is None:
        return
    if isinstance(struct, dict):
        for name, value in struct.items():
            part = (
                name if isinstance(name, (str, int)) and not isinstance(name, bool) else str(name)
            )
            yield from _walk(value, (*prefix, part))
        return
    if isinstance(struct, (str, luigi.Task, luigi.Target)):
        yield prefix, struct
        return
    if isinstance(struct, (set, frozenset)):
        struct = sorted(struct, key=str)
    try:
        items = iter(struct)
    except TypeError:
        yield prefix, struct
        return
    for index, value in enumerate(items):
        yield from _walk(value, (*prefix, index))


def format_key(key: Key) -> str:
    """A key as Python-like indexing: ``['model'][0]``; the empty key is the empty string."""
    return "".join(f"[{part!r}]" for part in key)


@attrs.frozen
class InputRef:
    """One concrete input: the upstream task, which of its outputs, and where both sit."""

    key: Key
    output_key: Key
    task: luigi.Task
    target: Any
    dynamic: bool = False

    @property
    def label(self) -> str:
        """How the input is named in messages: ``requires()['raw']`` or ``yield[0]['a']``."""
        where = "yield" if self.dynamic else "requires()"
        out = "" if not self.output_key else f".output(){format_key(self.output_key)}"
        return f"{where}{format_key(self.key)}{out}"


def requirements_of(task: luigi.Task, prefix: Key = ()) -> List[Tuple[Key, luigi.Task]]:
    """``task.requires()`` called once and flattened with keys.

    Once: ``requires()`` may be a generator (a common Luigi idiom), which a second pass would find
    empty.
    """
    flat = flatten_with_keys(task.requires(), prefix)
    for _, upstream in flat:
        if not isinstance(upstream, luigi.Task):
            raise TypeError(
                f"{task.get_task_family()}.requires() returned {upstream!r}, "
                "which is not a Luigi task"
            )
    return flat


def is_wrapper(task: luigi.Task) -> bool:
    """Is ``task`` a wrapper whose ``complete()`` is only "all it requires is complete"
    (Luigi's ``WrapperTask``, or luigi_repro's, unless a subclass overrides ``complete()``)?"""
    complete = type(task).complete
    return isinstance(task, luigi.WrapperTask) and (
        complete is luigi.WrapperTask.complete or getattr(complete, "wraps_only", False)
    )


def through_wrappers(requirements: List[Tuple[Key, luigi.Task]]) -> List[Tuple[Key, luigi.Task]]:
    """``requirements`` with each wrapper replaced by what it wraps, recursively.

    A wrapper has no outputs, so a task that requires one reads the outputs of the tasks it
    wraps (often listed from a folder); those are its inputs. Each is keyed by the wrapper's key
    and its place in the wrapper's ``requires()``, as direct requirements are (a task id would
    name an absolute path, and a copied results folder could not be audited).
    """
    found: List[Tuple[Key, luigi.Task]] = []
    stack = list(reversed(requirements))
    seen: Set[str] = set()
    while stack:
        key, upstream = stack.pop()
        if not is_wrapper(upstream):
            found.append((key, upstream))
        elif upstream.task_id not in seen:
            seen.add(upstream.task_id)
            stack.extend(reversed(requirements_of(upstream, key)))
    return found


def static_inputs(requirements: List[Tuple[Key, luigi.Task]]) -> List[InputRef]:
    """Every output of every required task (from :func:`requirements_of`), with its keys; the
    tasks a required wrapper wraps count as required (:func:`through_wrappers`)."""
    return [
        InputRef(key, output_key, upstream, target, False)
        for key, upstream in through_wrappers(requirements)
        for output_key, target in flatten_with_keys(upstream.output())
    ]


def lost_in_transfer(yielded: Any) -> List[str]:
    """Yielded tasks that Luigi would run with other parameters than they were given.

    Luigi rebuilds every task ``run()`` yields from its ``to_str_params()``, which leaves out
    ``PRIVATE`` parameters: the task that runs has their defaults. When a significant one was
    given another value, the dependency that runs is not the one asked for, and no run of it
    can ever make the task asked for complete. Returns a description of each such task.
    """
    requirements = getattr(yielded, "requirements", yielded)
    lost: List[str] = []
    for _, task in flatten_with_keys(requirements):
        if not isinstance(task, luigi.Task):
            continue
        names = [
            name
            for name, param in task.get_params()
            if param.significant and param.visibility == ParameterVisibility.PRIVATE
        ]
        if not names:
            continue
        try:
            rebuilt = type(task).from_str_params(task.to_str_params())
            differ = [n for n in names if rebuilt.param_kwargs[n] != task.param_kwargs[n]]
        except Exception:  # noqa: BLE001 - a private parameter without a default
            differ = names
        if differ:
            lost.append(f"{task!r} (PRIVATE parameter {', '.join(differ)})")
    return lost


def dynamic_inputs(yielded: Any, batch: int) -> List[InputRef]:
    """The inputs of one batch of dynamic dependencies yielded by ``run()``."""
    requirements = getattr(yielded, "requirements", yielded)  # unwrap DynamicRequirements
    refs: List[InputRef] = []
    yielded_tasks = flatten_with_keys(requirements, (batch,))
    for _, upstream in yielded_tasks:
        if not isinstance(upstream, luigi.Task):
            raise TypeError(f"run() yielded {upstream!r}, which is not a Luigi task")
    for key, upstream in through_wrappers(yielded_tasks):
        for output_key, target in flatten_with_keys(upstream.output()):
            refs.append(InputRef(key, output_key, upstream, target, True))
    return refs


def upstream_first(root: luigi.Task) -> List[luigi.Task]:
    """Every task reachable through ``requires()``, each after everything it requires."""
    order: List[luigi.Task] = []
    done: Set[str] = set()
    stack: List[Tuple[luigi.Task, bool]] = [(root, False)]
    while stack:
        task, expanded = stack.pop()
        if task.task_id in done:
            continue
        if expanded:
            done.add(task.task_id)
            order.append(task)
            continue
        stack.append((task, True))
        for _, upstream in reversed(requirements_of(task)):
            if upstream.task_id not in done:
                stack.append((upstream, False))
    return order
