"""Small pipelines that the scenario tests build, in-process and from other processes.

Every task appends its task_id to ``runs.log`` in the current folder when its ``run()`` body
executes, so a test (or several processes) can see exactly which tasks ran.
"""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import attrs
import luigi

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    WrapperTask,
    judging,
)
from luigi_repro.record import InputEntry, dump_record, parse_record
from luigi_repro.status import TaskStatus

RUNS_LOG = "runs.log"


def log_run(task: luigi.Task) -> None:
    """Note that ``task`` ran (one short append: atomic even with several processes)."""
    with open(RUNS_LOG, "a") as stream:
        stream.write(task.task_id + "\n")
    delay = float(os.environ.get("PIPELINE_SLEEP", "0"))
    if delay:
        time.sleep(delay)


def runs() -> List[str]:
    """Task ids that ran since the last call, in order; the log is emptied."""
    path = Path(RUNS_LOG)
    if not path.exists():
        return []
    lines = path.read_text().split()
    path.unlink()
    return lines


def families(task_ids: List[str]) -> List[str]:
    """The family part of task ids, sorted: what a test usually compares."""
    return sorted(task_id.split("_", 1)[0] for task_id in task_ids)


def write_raw(name: str, text: str) -> Path:
    path = Path("raw") / f"{name}.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def build(*tasks: luigi.Task, workers: int = 1) -> bool:
    """``luigi.build`` with a local scheduler, quietly; True when every task succeeded."""
    return bool(
        luigi.build(list(tasks), local_scheduler=True, workers=workers, log_level="WARNING")
    )


def status_of(task: luigi.Task) -> TaskStatus:
    """The exhaustive verdict on ``task`` (every reason), as ``verify`` would give it."""
    with judging(exhaustive=True, fresh=True) as judge:
        return judge.status(task)


def failure_of(task: luigi.Task) -> BaseException:
    """Run ``task.run()`` directly (a generator up to what it raises) and return what it raised
    (it must raise)."""
    try:
        result = task.run()
        if inspect.isgenerator(result):
            for _ in result:
                pass
    except Exception as exc:  # noqa: BLE001 - each caller checks the type
        return exc
    raise AssertionError(f"{task!r}.run() raised nothing")


def edit_record_inputs(output: str, edit: Callable[[InputEntry], InputEntry]) -> None:
    """Rewrite the record beside ``output`` with ``edit`` applied to each of its inputs (a
    hand-made or hostile record)."""
    path = Path(output + ".repro.json")
    record = parse_record(path.read_bytes(), str(path))
    inputs = tuple(edit(entry) for entry in record.inputs)
    path.write_bytes(dump_record(attrs.evolve(record, inputs=inputs)))


def from_scratch(task: luigi.Task) -> bool:
    """The verdict decided again from everything on disk, nothing remembered or reused."""
    with judging(full=True, fresh=True) as judge:
        verdict = judge.status(task).ok
        assert judge.verdicts_reused == 0
        return bool(verdict)


class Clean(TaskWithCheckingInputHash):
    """Lower-cases and strips one raw file."""

    name = luigi.Parameter()

    def requires(self) -> Any:
        return HashableExternalFile(f"raw/{self.name}.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/clean_{self.name}.txt")

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source:
            text = source.read()
        with self.output().open("w") as sink:
            sink.write(text.strip().lower() + "\n")


class Merge(TaskWithCheckingInputHash):
    """Concatenates the two cleaned files."""

    def requires(self) -> Dict[str, luigi.Task]:
        return {"a": Clean("a"), "b": Clean("b")}

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/merged.txt")

    def run(self) -> None:
        log_run(self)
        parts = [self.input()[key].open("r").read() for key in ("a", "b")]
        with self.output().open("w") as sink:
            sink.write("".join(parts))


class Report(TaskWithCheckingInputHash):
    """Repeats the merged text ``scale`` times; ``verbose`` does not change the result."""

    scale = luigi.IntParameter(default=1)
    verbose = luigi.BoolParameter(default=False, significant=False)

    def requires(self) -> luigi.Task:
        return Merge()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/report.txt")

    def run(self) -> None:
        log_run(self)
        text = self.input().open("r").read()
        with self.output().open("w") as sink:
            sink.write(text * self.scale)


class All(WrapperTask):
    """Everything above."""

    def requires(self) -> List[luigi.Task]:
        return [Report(), Clean("a"), Clean("b")]


class Partitioned(TaskWithCheckingInputHash):
    """Writes a folder with one file per line of the cleaned text (a partitioned dataset)."""

    def requires(self) -> luigi.Task:
        return Clean("a")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/parts")

    def run(self) -> None:
        log_run(self)
        lines = self.input().open("r").read().splitlines()
        with self.output().temporary_path() as folder:
            os.makedirs(folder)
            for index, line in enumerate(lines):
                Path(folder, f"part-{index}.txt").write_text(line + "\n")


class CountParts(TaskWithCheckingInputHash):
    """Counts the files of the partitioned folder."""

    def requires(self) -> luigi.Task:
        return Partitioned()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/count.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(str(len(os.listdir(self.input().path))))


class Scaled(TaskWithCheckingInputHash):
    """Has a parameter that a ``--Scaled-factor`` flag can set from the command line."""

    factor = luigi.IntParameter(default=1)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/scaled.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(str(self.factor))


class UsesScaled(TaskWithCheckingInputHash):
    """Creates Scaled() in requires(), so only a --Scaled-factor flag can change it."""

    def requires(self) -> luigi.Task:
        return Scaled()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/uses_scaled.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(self.input().open().read())


def make_raw() -> None:
    """The raw inputs of the pipeline above."""
    write_raw("a", "Hello\n")
    write_raw("b", "World\n")


if __name__ == "__main__":  # used by the tests that build from other processes
    import sys

    ok = build(Report(), workers=int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    sys.exit(0 if ok else 1)
