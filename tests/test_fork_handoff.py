"""A forked child (Luigi's ``--workers N`` runs every task in one) is handed what its parent knew.

The child cannot read the parent's inotify queue, so it makes every watch again and the parent
tells it what changed in between. These scenarios check that the child reuses what still holds,
and that a change made at the worst moment (after the parent's last look, before the child's
own watches exist) is still seen; and that every way the hand-over can fail leaves a child that
trusts nothing it inherited, never a wrong answer.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Callable, List

import luigi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipelines import build, log_run, runs, write_raw

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    forkhandoff,
    watch,
)
from luigi_repro.runtime import reset, runtime
from luigi_repro.watch import Changes, ChangeWatch

STEPS = 30


class HandedStep(TaskWithCheckingInputHash):
    """A chain: each step reads the step before and its own raw file."""

    step = luigi.IntParameter()

    def requires(self) -> List[luigi.Task]:
        raw = HashableExternalFile(f"raw/{self.step}.txt")
        return [raw] if self.step == 0 else [raw, HandedStep(self.step - 1)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/step{self.step:03d}.txt")

    def run(self) -> None:
        log_run(self)
        text = "".join(target.open().read() for target in luigi.task.flatten(self.input()))
        with self.output().open("w") as sink:  # a change anywhere before reaches every step after
            sink.write(f"{self.step}:{hashlib.sha256(text.encode()).hexdigest()}\n")


@pytest.fixture(autouse=True)
def chain() -> None:
    reset()
    for step in range(STEPS):
        write_raw(str(step), f"step {step}\n")
    assert build(HandedStep(STEPS - 1))
    assert len(runs()) == STEPS
    assert HandedStep(STEPS - 1).complete()  # the parent's memory now holds the whole chain


def in_child(action: Callable[[], str]) -> str:
    """Fork, run ``action`` in the child, and return what it returned (or the error)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through the pipe
        os.close(read)
        try:
            answer = action()
        except BaseException as error:  # noqa: BLE001 - anything at all must reach the parent
            answer = f"error {error!r}"
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 4096):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    return b"".join(chunks).decode()


def check_counting(task: luigi.Task) -> Callable[[], str]:
    """In the child: the answer of ``task.complete()``, and the own verdicts it decided or
    replayed (0 when the inherited statuses stood)."""

    def action() -> str:
        counts = runtime().memory.counts
        before = counts.decided + counts.replayed
        answer = task.complete()
        return f"{answer} {counts.decided + counts.replayed - before}"

    return action


def test_a_child_reuses_what_its_parent_knew() -> None:
    assert in_child(check_counting(HandedStep(STEPS - 1))) == "True 0"
    assert in_child(check_counting(HandedStep(STEPS - 1))) == "True 0"  # and so does the next one


def test_a_change_made_between_the_parents_last_look_and_the_childs_watches_is_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = os.getpid()
    original = ChangeWatch.after_fork

    def late(self: ChangeWatch, rewatch: bool = False) -> Changes:
        if os.getpid() != parent:  # in the child, before it watches anything of its own
            Path("raw/3.txt").write_text("edited at the worst moment\n")
        return original(self, rewatch)

    monkeypatch.setattr(ChangeWatch, "after_fork", late)
    answer, work = in_child(check_counting(HandedStep(STEPS - 1))).split()
    assert answer == "False"
    assert int(work) < STEPS  # only the steps after the edit were looked at again
    assert not HandedStep(STEPS - 1).complete()  # the parent saw it too
    assert HandedStep(2).complete()


def test_an_edit_made_in_the_child_is_seen_in_the_child() -> None:
    def action() -> str:
        Path("raw/7.txt").write_text("edited in the child\n")
        return str(HandedStep(STEPS - 1).complete())

    assert in_child(action) == "False"


def test_a_child_that_cannot_watch_again_trusts_nothing_it_inherited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = os.getpid()
    original = watch.INotify

    def refused(*args: object, **kwargs: object) -> object:
        if os.getpid() != parent:
            raise OSError(24, "Too many open files")
        return original(*args, **kwargs)

    monkeypatch.setattr(watch, "INotify", refused)
    answer, work = in_child(check_counting(HandedStep(STEPS - 1))).split()
    assert (answer, int(work)) == ("True", STEPS)  # every step replayed by stat, none trusted


def test_a_parent_whose_memory_is_busy_hands_nothing_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread holds the memory when the fork comes: the fork does not wait long, and
    the child replays everything it inherited."""
    monkeypatch.setattr(forkhandoff, "HOLD_SECONDS", 0.05)
    memory = runtime().memory
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with memory._lock:
            holding.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        holding.wait(10)
        answer, work = in_child(check_counting(HandedStep(STEPS - 1))).split()
    finally:
        done.set()
        thread.join()
    assert (answer, int(work)) == ("True", STEPS)


def test_threads_forking_at_once_each_hand_over_and_let_go() -> None:
    """Two threads fork at the same moment: each hand-over belongs to its own thread, no fork
    waits long, and the memory is free afterwards."""
    stop = time.monotonic() + 3
    slow: List[float] = []
    answers: List[str] = []

    def forker() -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            answers.append(in_child(lambda: str(HandedStep(STEPS - 1).complete())))
            slow.extend([time.monotonic() - started] if time.monotonic() - started > 2 else [])

    threads = [threading.Thread(target=forker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers
    assert set(answers) == {"True"}
    assert slow == []
    memory = runtime().memory
    assert memory.hold_for_fork(0.5)  # nobody kept the memory or the watch
    memory.release_after_fork()
    write_raw("9", "changed after the forks\n")
    assert not HandedStep(STEPS - 1).complete()


def test_a_child_that_dies_at_once_does_not_hold_up_its_parent() -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        os._exit(0)
    os.waitpid(pid, 0)
    write_raw("5", "changed after the child died\n")
    assert not HandedStep(STEPS - 1).complete()  # the parent's memory and watch still work


def test_luigi_workers_rerun_exactly_the_steps_after_an_edit() -> None:
    """With two workers every task runs in a forked child that checks its dependencies."""
    write_raw(str(STEPS - 4), "edited\n")
    assert build(HandedStep(STEPS - 1), workers=2)
    assert sorted(int(task_id.split("_")[1]) for task_id in runs()) == list(range(STEPS - 4, STEPS))
    Path(f"out/step{STEPS - 2:03d}.txt").write_text("edited by hand\n")
    assert build(HandedStep(STEPS - 1), workers=2)
    # Rerun, it writes what it wrote before: the step after it is cut off early.
    assert [int(task_id.split("_")[1]) for task_id in runs()] == [STEPS - 2]
    assert HandedStep(STEPS - 1).complete()


paths = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1)


@given(st.sets(paths), st.sets(paths), st.booleans())
def test_what_the_parent_sends_reads_back_the_same(
    changed: set[str], trees: set[str], everything: bool
) -> None:
    sent = Changes(everything=everything)
    sent.paths, sent.trees = set(changed), set(trees)
    received = forkhandoff.decode(forkhandoff.encode(sent)[8:])
    assert received.everything == everything
    if not everything:
        assert (received.paths, received.trees) == (changed, trees)
