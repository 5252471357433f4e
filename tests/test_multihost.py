"""Luigi's central scheduler, several worker processes, Redis locks and S3 outputs, together.

Everything runs for real on 127.0.0.1: ``luigid``, ``redis-server``, moto's S3 server, and
independent ``luigi`` worker processes (each with forked sub-workers) building overlapping
pipelines at the same time.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import boto3
import pytest
from pipelines import runs
from processes import LoggedProcess

from luigi_repro.record import parse_record

TESTS = Path(__file__).resolve().parent
ROOTS = [["a", "b"], ["b", "c"], ["a", "b", "c"]]


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[object]:
    from servers import Luigid

    server = Luigid(tmp_path / "luigid").start()
    yield server
    server.stop()


@pytest.fixture
def cluster_env(
    s3_bucket: str, redis_url: str, luigid: object, monkeypatch: pytest.MonkeyPatch
) -> Dict[str, str]:
    """Environment of every worker: the bucket, Redis locks, the scheduler's port."""
    monkeypatch.setenv("PIPELINE_BUCKET", s3_bucket)
    monkeypatch.setenv("LUIGI_REPRO_LOCK", redis_url)
    s3 = boto3.client("s3")
    texts = {"a": "Alpha beta", "b": "Gamma delta epsilon", "c": "Zeta"}
    for name, text in texts.items():
        s3.put_object(Bucket=s3_bucket, Key=f"raw/{name}.txt", Body=text.encode())
    return dict(os.environ, PIPELINE_SLEEP="0.2", SCHEDULER_PORT=str(luigid.port))  # type: ignore[attr-defined]


def worker(env: Dict[str, str], names: List[str], log: Path) -> LoggedProcess:
    return LoggedProcess(worker_command(env, names), log, env)


def worker_command(env: Dict[str, str], names: List[str]) -> List[str]:
    return [
        sys.executable,
        "-m",
        "luigi",
        "--module",
        "distributed",
        "Summary",
        "--names",
        json.dumps(names),
        "--scheduler-host",
        "127.0.0.1",
        "--scheduler-port",
        env["SCHEDULER_PORT"],
        "--workers",
        "2",
        "--no-lock",
        "--log-level",
        "WARNING",
    ]


def verify(env: Dict[str, str], names: List[str]) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "luigi_repro",
        "verify",
        "--format",
        "json",
        "--module",
        "distributed",
        "Summary",
        "--names",
        json.dumps(names),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_three_workers_on_luigid_with_redis_locks_and_s3(
    cluster_env: Dict[str, str], tmp_path: Path
) -> None:
    """Overlapping pipelines built at once: every task runs exactly once, records are valid,
    and the final audit is clean."""
    workers = [
        worker(cluster_env, names, tmp_path / f"worker{index}.log")
        for index, names in enumerate(ROOTS)
    ]
    for each in workers:
        each.finish()
    # A worker finding a task RUNNING elsewhere may stop early (its exit status is 0 anyway):
    # finish whatever is left, as an operator would, with one more worker.
    for names in ROOTS:
        if verify(cluster_env, names).returncode != 0:
            worker(cluster_env, names, tmp_path / f"finisher-{'-'.join(names)}.log").finish()
    counts = collections.Counter(task_id.split("_", 1)[0] for task_id in runs())
    assert counts == {"Tokenize": 3, "Count": 3, "Summary": 3}, counts
    bucket = cluster_env["PIPELINE_BUCKET"]
    s3 = boto3.client("s3")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    records = [key for key in keys if key.endswith(".repro.json")]
    assert len(records) == 9
    for key in records:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        record = parse_record(body, key)
        assert record.outputs[0].uri == f"s3://{bucket}/{key[: -len('.repro.json')]}"
    for names in ROOTS:
        result = verify(cluster_env, names)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert json.loads(result.stdout)["ok"] is True
