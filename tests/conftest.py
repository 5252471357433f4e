"""Shared fixtures: every test runs in its own folder with its own stat cache and settings."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest

# The target conformance suite lives in the package; its asserts report like the tests' own.
pytest.register_assert_rewrite("luigi_repro.testing")

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
# Before Luigi is first imported: its configuration is read once, at import.
os.environ.setdefault("LUIGI_CONFIG_PATH", str(TESTS / "luigi.cfg"))


_NO_CLOUD = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_CLOUD_OVERRIDES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh folder, with a private stat cache and no luigi_repro overrides."""
    for name in list(os.environ):
        if name.startswith("LUIGI_REPRO_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LUIGI_REPRO_STAT_CACHE", str(tmp_path / "statcache.sqlite3"))
    monkeypatch.setenv("LUIGI_REPRO_LOCK_TIMEOUT", "60")  # a stuck lock fails a test, not CI
    # Any S3 access goes to loopback: to a closed port unless a test starts the S3 server.
    for name, value in _NO_CLOUD.items():
        monkeypatch.setenv(name, value)
    for name in _CLOUD_OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    s3_backend = sys.modules.get("luigi_repro.targets.s3")
    if s3_backend is not None:  # a client made for another test's server is not reused
        monkeypatch.setattr(s3_backend, "_clients", {})
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    return work


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """moto's standalone S3 server on 127.0.0.1, for the whole session."""
    from servers import MotoServer

    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_server: object, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback S3 server; boto3 here and in workers points at it."""
    import boto3

    for name, value in moto_server.env():  # type: ignore[attr-defined]
        monkeypatch.setenv(name, value)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A redis-server on 127.0.0.1 for the whole session."""
    from servers import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: object) -> str:
    """The URL of the session's Redis server, emptied for this test."""
    import redis

    url: str = redis_server.url  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushall()
    return url


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every task class name is used once in the suite's process: Luigi keeps one registry per
    process, and code that looks tasks up by name (gokart's ``dump()`` does, for every
    registered name) fails on a name two test modules define."""
    from luigi.task_register import Register

    ambiguous = sorted(
        name
        for name, cls in Register._get_reg().items()  # type: ignore[no-untyped-call]
        if cls is Register.AMBIGUOUS_CLASS
    )
    if ambiguous:
        raise pytest.UsageError(f"task class names defined twice in the tests: {ambiguous}")
