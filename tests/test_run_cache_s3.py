"""The run cache on S3 (``run_cache = s3://bucket/prefix``), on moto's server on 127.0.0.1.

A team shares one cache: what one checkout computed, another (elsewhere on disk, in another
process) restores instead of running; S3 outputs are restored by a copy on the server; corrupt
blobs, concurrent writers and unsigned entries never produce a wrong output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import boto3
import luigi
import pytest
from rs3pipeline import Rs3Shout, ran

TEXT = "the quick brown fox\n" * 50


@pytest.fixture
def cache(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The team's run cache on S3, for this process and its children."""
    location = f"s3://{s3_bucket}/cache"
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE", location)
    monkeypatch.setenv("RS3_BUCKET", s3_bucket)
    return location


def checkout(root: Path, name: str) -> Path:
    """A working folder with the raw input (same bytes in every checkout)."""
    folder = root / name
    folder.mkdir()
    (folder / "raw.txt").write_text(TEXT)
    return folder


def build_in(folder: Path, task: luigi.Task, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    assert luigi.build([task], local_scheduler=True, workers=1, log_level="WARNING")


def cache_objects(bucket: str, under: str) -> Dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"cache/{under}/").get("Contents", [])
    return {
        item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed
    }


def only_entry(bucket: str) -> bytes:
    entries = cache_objects(bucket, "entries")
    assert len(entries) == 1, sorted(entries)
    return next(iter(entries.values()))


# --- a team's cache: two processes, two checkouts --------------------------------------------


def luigi_run(folder: Path, family: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "luigi", "--module", "rs3pipeline", family]
    command += ["--local-scheduler", "--log-level", "INFO"]
    return subprocess.run(
        command, cwd=folder, env=dict(os.environ), capture_output=True, text=True, timeout=180
    )


def test_a_teammate_restores_what_another_checkout_computed(cache: str, tmp_path: Path) -> None:
    alice, bob = checkout(tmp_path, "alice"), checkout(tmp_path, "bob")
    first = luigi_run(alice, "Rs3Upper")
    assert first.returncode == 0, first.stderr
    assert ran(alice) == ["Rs3Upper"]
    assert "restored from run cache" not in first.stderr

    second = luigi_run(bob, "Rs3Upper")
    assert second.returncode == 0, second.stderr
    assert ran(bob) == [], second.stderr[-3000:]
    assert "Rs3Upper() restored from run cache" in second.stderr
    made, restored = alice / "out" / "upper.txt", bob / "out" / "upper.txt"
    assert restored.read_bytes() == made.read_bytes() == TEXT.upper().encode()
    record = json.loads((bob / "out" / "upper.txt.repro.json").read_text())
    assert record["run"]["restored_from"]["action_key"].startswith("sha256:")

    verify = subprocess.run(
        ["luigi-repro", "verify", "--format", "json", "--module", "rs3pipeline", "Rs3Upper"],
        cwd=bob,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "Rs3Upper" in verify.stdout


# --- S3 outputs --------------------------------------------------------------------------------


def s3_output(bucket: str, out: str) -> bytes:
    return bytes(boto3.client("s3").get_object(Bucket=bucket, Key=f"{out}/shout")["Body"].read())


def test_s3_outputs_are_restored_by_a_copy_on_the_server(
    cache: str, s3_bucket: str, moto_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = checkout(tmp_path, "alice"), checkout(tmp_path, "bob")
    monkeypatch.setenv("RS3_OUT", "alice")
    build_in(alice, Rs3Shout(), monkeypatch)
    assert ran(alice) == ["Rs3Shout"]

    monkeypatch.setenv("RS3_OUT", "bob")
    mark = moto_server.log_mark()  # type: ignore[attr-defined]
    build_in(bob, Rs3Shout(), monkeypatch)
    requests = moto_server.requests_since(mark, s3_bucket)  # type: ignore[attr-defined]
    assert ran(bob) == []
    assert (
        s3_output(s3_bucket, "bob")
        == s3_output(s3_bucket, "alice")
        == b"%s!\n" % (TEXT.upper().encode())
    )
    # The blob's bytes never came to the worker: the output was copied on the server.
    assert not [r for r in requests if r.startswith(f"GET /{s3_bucket}/cache/blobs/")], requests
    assert f"PUT /{s3_bucket}/bob/shout" in requests
    assert Rs3Shout().complete()
    body = boto3.client("s3").get_object(Bucket=s3_bucket, Key="bob/shout.repro.json")["Body"]
    assert json.loads(body.read())["run"]["restored_from"]["run_id"]


def test_s3_outputs_with_a_local_cache(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RS3_BUCKET", s3_bucket)
    alice, bob = checkout(tmp_path, "alice"), checkout(tmp_path, "bob")
    monkeypatch.setenv("RS3_OUT", "alice")
    build_in(alice, Rs3Shout(), monkeypatch)
    monkeypatch.setenv("RS3_OUT", "bob")
    build_in(bob, Rs3Shout(), monkeypatch)
    assert (ran(alice), ran(bob)) == (["Rs3Shout"], [])
    assert s3_output(s3_bucket, "bob") == s3_output(s3_bucket, "alice")
    assert Rs3Shout().complete()
