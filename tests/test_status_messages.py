"""A checked task's status message in Luigi's scheduler says why it ran, or that it was cut off.

The end-to-end test runs the ``luigi`` command against a real ``luigid`` (forked workers, no
local scheduler) and reads the messages back through luigid's JSON API, as a dashboard would.
The others use Luigi's own in-process scheduler and worker, which carry messages the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import luigi
import luigi.configuration
import pytest
from luigi.rpc import RemoteScheduler
from luigi.scheduler import Scheduler
from luigi.worker import TaskStatusReporter, Worker
from whypipeline import L12Count, L12Normalize, L12Summary

from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash
from luigi_repro.log import LOGGER_NAME

NAMES = ["a", "b"]


def write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


# --- against a real luigid ------------------------------------------------------------------------


@pytest.fixture
def luigid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """luigid on loopback; it may hand out a task again at once (no 10 s "stable done"
    cooldown), as a rebuild a minute later would see."""
    from servers import Luigid

    config = tmp_path / "luigid.cfg"
    config.write_text(
        "[core]\nautoload_range = false\n[scheduler]\nstable_done_cooldown_secs = 0\n"
    )
    monkeypatch.setenv("LUIGI_CONFIG_PATH", str(config))
    server = Luigid(tmp_path / "luigid").start()
    yield server
    server.stop()


def build_on(port: int, log: Path) -> None:
    """``luigi --module whypipeline L12Summary`` with two forked workers, on luigid only."""
    command = [
        sys.executable,
        "-m",
        "luigi",
        "--module",
        "whypipeline",
        "L12Summary",
        "--names",
        json.dumps(NAMES),
        "--scheduler-host",
        "127.0.0.1",
        "--scheduler-port",
        str(port),
        "--workers",
        "2",
        "--no-lock",
        "--retcode-task-failed",
        "3",
        "--log-level",
        "WARNING",  # the message must not depend on the log line being wanted
    ]
    with log.open("w") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, timeout=180)
    assert done.returncode == 0, log.read_text()[-3000:]


def api(port: int, method: str, data: Dict[str, Any]) -> Any:
    query = urllib.parse.urlencode({"data": json.dumps(data)})
    url = f"http://127.0.0.1:{port}/api/{method}?{query}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())["response"]


def luigid_messages(port: int) -> Dict[str, str]:
    """Every DONE task's status message, as luigid's task list shows it, checked against the
    single-task call the visualiser refreshes an open message with."""
    done = api(port, "task_list", {"status": "DONE"})
    messages = {task_id: task["status_message"] for task_id, task in done.items()}
    for task_id, message in messages.items():
        single = api(port, "get_task_status_message", {"task_id": task_id})
        assert single["statusMessage"] == message
    return messages


def pipeline_ids() -> Dict[str, str]:
    tasks = [L12Normalize(n) for n in NAMES] + [L12Count(n) for n in NAMES]
    named = {f"{type(t).__name__}({t.name})": t.task_id for t in tasks}
    named["L12Summary"] = L12Summary(names=NAMES).task_id
    return named


def test_luigid_shows_why_each_task_ran_and_which_were_cut_off(luigid: Any, tmp_path: Path) -> None:
    write("raw/a.txt", "Alpha beta\n")
    write("raw/b.txt", "Gamma\n")
    ids = pipeline_ids()

    build_on(luigid.port, tmp_path / "first.log")
    first = luigid_messages(luigid.port)
    raw = {task_id for task_id in first if task_id.startswith("HashableExternalFile_")}
    assert set(first) == set(ids.values()) | raw
    assert len(raw) == 2
    assert all(first[task_id] is None for task_id in raw)  # never run: nothing to say
    for label, task_id in ids.items():
        assert first[task_id].startswith("luigi_repro: runs, no record yet: output "), label
        assert "does not exist" in first[task_id], label

    write("raw/a.txt", "ALPHA BETA\n")  # same words once lower-cased: same normalised bytes
    write("raw/b.txt", "Gamma delta\n")
    build_on(luigid.port, tmp_path / "second.log")
    second = luigid_messages(luigid.port)

    norm_a = second[ids["L12Normalize(a)"]]
    assert norm_a.startswith("luigi_repro: runs: INPUT_CHANGED input ")
    assert str(Path("raw/a.txt").resolve()) in norm_a
    assert " changed (" in norm_a
    assert " -> " in norm_a
    assert second[ids["L12Count(a)"]] == (
        "luigi_repro: early cutoff: inputs equal to the recorded ones; outputs kept (run() skipped)"
    )
    assert str(Path("out/norm_b.txt").resolve()) in second[ids["L12Count(b)"]]
    summary = second[ids["L12Summary"]]
    assert "INPUT_CHANGED input requires()['b']" in summary
    assert str(Path("out/count_b.txt").resolve()) in summary
    assert "count_a" not in summary  # its count was kept: not a reason
    assert Path("out/summary.txt").read_text() == "a 2\nb 2\n"


# --- Luigi's in-process scheduler --------------------------------------------------------------


def build_here(task: luigi.Task) -> Scheduler:
    scheduler = Scheduler()
    with Worker(scheduler=scheduler) as worker:
        assert worker.add(task)
        assert worker.run()
    return scheduler


def message_of(scheduler: Scheduler, task: luigi.Task) -> str:
    return str(scheduler.get_task_status_message(task.task_id)["statusMessage"])


class L12Join(TaskWithCheckingInputHash):
    """Joins five raw files: five changed inputs make more reasons than a message shows."""

    def requires(self) -> List[luigi.Task]:
        return [HashableExternalFile(f"raw/part{index}.txt") for index in range(5)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/joined.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            for part in self.input():
                sink.write(part.open("r").read())


def test_a_long_list_of_reasons_is_cut_to_the_first_three_and_a_count() -> None:
    for index in range(5):
        write(f"raw/part{index}.txt", f"part {index}\n")
    build_here(L12Join())
    for index in range(5):
        write(f"raw/part{index}.txt", f"part {index}, edited\n")
    message = message_of(build_here(L12Join()), L12Join())
    assert message.count("INPUT_CHANGED") == 3
    assert message.endswith(" … and 2 more")
    assert "part0.txt" in message
    assert "part4.txt" not in message


def test_hostile_file_names_are_shown_escaped_not_as_markup() -> None:
    """The visualiser inserts a refreshed message as HTML: a name must not become markup, nor
    draw a fake line."""
    name = "<img src=x onerror=alert(1)>&\n\u202e"
    write(f"raw/{name}.txt", "Alpha\n")
    task = L12Normalize(name)
    message = message_of(build_here(task), task)
    for raw in ("<", "\n", "\u202e"):
        assert raw not in message
    assert "norm_&lt;img src=x onerror=alert(1)>&amp;\\n\\u202e.txt does not exist" in message


# --- a scheduler that cannot be reached --------------------------------------------------------


def unreachable_reporter(task_id: str) -> TaskStatusReporter:
    """The status reporter a worker gives its task, for a scheduler nobody answers on (one
    attempt, no wait between retries)."""
    from servers import free_port

    config = luigi.configuration.get_config()
    saved = {key: config.get("core", key, None) for key in ("rpc_retry_attempts", "rpc_retry_wait")}
    config.set("core", "rpc_retry_attempts", "1")
    config.set("core", "rpc_retry_wait", "0")
    try:
        scheduler = RemoteScheduler(f"http://127.0.0.1:{free_port()}", connect_timeout=2)
    finally:
        for key, value in saved.items():
            if value is None:
                config.remove_option("core", key)
            else:
                config.set("core", key, value)
    return TaskStatusReporter(scheduler, task_id, "worker", None)


def test_a_scheduler_that_is_down_costs_a_warning_not_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    write("raw/down.txt", "Alpha\n")
    task = L12Normalize("down")
    task.set_status_message = unreachable_reporter(task.task_id).update_status_message
    try:
        with caplog.at_level("WARNING", logger=LOGGER_NAME):
            task.run()  # runs: no record yet
            assert Path("out/norm_down.txt").read_text() == "alpha\n"
            assert task.complete()
            task.run()  # early cutoff
    finally:
        task.set_status_message = None  # Luigi reuses task instances across tests
    warnings = [r.getMessage() for r in caplog.records if "status message" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert all("could not send the status message of L12Normalize_down_" in w for w in warnings)
    assert all("RPCError" in w for w in warnings)
    assert task.complete()
