"""A wrapper in the middle of a pipeline: its status is remembered like any checked task's.

A ``WrapperTask`` (luigi_repro's or Luigi's own) is complete when everything it wraps is. The
judge walks it as a task with no evidence of its own, so a task that requires a wrapper of 300
tasks stands remembered instead of asking all 300 again on every ``complete()``; a wrapper that
overrides ``complete()`` is still asked every time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List

import luigi
import pytest
from pipelines import build, log_run, runs

import luigi_repro
from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash
from luigi_repro.dag import through_wrappers
from luigi_repro.judge import judging
from luigi_repro.runtime import reset

PARTS = 300


class WrappedPart(TaskWithCheckingInputHash):
    index = luigi.IntParameter()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"parts/{self.index}.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(f"part {self.index}\n")


class ReproPartsWrapper(luigi_repro.WrapperTask):
    def requires(self) -> List[luigi.Task]:
        return [WrappedPart(index) for index in range(PARTS)]


class LuigiPartsWrapper(luigi.WrapperTask):
    def requires(self) -> List[luigi.Task]:
        return [WrappedPart(index) for index in range(PARTS)]


class PickyPartsWrapper(luigi_repro.WrapperTask):
    """Overrides complete(): its own answer must be asked, never remembered."""

    def requires(self) -> List[luigi.Task]:
        return [WrappedPart(index) for index in range(PARTS)]

    def complete(self) -> bool:
        return super().complete() and not Path("not-yet").exists()


class BehindWrapper(TaskWithCheckingInputHash):
    wrapper = luigi.Parameter()

    def requires(self) -> luigi.Task:
        wrappers = {
            "repro": ReproPartsWrapper,
            "luigi": LuigiPartsWrapper,
            "picky": PickyPartsWrapper,
        }
        return wrappers[self.wrapper]()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"report-{self.wrapper}.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("report\n")


@pytest.fixture(autouse=True)
def fresh() -> None:
    reset()


@pytest.mark.parametrize("wrapper", ["repro", "luigi"])
def test_a_task_behind_a_wrapper_stands_remembered(wrapper: str) -> None:
    assert build(BehindWrapper(wrapper))
    assert len(runs()) == PARTS + 1
    assert BehindWrapper(wrapper).complete()
    with judging() as judge:
        assert judge.status(BehindWrapper(wrapper)).ok
    assert judge.tasks_judged == 1  # nothing behind the wrapper was visited
    Path("parts/17.txt").write_text("edited by hand\n")
    assert not BehindWrapper(wrapper).complete()
    assert build(BehindWrapper(wrapper))
    assert runs() == [WrappedPart(17).task_id]  # same content again: the report is cut off early
    assert BehindWrapper(wrapper).complete()


def test_the_wrappers_own_answer_is_remembered_too() -> None:
    assert build(ReproPartsWrapper())
    runs()
    assert ReproPartsWrapper().complete()
    with judging() as judge:
        assert judge.status(ReproPartsWrapper()).ok
    assert judge.tasks_judged == 1
    Path("parts/3.txt").unlink()
    assert not ReproPartsWrapper().complete()
    assert build(ReproPartsWrapper())
    assert runs() == [WrappedPart(3).task_id]


def test_a_wrapper_with_its_own_complete_is_asked_every_time() -> None:
    assert build(BehindWrapper("picky"))
    runs()
    assert BehindWrapper("picky").complete()
    Path("not-yet").write_text("")  # a change no file watch of luigi_repro could know about
    assert not PickyPartsWrapper().complete()
    assert not BehindWrapper("picky").complete()


class ListedFile(TaskWithCheckingInputHash):
    name = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return HashableExternalFile(f"incoming/{self.name}")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"listed/{self.name}")

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source, self.output().open("w") as sink:
            sink.write(source.read())


class EveryIncomingFile(luigi.WrapperTask):
    """Luigi's idiom: one task per file found in a folder (a listing raises no event here)."""

    def requires(self) -> List[luigi.Task]:
        return [ListedFile(name) for name in sorted(os.listdir("incoming"))]


class EverythingIncoming(luigi_repro.WrapperTask):
    def requires(self) -> luigi.Task:
        return EveryIncomingFile()


class SummaryOfIncoming(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return EverythingIncoming()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("incoming-summary.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("summary\n")


@pytest.mark.parametrize("asked", [EverythingIncoming, SummaryOfIncoming])
def test_a_wrapper_that_lists_a_folder_sees_a_new_file(asked: type) -> None:
    """The wrappers' statuses stand remembered, but each wrapper's requirements are listed
    again before a status standing on it is trusted."""
    Path("incoming").mkdir()
    for name in ("a.txt", "b.txt"):
        Path("incoming", name).write_text(name)
    assert build(asked())
    runs()
    assert asked().complete()
    Path("incoming", "c.txt").write_text("c")
    assert not asked().complete()
    assert build(asked())
    assert ListedFile("c.txt").task_id in runs()
    assert asked().complete()


class YieldsTheWrapper(TaskWithCheckingInputHash):
    """Asks for the wrapper only while it runs (a dynamic dependency)."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("yielded-summary.txt")

    def run(self) -> Iterator[luigi.Task]:
        log_run(self)
        yield EveryIncomingFile()
        with self.output().open("w") as sink:
            sink.write(Path("listed", "a.txt").read_text())


def test_a_wrapper_yielded_by_run_is_read_through_too() -> None:
    Path("incoming").mkdir()
    Path("incoming", "a.txt").write_text("old")
    assert build(YieldsTheWrapper())
    runs()
    Path("incoming", "a.txt").write_text("new")
    assert not YieldsTheWrapper().complete()
    assert build(YieldsTheWrapper())
    assert YieldsTheWrapper().task_id in runs()
    assert Path("yielded-summary.txt").read_text() == "new"


def test_what_a_wrapper_wraps_is_keyed_by_its_place_not_by_a_task_id() -> None:
    """Task ids name absolute paths: keyed by them, a copied results folder would show every
    input as removed and another added."""
    Path("incoming").mkdir()
    for name in ("a.txt", "b.txt"):
        Path("incoming", name).write_text(name)
    keys = [key for key, _ in through_wrappers([((), EverythingIncoming())])]
    assert keys == [(0,), (1,)]
