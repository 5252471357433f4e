"""The task classes users inherit: swap ``luigi.Task`` for :class:`TaskWithCheckingInputHash`.

``complete()`` asks the judge whether the outputs are still what the task would make now, through
every upstream task, instead of whether a file exists. ``run()`` is wrapped (in
``__init_subclass__``, which works with Luigi's ``Register`` metaclass and with forked workers) so
that every run follows the protocol of :mod:`luigi_repro.protocol`. A ``run()`` that is a
generator (dynamic dependencies) stays a generator, and what it yields is recorded as inputs.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    FrozenSet,
    Generator,
    Iterable,
    Iterator,
    List,
    Optional,
    Set,
    Tuple,
    TypeVar,
)

import luigi
from luigi.parameter import _no_value

from luigi_repro import environment
from luigi_repro.codeclosure import capture_code
from luigi_repro.dag import flatten_with_keys, lost_in_transfer
from luigi_repro.errors import ConfigError, RunProtocolError
from luigi_repro.gokartruns import dumps_under_run_lock, rerun_requested
from luigi_repro.judge import judging
from luigi_repro.log import logger
from luigi_repro.params import class_params, reject_sets
from luigi_repro.protocol import RunProtocol
from luigi_repro.reads import watching
from luigi_repro.targets.local import HashableLocalTarget

__all__ = [
    "CheckingInputHashMixin",
    "HashableExternalFile",
    "HashableExternalTask",
    "TaskWithCheckingInputHash",
    "WrapperTask",
    "runs_dynamically",
]

_WRAPPED = "_luigi_repro_wrapped"

#: Tasks whose user code is executing inside the run protocol right now (in this context), so
#: that ``super().run()`` from a subclass does not start the protocol a second time. Set only
#: around synchronous stretches of user code, never across a ``yield``, so an abandoned
#: generator cannot leave a task marked.
_inside_run: contextvars.ContextVar[FrozenSet[int]] = contextvars.ContextVar(
    "luigi_repro_inside_run", default=frozenset()
)


@contextlib.contextmanager
def _running(task: luigi.Task, protocol: RunProtocol) -> Iterator[None]:
    """The user code of ``task.run()`` executes in this block: its file reads are watched."""
    token = _inside_run.set(_inside_run.get() | {id(task)})
    try:
        with watching(protocol.reads), dumps_under_run_lock(task):
            yield
    finally:
        _inside_run.reset(token)


_T = TypeVar("_T")
_reported_config_errors: Set[str] = set()


def _answer(check: Callable[[], _T], otherwise: _T) -> _T:
    """``check()``, or ``otherwise`` when the configuration is unusable (logged once).

    A check must not crash Luigi's scheduling loop, and an unusable configuration (an empty
    signing key above all) must never make a task count as complete: the task then runs, and
    its run stops with the same error before it writes anything.
    """
    try:
        return check()
    except ConfigError as exc:
        if str(exc) not in _reported_config_errors:
            _reported_config_errors.add(str(exc))
            logger.error("luigi_repro cannot check tasks: %s", exc)
        return otherwise


def _wrap_run(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``run`` method in the run protocol, keeping it a generator if it is one."""
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def run_generator(self: luigi.Task) -> Generator[Any, Any, None]:
            if id(self) in _inside_run.get():  # super().run() inside an already wrapped run
                yield from func(self)
                return
            protocol = RunProtocol(self)
            if not protocol.begin():
                return
            inner = func(self)
            try:
                try:
                    with _running(self, protocol):
                        yielded = next(inner)
                except StopIteration:
                    protocol.finish()
                    return
                while True:
                    _refuse_untransferable(self, yielded)
                    try:
                        sent = yield yielded
                    except GeneratorExit:
                        # Luigi schedules the yielded tasks first and will call run() again.
                        inner.close()
                        protocol.abandon()
                        raise
                    except BaseException as exc:  # noqa: BLE001 - forwarded like `yield from`
                        try:
                            with _running(self, protocol):
                                yielded = inner.throw(exc)
                        except StopIteration:
                            break
                        continue
                    # Luigi resumes us only once the yielded tasks are complete.
                    protocol.add_dynamic(yielded)
                    try:
                        with _running(self, protocol):
                            yielded = inner.send(sent)
                    except StopIteration:
                        break
                protocol.finish()
            finally:
                inner.close()
                protocol.close()

        setattr(run_generator, _WRAPPED, True)
        return run_generator

    @functools.wraps(func)
    def run(self: luigi.Task) -> Any:
        if id(self) in _inside_run.get():
            return func(self)
        protocol = RunProtocol(self)
        if not protocol.begin():
            return None
        try:
            with _running(self, protocol):
                result = func(self)
            if inspect.isgenerator(result):
                raise TypeError(
                    f"{type(self).__name__}.run() returns a generator without being one; "
                    "write it with `yield` so luigi_repro can record its dynamic dependencies."
                )
            protocol.finish()
            return result
        finally:
            protocol.close()

    setattr(run, _WRAPPED, True)
    return run


def _refuse_untransferable(task: luigi.Task, yielded: Any) -> None:
    """Fail a run that yields a task Luigi cannot run as given (a PRIVATE value it would drop):
    Luigi would run another task in its place and call this one again, forever."""
    lost = lost_in_transfer(yielded)
    if lost:
        raise RunProtocolError(
            f"{task!r} yields {'; '.join(lost)}, but Luigi runs yielded tasks rebuilt from "
            "their public parameters, so it would run it with the default instead; make the "
            "parameter public (or insignificant), or require the task in requires()."
        )


def runs_dynamically(task_cls: type) -> bool:
    """Does the task's ``run()`` yield dynamic dependencies (a generator function)?"""
    run = getattr(task_cls, "run", None)
    return inspect.isgeneratorfunction(getattr(run, "__wrapped__", run))


def _install_run_wrapper(cls: type) -> None:
    own = cls.__dict__.get("run")
    func = own if own is not None else getattr(cls, "run", None)
    if func is None or getattr(func, _WRAPPED, False) or not callable(func):
        return
    cls.run = _wrap_run(func)  # type: ignore[attr-defined]


class CheckingInputHashMixin(luigi.Task):
    """The behaviour of :class:`TaskWithCheckingInputHash`, for tasks with another Luigi base.

    Put it first among the bases: ``class MyTask(CheckingInputHashMixin, SomeLuigiTask)``.
    Set ``code_version = "…"`` on a class to fingerprint that string instead of the source.
    """

    _luigi_repro_checked: ClassVar[bool] = True
    code_version: ClassVar[Optional[str]] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner = next(k for k in cls.__mro__ if "complete" in k.__dict__)
        if not issubclass(owner, CheckingInputHashMixin):
            raise TypeError(
                f"{cls.__name__}: put CheckingInputHashMixin before {owner.__name__} in the base "
                f"classes, otherwise {owner.__name__}.complete() hides the hash check."
            )
        _install_run_wrapper(cls)
        capture_code(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # luigi's Task methods are untyped; these calls are checked by the tests instead.
        if args or kwargs:
            params = self.get_params()
            positional = [name for name, param in params if param.positional]
            values: Dict[str, Any] = dict(zip(positional, args))
            values.update(kwargs)
            reject_sets(self.get_task_family(), values)  # type: ignore[no-untyped-call]
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    @classmethod
    def get_params(cls) -> List[Tuple[str, luigi.Parameter]]:
        return class_params(cls, super().get_params)

    def complete(self) -> bool:
        """True when outputs, records, parameters, code and inputs all agree, recursively.

        False while a gokart ``rerun`` request waits for its run (see :mod:`.gokartruns`).
        """
        environment.warm()  # once per process, before Luigi forks workers that would redo it
        if rerun_requested(self):
            return False
        return _answer(self._judged_complete, False)

    def _judged_complete(self) -> bool:
        with judging() as judge:
            return judge.status(self).ok

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[Any]) -> List[Any]:
        """Those of ``parameter_tuples`` whose task is complete, by the same verdict as
        ``complete()``.

        Luigi's Range tools (``RangeDaily``, ``RangeHourly``, ``RangeByMinutes``) ask this
        instead of ``complete()``; without it they infer the done dates from a listing of output
        files, so a stale date would never run again. ``cls`` may be a ``functools.partial`` of
        the class carrying the Range's ``of_params``. All tasks are judged in one check, so
        upstream tasks they share are judged once.
        """
        environment.warm()
        return _answer(functools.partial(_complete_among, cls, parameter_tuples), [])


def _complete_among(cls: Any, parameter_tuples: Iterable[Any]) -> List[Any]:
    done: List[Any] = []
    with judging() as judge:
        for values in parameter_tuples:
            if isinstance(values, (list, tuple)):
                task = cls(*values)
            elif isinstance(values, dict):
                task = cls(**values)
            else:
                task = cls(**{_ranged_parameter(cls): values})
            if judge.status(task).ok:
                done.append(values)
    return done


def _ranged_parameter(cls: Any) -> str:
    """The parameter a Range tool's single value is meant for.

    A Range passes the class with its ``of_params`` bound (a ``functools.partial``); the value
    belongs to the one parameter left unset (``param_name``), which is not necessarily the first
    positional one. When several are left, the one without a default; else Luigi's convention,
    the first positional parameter.
    """
    bound = set(cls.keywords) if isinstance(cls, functools.partial) else set()
    task_cls: Any = cls.func if isinstance(cls, functools.partial) else cls
    params = [(name, param) for name, param in task_cls.get_params() if name not in bound]
    if len(params) == 1:
        return str(params[0][0])
    required = [name for name, param in params if param._default is _no_value]
    if len(required) == 1:
        return str(required[0])
    positional = [name for name, param in params if param.positional]
    if not positional:
        raise TypeError(f"{task_cls.__name__} has no parameter a Range tool could set")
    return str(positional[0])


class TaskWithCheckingInputHash(CheckingInputHashMixin):
    """A ``luigi.Task`` whose completeness is proven by content fingerprints, not existence."""


class HashableExternalTask(luigi.ExternalTask):
    """An external input (made outside the pipeline) whose outputs are hashable targets.

    It is complete when its outputs exist; their *content* is checked by the records of the
    tasks downstream, so editing a raw input makes exactly its consumers stale.
    """

    @classmethod
    def get_params(cls) -> List[Tuple[str, luigi.Parameter]]:
        return class_params(cls, super().get_params)


class HashableExternalFile(HashableExternalTask):
    """A raw input file or folder: ``requires()`` may return ``HashableExternalFile("a.csv")``."""

    path = luigi.Parameter(description="Path of the raw input file or folder.")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(self.path)


class WrapperTask(luigi.WrapperTask):
    """A task that only groups others; complete when everything it wraps is complete.

    Unlike ``luigi.WrapperTask``, the wrapped tasks are judged within one check, so shared
    upstream tasks are judged once rather than once per wrapped task.
    """

    def complete(self) -> bool:
        return _answer(self._judged_complete, False)

    #: The judge may walk this task like a checked one with no evidence of its own, and
    #: remember its status (a subclass that overrides complete() loses that).
    complete.wraps_only = True  # type: ignore[attr-defined]

    def _judged_complete(self) -> bool:
        with judging() as judge:
            if judge.is_transparent(self):
                return judge.status(self).ok
            requirements = self.requires()  # type: ignore[no-untyped-call]  # luigi is untyped
            return all(judge.is_complete(task) for _, task in flatten_with_keys(requirements))
