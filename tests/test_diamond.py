"""Cost of one check on a diamond-shaped DAG: each task judged once, each file hashed once."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, List

import luigi
from pipelines import build, log_run, runs, write_raw

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    judging,
)
from luigi_repro.runtime import runtime

LAYERS = 20


class Layer(TaskWithCheckingInputHash):
    """Task (layer, column); every task of a layer requires both tasks of the layer below."""

    layer = luigi.IntParameter()
    column = luigi.IntParameter()

    def requires(self) -> Any:
        if self.layer == 0:
            return HashableExternalFile("raw/seed.txt")
        return [Layer(self.layer - 1, 0), Layer(self.layer - 1, 1)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/layer_{self.layer:02d}_{self.column}.txt")

    def run(self) -> None:
        log_run(self)
        inputs = self.input() if isinstance(self.input(), list) else [self.input()]
        text = "".join(target.open().read() for target in inputs)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]  # keeps every file small
        with self.output().open("w") as sink:
            sink.write(f"{self.layer}:{self.column}:{digest}\n")


class DiamondTop(TaskWithCheckingInputHash):
    def requires(self) -> List[luigi.Task]:
        return [Layer(LAYERS - 1, 0), Layer(LAYERS - 1, 1)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/top.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("".join(t.open().read() for t in self.input()))


TASKS = 2 * LAYERS + 1
FILES = TASKS + 1  # every output plus the raw seed


def test_one_check_judges_each_task_once_and_hashes_each_file_at_most_once() -> None:
    """complete() on the top of a 20-layer diamond: 41 judgements, <= 42 fingerprints, < 1 s."""
    write_raw("seed", "seed\n")
    assert build(DiamondTop())
    assert len(runs()) == TASKS
    for _ in range(2):  # cold (records read from disk) and warm (parsed records reused)
        runtime().memory.forget()  # no remembered verdict: every task is decided in this check
        with judging() as judge:
            started = time.perf_counter()
            assert DiamondTop().complete()
            elapsed = time.perf_counter() - started
        assert judge.tasks_judged == TASKS
        assert judge.targets_observed <= FILES
        assert judge.counters.files_hashed <= FILES
        assert elapsed < 1.0
    with judging() as judge:
        assert DiamondTop().complete()
    assert judge.statuses_reused == 1  # and the next check stands on the remembered status


def test_stale_seed_is_found_and_rebuild_reuses_no_false_verdict() -> None:
    """After the seed changes every task is stale, and one build repairs all of them."""
    write_raw("seed", "seed\n")
    assert build(DiamondTop())
    runs()
    write_raw("seed", "other seed\n")
    with judging(exhaustive=True) as judge:
        assert not judge.status(DiamondTop()).ok
        assert judge.tasks_judged == TASKS
    assert build(DiamondTop())  # would fail with "Unfulfilled dependency" if a False were reused
    assert len(runs()) == TASKS
    assert DiamondTop().complete()
    assert Path("out/top.txt").exists()
