"""Run locks in Redis, for workers on several hosts: a real redis-server on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
import redis
from pipelines import Clean, Report, build, families, make_raw, runs

from luigi_repro.errors import LockLost, LockServerUnavailable, LockTimeout
from luigi_repro.locking import LockRequest, RedisLocks
from luigi_repro.protocol import RunProtocol
from luigi_repro.record import parse_record

TESTS = Path(__file__).resolve().parent

HOLDER = """
import sys, time
from luigi_repro.locking import LockRequest, RedisLocks
with RedisLocks(sys.argv[1]).hold([LockRequest(u, u) for u in sys.argv[2:]], timeout=10):
    print("held", flush=True)
    time.sleep(60)
"""


def requests(*uris: str) -> List[LockRequest]:
    return [LockRequest(uri, f"/unused/{index}") for index, uri in enumerate(uris)]


def start_holder(url: str, *uris: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, *uris], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_holder_on_another_process_times_out(redis_url: str) -> None:
    """While another process holds a Redis run lock, taking it fails after the timeout."""
    holder = start_holder(redis_url, "s3://bucket/out.csv")
    try:
        started = time.monotonic()
        with (
            pytest.raises(LockTimeout) as caught,
            RedisLocks(redis_url).hold(requests("s3://bucket/out.csv"), 0.5, "Task_1"),
        ):
            pass
        assert 0.4 < time.monotonic() - started < 5
        assert "s3://bucket/out.csv" in str(caught.value)
        assert isinstance(caught.value, TimeoutError)
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_lock_behind(redis_url: str) -> None:
    """SIGKILL of the holder: Redis drops its subscription and the lock is free at once."""
    holder = start_holder(redis_url, "s3://bucket/a", "s3://bucket/b")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with RedisLocks(redis_url).hold(requests("s3://bucket/b", "s3://bucket/a"), 5.0):
        pass
    assert time.monotonic() - started < 3


def test_other_outputs_are_not_blocked(redis_url: str) -> None:
    """Locks are per output: another output's lock is free while one is held."""
    holder = start_holder(redis_url, "s3://bucket/a")
    try:
        with RedisLocks(redis_url).hold(requests("s3://bucket/b"), 1.0):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_unreachable_server_is_a_clear_error() -> None:
    """Nothing listens at the configured URL: LockServerUnavailable naming it."""
    url = "redis://127.0.0.1:1/0"
    with (
        pytest.raises(LockServerUnavailable, match=r"127\.0\.0\.1:1"),
        RedisLocks(url).hold(requests("s3://bucket/x"), 1.0),
    ):
        pass


def test_lost_lock_is_reported_and_no_record_is_written(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the holder's Redis connection is killed mid-run, finish() refuses to record."""
    make_raw()
    monkeypatch.setenv("LUIGI_REPRO_LOCK", redis_url)
    protocol = RunProtocol(Clean("a"))
    assert protocol.begin()
    Path("out").mkdir(exist_ok=True)
    Path("out/clean_a.txt").write_text("hello\n")
    admin = redis.Redis.from_url(redis_url)
    killed = 0
    for client in admin.client_list():
        if int(client.get("sub", 0)) or int(client.get("psub", 0)):
            admin.client_kill_filter(_id=client["id"])
            killed += 1
    assert killed >= 1
    held = protocol._held  # the holder notices the loss on its own reader thread
    assert held is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            held.check()
        except LockLost:
            break
        time.sleep(0.05)
    with pytest.raises(LockLost, match="was lost while the task ran"):
        protocol.finish()
    protocol.close()
    assert not Path("out/clean_a.txt.repro.json").exists()


def test_racing_local_schedulers_with_redis_locks_run_each_task_once(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds of one pipeline (two local schedulers) coordinated only by Redis locks."""
    make_raw()
    monkeypatch.setenv("LUIGI_REPRO_LOCK", redis_url)
    env = dict(os.environ, PIPELINE_SLEEP="0.3")
    command = [sys.executable, str(TESTS / "pipelines.py"), "1"]
    processes = [subprocess.Popen(command, env=env) for _ in range(2)]
    assert [p.wait(120) for p in processes] == [0, 0]
    assert families(runs()) == ["Clean", "Clean", "Merge", "Report"]
    for path in Path("out").glob("*.txt"):
        parse_record(Path(f"{path}.repro.json").read_bytes(), str(path))
    assert not list(Path("out").glob(".*.repro.lock"))  # Redis locks need no lock files
    assert Report().complete()
    assert build(Report())
    assert runs() == []
