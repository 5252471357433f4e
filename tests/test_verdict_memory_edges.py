"""Remembered statuses against changes that raise no event on the files they were decided from.

Each scenario changes what a task would read — through a swapped symlink, a replaced folder, a
deep task's configuration, or an event taken in by another check at the wrong moment — and
checks that ``complete()`` still agrees with an audit that reads everything again.
"""

from __future__ import annotations

import os
from pathlib import Path

import luigi
import pytest

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    verify,
)
from luigi_repro.runtime import reset, runtime


class Upper(TaskWithCheckingInputHash):
    """Upper-cases one file, named by its parameter."""

    src = luigi.Parameter()

    def requires(self) -> HashableExternalFile:
        return HashableExternalFile(os.path.abspath(self.src))

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.abspath("out/upper.txt"))

    def run(self) -> None:
        with self.input().open() as source, self.output().open("w") as sink:
            sink.write(source.read().upper())


class Configured(TaskWithCheckingInputHash):
    """Its source comes from Luigi's configuration (``[Configured] src``)."""

    src = luigi.Parameter()

    def requires(self) -> HashableExternalFile:
        return HashableExternalFile(os.path.abspath(self.src))

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.abspath(f"out/configured-{self.src}"))

    def run(self) -> None:
        with self.input().open() as source, self.output().open("w") as sink:
            sink.write(source.read())


class Above(TaskWithCheckingInputHash):
    """Requires ``Configured()`` with whatever the configuration says now."""

    def requires(self) -> Configured:
        return Configured()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.abspath("out/above.txt"))

    def run(self) -> None:
        with self.input().open() as source, self.output().open("w") as sink:
            sink.write(source.read() + "above\n")


class Top(TaskWithCheckingInputHash):
    def requires(self) -> Above:
        return Above()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.abspath("out/top.txt"))

    def run(self) -> None:
        with self.input().open() as source, self.output().open("w") as sink:
            sink.write(source.read() + "top\n")


def build(task: luigi.Task) -> None:
    assert luigi.build([task], local_scheduler=True, log_level="WARNING")


def agrees(task: luigi.Task) -> bool:
    """Does the remembered answer equal an audit that reads everything again?"""
    return task.complete() == verify(task, full=True).ok


@pytest.fixture(autouse=True)
def fresh_memory() -> None:
    reset()


def test_a_symlinked_folder_swapped_for_another_is_seen() -> None:
    for name, text in (("v1", "one\n"), ("v2", "two\n")):
        Path(name).mkdir()
        Path(name, "data.txt").write_text(text)
    os.symlink("v1", "cur")
    build(Upper("cur/data.txt"))
    assert Upper("cur/data.txt").complete()
    os.symlink("v2", "cur.tmp")
    os.replace("cur.tmp", "cur")  # what `ln -sfn v2 cur` does
    assert not Upper("cur/data.txt").complete()
    assert agrees(Upper("cur/data.txt"))


def test_a_real_folder_replaced_by_a_symlink_is_seen() -> None:
    Path("data").mkdir()
    Path("data/in.txt").write_text("one\n")
    Path("elsewhere").mkdir()
    Path("elsewhere/in.txt").write_text("two\n")
    build(Upper("data/in.txt"))
    assert Upper("data/in.txt").complete()
    os.rename("data", "data.old")
    os.symlink("elsewhere", "data")
    assert not Upper("data/in.txt").complete()
    assert agrees(Upper("data/in.txt"))


def test_a_deep_task_moved_by_configuration_is_seen() -> None:
    """Only the deepest task's requirement changes; the tasks above it look the same."""
    Path("a.txt").write_text("a\n")
    Path("b.txt").write_text("b\n")
    config = luigi.configuration.get_config()
    config.set("Configured", "src", "a.txt")
    try:
        build(Top())
        assert Top().complete()
        config.set("Configured", "src", "b.txt")
        assert not Top().complete()
        assert agrees(Top())
    finally:
        config.remove_section("Configured")


def test_an_event_taken_in_by_another_check_mid_decision_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread's check drains the queue after this check read a file but before it
    remembered what it read: the verdict must not be remembered as standing."""
    Path("in.txt").write_text("one\n")
    build(Upper("in.txt"))
    reset()
    memory = runtime().memory
    original = memory.remember_own

    def meanwhile(*args: object, **kwargs: object) -> None:
        Path("in.txt").write_text("two\n")  # changed after this check read it …
        memory.begin()  # … and the event taken in by another check
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(memory, "remember_own", meanwhile)
    assert Upper("in.txt").complete()  # what this check saw
    monkeypatch.setattr(memory, "remember_own", original)
    assert not Upper("in.txt").complete()
    assert agrees(Upper("in.txt"))


class FromEnvironment(TaskWithCheckingInputHash):
    """Requires ``Upper`` of whatever file ``UPPER_SOURCE`` names now."""

    def requires(self) -> Upper:
        return Upper(os.environ.get("UPPER_SOURCE", "a.txt"))

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.abspath("out/from-environment.txt"))

    def run(self) -> None:
        with self.input().open() as source, self.output().open("w") as sink:
            sink.write(source.read())


class AboveEnvironment(TaskWithCheckingInputHash):
    """Looks the same whatever the environment says: only the task below it moves."""

    def requires(self) -> FromEnvironment:
        return FromEnvironment()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.abspath("out/above-environment.txt"))

    def run(self) -> None:
        with self.input().open() as source, self.output().open("w") as sink:
            sink.write(source.read())


def test_a_deep_task_moved_by_the_environment_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("a.txt").write_text("a\n")
    Path("b.txt").write_text("b\n")
    monkeypatch.setenv("UPPER_SOURCE", "a.txt")
    build(AboveEnvironment())
    assert AboveEnvironment().complete()
    monkeypatch.setenv("UPPER_SOURCE", "b.txt")
    assert not AboveEnvironment().complete()
    assert agrees(AboveEnvironment())
