"""Remembered own-verdicts at the edges: wherever a verdict decided from scratch now would
differ, the remembered one must not be reused (each case was found in review, failing).

``pipelines.from_scratch`` is the reference: a judge that neither reuses nor remembers verdicts
(``full=True``), so it decides everything again, the way ``complete()`` did before verdicts
were remembered.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any, List

import luigi
import pytest
from pipelines import build, from_scratch, runs, status_of, write_raw

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
)
from luigi_repro.runtime import reset as forget_verdicts
from luigi_repro.status import ReasonKind


@pytest.fixture(autouse=True)
def _fresh_memory() -> None:
    forget_verdicts()


# --- 1. the inputs a task has now count, not only its requirements' task_ids ---------------------


class ReviewRawParts(luigi.ExternalTask):
    """A plain Luigi external task listing the raw files that exist (a common Luigi idiom)."""

    def output(self) -> List[luigi.LocalTarget]:
        return [luigi.LocalTarget(path) for path in sorted(glob.glob("raw/part-*.txt"))]


class ReviewConcat(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return ReviewRawParts()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/concat.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            for target in self.input():
                sink.write(Path(target.path).read_text())


def test_an_input_added_to_an_unchanged_requirement_is_seen() -> None:
    """A new raw file makes the consumer stale (INPUTS_ADDED); the remembered verdict hides it.

    ``requirement_ids`` is still ``(ReviewRawParts_…,)`` and every old input is unchanged, so
    ``_still_holds`` passes although ``static_inputs(requirements)`` now has one more input.
    """
    write_raw("part-1", "one\n")
    assert build(ReviewConcat())
    assert ReviewConcat().complete()  # remembered
    write_raw("part-2", "two\n")
    assert from_scratch(ReviewConcat()) is False  # INPUTS_ADDED
    assert ReviewConcat().complete() is False


class ReviewSourceConfig(luigi.Config):
    """Where the raw data is: configuration, not a parameter of the tasks that use it."""

    path = luigi.Parameter(default="raw/a.txt")


class ReviewSource(luigi.ExternalTask):
    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(ReviewSourceConfig().path)


class ReviewCopy(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return ReviewSource()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/copy.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(self.input().open().read())


def test_an_input_moved_by_configuration_is_seen() -> None:
    """The upstream's output() now points at another file (same task_id): INPUT_CHANGED.

    The trace replays the *old* target objects (``raw/a.txt``), which are unchanged.
    """
    write_raw("a", "alpha\n")
    write_raw("b", "beta\n")
    assert build(ReviewCopy())
    assert ReviewCopy().complete()  # remembered
    config = luigi.configuration.get_config()
    config.add_section("ReviewSourceConfig")
    try:
        config.set("ReviewSourceConfig", "path", "raw/b.txt")
        assert ReviewSource().output().path == "raw/b.txt"
        assert from_scratch(ReviewCopy()) is False  # INPUT_CHANGED: beta is not alpha
        assert ReviewCopy().complete() is False
    finally:
        config.remove_section("ReviewSourceConfig")


class ReviewAbsClean(TaskWithCheckingInputHash):
    """Reads a raw file relative to the working folder, writes to an absolute path."""

    out = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(self.out)

    def run(self) -> None:
        with self.input().open() as source, self.output().open("w") as sink:
            sink.write(source.read().lower())


def test_the_same_task_in_another_working_folder_is_judged_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same task_id and output, but ``raw/a.txt`` is another file in the other folder.

    The settled token keeps the absolute path of the *first* folder's file, so one stat of that
    file "proves" the input unchanged, while the task now reads the second folder's file.
    """
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", "0")  # every file counts as settled
    task = ReviewAbsClean(out=str(tmp_path / "shared" / "clean.txt"))
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, text in ((first, "Hello\n"), (second, "Something else\n")):
        (folder / "raw").mkdir(parents=True)
        (folder / "raw" / "a.txt").write_text(text)
    monkeypatch.chdir(first)
    assert build(task)
    assert task.complete()  # remembered, with the settled token of first/raw/a.txt
    monkeypatch.chdir(second)
    assert from_scratch(task) is False  # INPUT_CHANGED: second/raw/a.txt is not what was read
    assert task.complete() is False


# --- 2. registries (task classes, target adapters) that decide inputs ----------------------------


def _write_module(name: str, source: str) -> None:
    Path(f"{name}.py").write_text(textwrap.dedent(source))


def test_a_dynamic_dependency_whose_class_is_imported_later_is_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the yielded task's class, the task is not up to date (its dynamic dependency is
    unresolved: an upstream change could hide behind an unchanged file); once the class is
    imported (e.g. by another task's run()), it is rebuilt and judged as an upstream task, and
    the verdict decided before the import is not reused."""
    tag = uuid.uuid4().hex[:8]
    helper, parent = f"review_helper_{tag}", f"review_parent_{tag}"
    _write_module(
        helper,
        f"""
        import luigi
        from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash

        class ReviewHelper{tag}(TaskWithCheckingInputHash):
            def requires(self):
                return HashableExternalFile("raw/h.txt")

            def output(self):
                return HashableLocalTarget("out/helper.txt")

            def run(self):
                with self.output().open("w") as sink:
                    sink.write(self.input().open().read().upper())
        """,
    )
    _write_module(
        parent,
        f"""
        import importlib

        import luigi
        from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash

        HELPER = "{helper}"

        class ReviewParent{tag}(TaskWithCheckingInputHash):
            def output(self):
                return HashableLocalTarget("out/parent.txt")

            def run(self):
                # Imported only when it runs, by a name the code fingerprint cannot follow
                # (a plain `from … import` would be imported to fingerprint what it reaches).
                helper = importlib.import_module(HELPER)

                made = yield helper.ReviewHelper{tag}()
                with self.output().open("w") as sink:
                    sink.write(made.open().read())
        """,
    )
    write_raw("h", "hello\n")
    script = (
        f"import luigi, {parent}; "
        f"assert luigi.build([{parent}.ReviewParent{tag}()], local_scheduler=True, "
        "log_level='WARNING')"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    monkeypatch.syspath_prepend(os.getcwd())
    parent_module: Any = __import__(parent)
    task = getattr(parent_module, f"ReviewParent{tag}")()
    verdict = status_of(task)
    assert [r.kind for r in verdict.reasons] == [ReasonKind.DYNAMIC_DEPENDENCY_UNRESOLVED]
    assert f"ReviewHelper{tag}()" in verdict.reasons[0].message
    assert f"import module {helper}" in verdict.reasons[0].message
    assert task.complete() is False
    __import__(helper)  # e.g. another task's run() imports it
    assert task.complete() is True  # the helper is rebuilt and judged: up to date
    assert from_scratch(task) is True
    write_raw("h", "changed\n")  # the helper is stale now; its output is not (yet) changed
    assert from_scratch(task) is False  # UPSTREAM_NOT_UP_TO_DATE through the rebuilt helper
    assert task.complete() is False
    runs()


class ReviewOpaqueTarget(luigi.Target):
    """A plain Luigi target luigi_repro cannot fingerprint (until an adapter is registered)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def exists(self) -> bool:
        return os.path.exists(self.path)


class ReviewOpaqueSource(luigi.ExternalTask):
    def output(self) -> ReviewOpaqueTarget:
        return ReviewOpaqueTarget("raw/opaque.txt")


class ReviewUsesOpaque(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return ReviewOpaqueSource()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/opaque.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(Path(self.input().path).read_text())


def test_an_input_that_becomes_fingerprintable_is_judged_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recorded as existence-only (INPUT_UNVERIFIABLE); once an adapter can fingerprint it, the
    record cannot vouch for its content (INPUT_CHANGED). Whether ``as_hashable`` adapts the input
    is process state (the adapter registry) that the trace does not keep."""
    from luigi_repro.targets import base

    write_raw("opaque", "content\n")
    assert build(ReviewUsesOpaque())
    assert ReviewUsesOpaque().complete()  # remembered: input checked for existence only

    def adapt(target: Any) -> Any:
        return HashableLocalTarget(target.path) if isinstance(target, ReviewOpaqueTarget) else None

    monkeypatch.setitem(base._adapters, "review-opaque", (50, adapt))  # register_adapter(...)
    assert from_scratch(ReviewUsesOpaque()) is False
    assert ReviewUsesOpaque().complete() is False


# --- 3. a complete() nested in user code keeps the outer task's trace ----------------------------


class ReviewMarker(TaskWithCheckingInputHash):
    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/marker.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write("ready\n")


class ReviewGatedSource(luigi.ExternalTask):
    """Raw data published once a marker task is done; output() checks that, as a guard."""

    def output(self) -> luigi.LocalTarget:
        if not ReviewMarker().complete():
            raise RuntimeError("raw/gated.txt is not published yet")
        return luigi.LocalTarget("raw/gated.txt")


class ReviewGatedUse(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return ReviewGatedSource()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/gated_use.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(self.input().open().read())


def test_a_complete_called_inside_a_decision_does_not_end_its_trace() -> None:
    """``own()`` sets ``self._trace`` to a new trace and back to None: a nested ``own()``
    (here from a requirement's output(), while the outer task's inputs are listed) leaves the
    outer task without a trace for the rest of its decision. Its input is never recorded, so
    the remembered verdict survives an edit of that input."""
    write_raw("gated", "first\n")
    assert build(ReviewMarker())
    assert build(ReviewGatedUse())
    forget_verdicts()
    assert ReviewGatedUse().complete()  # decided: ReviewMarker is decided inside it
    write_raw("gated", "second, longer\n")
    assert from_scratch(ReviewGatedUse()) is False  # INPUT_CHANGED
    assert ReviewGatedUse().complete() is False


# --- 4. a target's own exists() counts, not only a stat ------------------------------------------


class ReviewMarkedTarget(HashableLocalTarget):
    """A file output that only counts as there once its ``.done`` marker is (user subclass)."""

    def exists(self) -> bool:
        return super().exists() and os.path.exists(self.path + ".done")


class ReviewMarked(TaskWithCheckingInputHash):
    def output(self) -> ReviewMarkedTarget:
        return ReviewMarkedTarget("out/marked.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write("data\n")
        Path("out/marked.txt.done").write_text("")


def test_an_output_whose_exists_says_no_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_still_holds`` skips the recorded existence answer of any target whose URI had a
    settled stat, assuming exists() means "the path can be statted"; this target's exists()
    also needs its marker, whose removal makes the output missing (MISSING_OUTPUT)."""
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", "0")
    assert build(ReviewMarked())
    assert ReviewMarked().complete()  # remembered, with a settled token of out/marked.txt
    Path("out/marked.txt.done").unlink()
    assert not ReviewMarkedTarget("out/marked.txt").exists()
    assert from_scratch(ReviewMarked()) is False  # MISSING_OUTPUT
    assert ReviewMarked().complete() is False
