"""Remembered statuses across checks: each task decided once per change, never a stale answer.

Luigi asks ``complete()`` of every root while scheduling and of every dependency before each run;
a status that is recomputed from its whole upstream DAG on every call makes a chain quadratic.
These scenarios count the decisions a whole sequence of calls makes, and check that a change made
anywhere upstream — by this process or another one — is still seen by exactly the right tasks.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import luigi
import pytest
from pipelines import build, log_run, runs, write_raw

from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash
from luigi_repro.judge import judging
from luigi_repro.memory import BUDGET_BYTES, CAPACITY
from luigi_repro.runtime import reset, runtime


class Day(TaskWithCheckingInputHash):
    """A daily chain: each day reads the day before and its own raw file."""

    day = luigi.IntParameter()

    def requires(self) -> List[luigi.Task]:
        raw = HashableExternalFile(f"raw/{self.day}.txt")
        return [raw] if self.day == 0 else [raw, Day(self.day - 1)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/day{self.day:04d}.txt")

    def run(self) -> None:
        log_run(self)
        text = "".join(target.open().read() for target in luigi.task.flatten(self.input()))
        with self.output().open("w") as sink:  # a change anywhere before reaches every day after
            sink.write(f"{self.day}:{hashlib.sha256(text.encode()).hexdigest()}\n")


DAYS = 60


@pytest.fixture(autouse=True)
def chain() -> None:
    reset()
    for day in range(DAYS):
        write_raw(str(day), f"day {day}\n")
    assert build(Day(DAYS - 1))
    assert len(runs()) == DAYS


def decisions_of(*tasks: luigi.Task) -> List[int]:
    """For each task in turn, a complete() call: how many own verdicts it had to decide."""
    counts = []
    for task in tasks:
        with judging() as judge:
            judge.status(task)
        counts.append(judge.tasks_judged - judge.verdicts_reused)
    return counts


def test_asking_every_day_of_an_unchanged_chain_decides_nothing() -> None:
    """Luigi's scheduling pattern: the root, then every dependency; all stand remembered."""
    days = [Day(day) for day in reversed(range(DAYS))]
    # The last day ran last: nothing has asked about it since, so it is decided once.
    assert decisions_of(*days) == [1] + [0] * (DAYS - 1)
    assert decisions_of(*days) == [0] * DAYS
    with judging() as judge:
        assert judge.status(Day(DAYS - 1)).ok
    assert judge.tasks_judged == 1  # the root's status stands for its 60-task chain


def test_an_edit_by_another_process_is_seen_by_exactly_the_days_after_it() -> None:
    assert Day(DAYS - 1).complete()
    subprocess.run(
        [sys.executable, "-c", "open('raw/30.txt', 'w').write('edited elsewhere\\n')"],
        check=True,
    )
    assert not Day(DAYS - 1).complete()
    assert [Day(day).complete() for day in (29, 30, 31)] == [True, False, False]
    assert build(Day(DAYS - 1))
    assert sorted(int(task_id.split("_")[1]) for task_id in runs()) == list(range(30, DAYS))
    assert Day(DAYS - 1).complete()


def test_rebuilding_after_an_edit_decides_each_task_a_bounded_number_of_times() -> None:
    """A whole build after an early edit: every later task reruns, and the checks Luigi makes
    along the way decide or replay each task a bounded number of times (not once per later
    day, which would be quadratic)."""
    write_raw("1", "changed\n")
    counts = runtime().memory.counts
    before = counts.decided + counts.replayed
    assert build(Day(DAYS - 1))
    assert len(runs()) == DAYS - 1
    work = counts.decided + counts.replayed - before
    assert work <= 6 * DAYS, work


def test_a_false_status_is_not_reused_once_a_task_ran() -> None:
    Path("out/day0010.txt").unlink()
    assert not Day(DAYS - 1).complete()
    assert build(Day(10))
    assert Day(DAYS - 1).complete()  # day 10 ran: its dependents' False is gone


def test_a_forked_child_trusts_nothing_it_inherited(tmp_path: Path) -> None:
    """The parent reads the watch queue; a child cannot, so it replays what it inherited."""
    assert Day(DAYS - 1).complete()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        try:
            Path("raw/5.txt").write_text("edited in the child\n")
            answer = b"1" if Day(DAYS - 1).complete() else b"0"
        except BaseException:  # noqa: BLE001 - anything at all must reach the parent as "E"
            answer = b"E"
        os.write(write, answer)
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"0"
    os.close(read)
    assert status == 0
    assert not Day(DAYS - 1).complete()  # and the parent saw the child's edit too


def test_without_watches_every_status_is_replayed_by_stat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUIGI_REPRO_WATCH_CHANGES", "false")
    reset()  # forget the watches the build made
    assert Day(DAYS - 1).complete()
    with judging() as judge:
        assert judge.status(Day(DAYS - 1)).ok
    assert judge.statuses_reused == 0
    assert judge.tasks_judged == DAYS
    assert judge.verdicts_reused == DAYS
    write_raw("7", "changed\n")
    assert not Day(DAYS - 1).complete()
    assert runtime().memory.watch.watched_folders() == ()


def test_remembered_verdicts_stay_within_their_byte_budget() -> None:
    """Evicting least recently used entries keeps the estimate under the budget; an evicted
    verdict is decided again, never answered wrongly."""
    memory = runtime().memory
    memory.budget = 20 * 5000  # room for a few entries only
    try:
        assert Day(DAYS - 1).complete()
        assert memory.weight <= memory.budget
        assert len(memory) < DAYS
        write_raw("3", "changed\n")
        assert not Day(DAYS - 1).complete()
        assert Day(2).complete()
    finally:
        memory.budget = BUDGET_BYTES


def test_an_evicted_task_leaves_no_edge_behind() -> None:
    """What stood on an evicted entry is forgotten by the entries it stood on."""
    memory = runtime().memory
    memory.capacity = 5
    try:
        assert Day(DAYS - 1).complete()
        for day in range(DAYS):
            Day(day).complete()
        for key in list(memory._entries):
            entry = memory.entry(key)
            assert entry is not None
            assert entry.dependents <= set(memory._entries)
    finally:
        memory.capacity = CAPACITY
