"""Pipelines that mix luigi_repro tasks with plain Luigi tasks and targets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List

import luigi
import pytest
from pipelines import build, families, log_run, make_raw, runs, write_raw

from luigi_repro import (
    HashableLocalTarget,
    ReasonKind,
    Status,
    TaskWithCheckingInputHash,
    WrapperTask,
    judging,
)
from luigi_repro.log import LOGGER_NAME


def verdict(task: luigi.Task) -> Any:
    with judging(exhaustive=True) as judge:
        return judge.status(task)


class PlainUpstream(luigi.Task):
    """A plain Luigi task writing a plain LocalTarget."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget("out/plain.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("plain\n")


class PlainRaw(luigi.ExternalTask):
    """A plain Luigi external task for a raw file."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget("raw/a.txt")


class Consumer(TaskWithCheckingInputHash):
    """A checked task that reads plain Luigi outputs."""

    def requires(self) -> Dict[str, luigi.Task]:
        return {"made": PlainUpstream(), "raw": PlainRaw()}

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/consumer.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(self.input()["made"].open().read() + self.input()["raw"].open().read())


def test_plain_local_targets_are_fingerprinted_by_content() -> None:
    """Editing the output of a plain Luigi task makes its checked consumer stale."""
    make_raw()
    assert build(Consumer())
    assert families(runs()) == ["Consumer", "PlainUpstream"]
    assert Consumer().complete()
    Path("out/plain.txt").write_text("edited by hand\n")
    result = verdict(Consumer())
    assert [r.kind for r in result.reasons] == [ReasonKind.INPUT_CHANGED]
    assert result.reasons[0].evidence["input"] == "requires()['made']"
    assert build(Consumer())
    assert families(runs()) == ["Consumer"]  # the plain task is complete: its file exists


def test_plain_external_task_content_is_checked_downstream() -> None:
    """A raw file behind a plain luigi.ExternalTask is checked by the consumer's record."""
    make_raw()
    assert build(Consumer())
    runs()
    write_raw("a", "changed\n")
    assert not Consumer().complete()
    assert PlainRaw().complete()


def test_missing_plain_upstream_output_is_upstream_not_up_to_date() -> None:
    """A deleted plain output makes the consumer stale; identical remade bytes cut off its rerun."""
    make_raw()
    assert build(Consumer())
    runs()
    Path("out/plain.txt").unlink()
    result = verdict(Consumer())
    kinds = {r.kind for r in result.reasons}
    assert kinds == {ReasonKind.INPUT_CHANGED, ReasonKind.UPSTREAM_NOT_UP_TO_DATE}
    assert build(Consumer())
    assert families(runs()) == ["PlainUpstream"]
    assert Consumer().complete()


class Opaque(luigi.Target):
    """A target luigi_repro cannot fingerprint: only its existence can be checked."""

    def __init__(self, name: str) -> None:
        self.name = name

    def exists(self) -> bool:
        return Path(self.name).exists()


class OpaqueSource(luigi.ExternalTask):
    def output(self) -> Opaque:
        return Opaque("raw/opaque.bin")


class ReadsOpaque(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return OpaqueSource()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/reads_opaque.txt")

    def run(self) -> None:
        log_run(self)
        self.output().open("w").close()


def test_unverifiable_input_is_noted_and_warned_never_silently_trusted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An input that cannot be fingerprinted is recorded, warned about, and checked by existence."""
    Path("raw").mkdir()
    Path("raw/opaque.bin").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        assert build(ReadsOpaque())
    assert any("cannot be fingerprinted" in r.getMessage() for r in caplog.records)
    result = verdict(ReadsOpaque())
    assert result.ok
    assert [n.kind for n in result.notes] == [ReasonKind.INPUT_UNVERIFIABLE]
    Path("raw/opaque.bin").unlink()
    assert not ReadsOpaque().complete()


class Pair(TaskWithCheckingInputHash):
    index = luigi.IntParameter()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/pair_{self.index}.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(str(self.index))


class Both(WrapperTask):
    def requires(self) -> List[luigi.Task]:
        return [Pair(1), Pair(2)]


def test_wrapper_task_is_complete_when_everything_it_wraps_is() -> None:
    """WrapperTask completeness follows the wrapped tasks, judged in one check."""
    assert not Both().complete()
    assert build(Both())
    assert families(runs()) == ["Pair", "Pair"]
    assert Both().complete()
    Path("out/pair_2.txt").write_text("tampered")
    assert not Both().complete()
    assert verdict(Pair(2)).status is Status.OUTPUT_MODIFIED
    assert build(Both())
    assert families(runs()) == ["Pair"]


class AfterWrapper(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return Both()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/after_wrapper.txt")

    def run(self) -> None:
        log_run(self)
        self.output().open("w").close()


def test_task_downstream_of_a_wrapper_sees_through_it() -> None:
    """A wrapper has no outputs; what it wraps is read as the downstream task's inputs, and
    still decides its verdict."""
    assert build(AfterWrapper())
    runs()
    assert AfterWrapper().complete()
    Path("out/pair_1.txt").write_text("tampered")
    result = verdict(AfterWrapper())
    assert [r.kind for r in result.reasons] == [
        ReasonKind.INPUT_CHANGED,
        ReasonKind.UPSTREAM_NOT_UP_TO_DATE,
    ]
    assert "out/pair_1.txt" in result.reasons[0].message


class Externalized(TaskWithCheckingInputHash):
    """Made elsewhere; a downstream pipeline refers to it through luigi.task.externalize."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/externalized.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("made\n")


def test_externalized_task_is_complete_like_the_task_it_copies() -> None:
    """luigi.task.externalize(T): the copy checks T's outputs and records like T itself."""
    assert build(Externalized())
    runs()
    assert Externalized().complete()
    assert luigi.task.externalize(Externalized)().complete()
    assert luigi.task.externalize(Externalized()).complete()
