"""The run cache on S3 (``run_cache = s3://bucket/prefix``), on moto's server on 127.0.0.1.

A team shares one cache: what one checkout computed, another (elsewhere on disk, in another
process) restores instead of running; S3 outputs are restored by a copy on the server; corrupt
blobs, concurrent writers and unsigned entries never produce a wrong output.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import boto3
import luigi
import pytest
from rs3pipeline import Rs3Shout, Rs3Upper, ran

from luigi_repro.fingerprint import hash_bytes
from luigi_repro.log import LOGGER_NAME
from luigi_repro.runcacheentry import parse_entry
from luigi_repro.runcaches3 import S3Store
from luigi_repro.runcachestore import BlobCorrupt, blob_name

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


@pytest.mark.parametrize("algorithm", ["xxh3_128", "sha256"])
def test_s3_outputs_are_restored_by_a_copy_on_the_server(
    algorithm: str,
    cache: str,
    s3_bucket: str,
    moto_server: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LUIGI_REPRO_HASH_ALGORITHM", algorithm)
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
    # The output was copied on the server. With xxh3 the blob's unchanged ETag vouches for its
    # bytes, which never come to the worker; with sha256 only a hash of them does.
    blob_reads = [r for r in requests if r.startswith(f"GET /{s3_bucket}/cache/blobs/")]
    assert len(blob_reads) == (0 if algorithm == "xxh3_128" else 1), requests
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


# --- what must never become an output ----------------------------------------------------------


@pytest.mark.parametrize("family", ["Rs3Upper", "Rs3Shout"])
def test_a_corrupt_blob_is_discarded_and_the_task_runs(
    family: str,
    cache: str,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    task_class = {"Rs3Upper": Rs3Upper, "Rs3Shout": Rs3Shout}[family]
    alice, bob = checkout(tmp_path, "alice"), checkout(tmp_path, "bob")
    monkeypatch.setenv("RS3_OUT", "alice")
    build_in(alice, task_class(), monkeypatch)
    s3 = boto3.client("s3")
    blobs = cache_objects(s3_bucket, "blobs")
    assert len(blobs) == 1
    (blob_key,) = blobs
    s3.put_object(Bucket=s3_bucket, Key=blob_key, Body=b"tampered, same name")

    monkeypatch.setenv("RS3_OUT", "bob")
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        build_in(bob, task_class(), monkeypatch)
    assert ran(bob) == [family]
    assert "the run cache's copy of" in caplog.text
    assert "was discarded" in caplog.text
    expected = TEXT.upper().encode() + (b"!\n" if family == "Rs3Shout" else b"")
    made = s3_output(s3_bucket, "bob") if family == "Rs3Shout" else (bob / "out/upper.txt")
    assert (made if isinstance(made, bytes) else made.read_bytes()) == expected
    # The run that followed kept a good copy again, under the digest of its bytes.
    entry = parse_entry(only_entry(s3_bucket), None)
    (blob,) = entry.blobs()
    assert blob.digest == hash_bytes(expected, "xxh3_128")
    assert cache_objects(s3_bucket, "blobs") == {f"cache/{blob_name(blob.digest)}": expected}


def test_a_tampered_blob_found_in_place_by_a_later_run_is_never_vouched_for(
    cache: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob replaced by other bytes of the same size, then reused by another run's entry:
    its ETag is not the output's, so the entry keeps none and the restore hashes the blob."""
    alice, carol, bob = (checkout(tmp_path, name) for name in ("alice", "carol", "bob"))
    monkeypatch.setenv("RS3_OUT", "alice")
    build_in(alice, Rs3Shout(), monkeypatch)
    s3 = boto3.client("s3")
    ((blob_key, good),) = cache_objects(s3_bucket, "blobs").items()
    s3.put_object(Bucket=s3_bucket, Key=blob_key, Body=good.swapcase())
    (entry_key,) = cache_objects(s3_bucket, "entries")
    s3.delete_object(Bucket=s3_bucket, Key=entry_key)  # evicted; the blob stays

    monkeypatch.setenv("RS3_OUT", "carol")
    build_in(carol, Rs3Shout(), monkeypatch)  # runs, and keeps an entry naming that blob
    assert ran(carol) == ["Rs3Shout"]
    (blob,) = parse_entry(only_entry(s3_bucket), None).blobs()
    assert blob.etag is None

    monkeypatch.setenv("RS3_OUT", "bob")
    build_in(bob, Rs3Shout(), monkeypatch)
    assert ran(bob) == ["Rs3Shout"]
    assert s3_output(s3_bucket, "bob") == good


def test_an_entry_written_without_the_signing_key_is_never_restored(
    cache: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "team secret")
    alice, carol, bob = (checkout(tmp_path, name) for name in ("alice", "carol", "bob"))
    build_in(alice, Rs3Upper(), monkeypatch)
    build_in(carol, Rs3Upper(), monkeypatch)
    assert (ran(alice), ran(carol)) == (["Rs3Upper"], [])  # signed: restored

    # Someone with write access but without the key puts an unsigned entry under that key.
    (key,) = cache_objects(s3_bucket, "entries")
    doc = json.loads(only_entry(s3_bucket))
    del doc["signature"]
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=key, Body=json.dumps(doc).encode())
    luigi_log = run_logged(bob)
    assert ran(bob) == ["Rs3Upper"]
    assert "is not signed, and a signing key is configured" in luigi_log
    assert (bob / "out" / "upper.txt").read_text() == TEXT.upper()


def run_logged(folder: Path) -> str:
    result = luigi_run(folder, "Rs3Upper")
    assert result.returncode == 0, result.stderr
    return result.stderr


# --- concurrent writers ------------------------------------------------------------------------

WRITER = """
import json, sys, time
from luigi_repro.fingerprint import hash_bytes
from luigi_repro.runcacheentry import Entry, dump_entry
from luigi_repro.runcaches3 import S3Store

location, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = S3Store(location)
# Skip the HEAD that usually spares the upload: only the conditional PUT decides who wins.
store.head = lambda key: None
time.sleep(max(0.0, start - time.time()))
won = []
for index in range(20):
    key = "sha256:%064x" % index
    entry = Entry(key, "Rs3Race", "Rs3Race()", {}, "xxh3_128:00", "xxh3_128", (),
                  "2026-01-01T00:00:00Z", name, name, 1.0)
    won.append(store.write_entry(key, dump_entry(entry, None)))
print(json.dumps(won))
"""


def test_two_processes_storing_the_same_entries_leave_one_whole_entry_each(
    cache: str, s3_bucket: str
) -> None:
    start = time.time() + 2.0
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, cache, name, str(start)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for name in ("one", "two")
    ]
    outcomes = [json.loads(writer.communicate(timeout=120)[0]) for writer in writers]
    assert all(writer.returncode == 0 for writer in writers)
    store = S3Store(cache)
    for index, (first, second) in enumerate(zip(*outcomes)):
        assert first != second  # exactly one writer created each entry
        key = f"sha256:{index:064x}"
        data = store.read_entry(key)
        assert data is not None
        assert parse_entry(data, None).run_id == ("one" if first else "two")
    assert len(list(store.entries())) == 20


def test_two_teammates_computing_at_once_leave_one_valid_entry(
    cache: str, s3_bucket: str, tmp_path: Path
) -> None:
    folders = [checkout(tmp_path, name) for name in ("alice", "bob")]
    command = [sys.executable, "-m", "luigi", "--module", "rs3pipeline", "Rs3Upper"]
    runs = [
        subprocess.Popen(
            [*command, "--local-scheduler", "--no-lock"],
            cwd=folder,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for folder in folders
    ]
    logs = [run.communicate(timeout=180)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], logs
    entry = parse_entry(only_entry(s3_bucket), None)
    assert [output.blob.digest for output in entry.outputs if output.blob] == [
        hash_bytes(TEXT.upper().encode(), "xxh3_128")
    ]
    for folder in folders:
        output = folder / "out" / "upper.txt"
        assert output.exists(), logs
        assert output.read_text() == TEXT.upper()


# --- the store ---------------------------------------------------------------------------------


def test_the_store_lists_entries_and_blobs_with_when_they_were_last_used(
    cache: str, s3_bucket: str, tmp_path: Path
) -> None:
    store = S3Store(cache)
    key = "sha256:" + "ab" * 32
    assert store.write_entry(key, b"first")
    assert not store.write_entry(key, b"second")
    assert store.read_entry(key) == b"first"
    (listed,) = store.entries()
    assert (listed.name, listed.size) == (key, 5)
    time.sleep(1.1)  # S3 times are in whole seconds
    store.touch_entry(key)
    (touched,) = store.entries()
    assert touched.last_used > listed.last_used
    assert store.read_entry(key) == b"first"

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # over the multipart threshold
    blob = store.put_file(str(big), "sha256")
    assert blob.digest == "sha256:" + hashlib.sha256(big.read_bytes()).hexdigest()
    assert [(item.name, item.size) for item in store.blobs()] == [(blob.digest, blob.size)]
    store.get_file(blob, str(tmp_path / "back.bin"), fsync=False)
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()


def test_a_blob_already_cached_is_not_uploaded_again_but_marked_used(
    cache: str, s3_bucket: str, moto_server: object, tmp_path: Path
) -> None:
    store = S3Store(cache)
    (tmp_path / "a").write_bytes(b"same bytes")
    (tmp_path / "b").write_bytes(b"same bytes")
    first = store.put_file(str(tmp_path / "a"), "xxh3_128")
    (before,) = store.blobs()
    time.sleep(1.1)  # S3 times are in whole seconds
    mark = moto_server.log_mark()  # type: ignore[attr-defined]
    second = store.put_file(str(tmp_path / "b"), "xxh3_128")
    requests = moto_server.requests_since(mark, s3_bucket)  # type: ignore[attr-defined]
    assert (second.digest, second.size) == (first.digest, first.size)
    assert second.etag is None  # someone else's upload: this file's bytes do not vouch for it
    assert not [r for r in requests if "/cache/tmp/" in r], requests  # nothing uploaded
    (after,) = store.blobs()
    assert after.last_used > before.last_used  # a gc deciding now keeps it


def test_a_blob_with_another_etag_but_the_right_bytes_is_hashed_and_restored(
    cache: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ETag is not a content hash (a multipart upload has another): a blob whose ETag
    changed is hashed, and used when its bytes are right."""
    alice, bob = checkout(tmp_path, "alice"), checkout(tmp_path, "bob")
    monkeypatch.setenv("RS3_OUT", "alice")
    build_in(alice, Rs3Shout(), monkeypatch)
    s3 = boto3.client("s3")
    ((blob_key, good),) = cache_objects(s3_bucket, "blobs").items()
    upload = s3.create_multipart_upload(Bucket=s3_bucket, Key=blob_key)["UploadId"]
    part = s3.upload_part(Bucket=s3_bucket, Key=blob_key, UploadId=upload, PartNumber=1, Body=good)
    s3.complete_multipart_upload(
        Bucket=s3_bucket,
        Key=blob_key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    (blob,) = parse_entry(only_entry(s3_bucket), None).blobs()
    assert s3.head_object(Bucket=s3_bucket, Key=blob_key)["ETag"] != blob.etag

    monkeypatch.setenv("RS3_OUT", "bob")
    build_in(bob, Rs3Shout(), monkeypatch)
    assert ran(bob) == []
    assert s3_output(s3_bucket, "bob") == good
    assert cache_objects(s3_bucket, "blobs") == {blob_key: good}


def test_a_corrupt_blob_read_back_is_removed(cache: str, s3_bucket: str, tmp_path: Path) -> None:
    store = S3Store(cache)
    (tmp_path / "a").write_bytes(b"right bytes")
    blob = store.put_file(str(tmp_path / "a"), "xxh3_128")
    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key=f"cache/{blob_name(blob.digest)}", Body=b"wrong bytes")
    with pytest.raises(BlobCorrupt):
        store.get_file(blob, str(tmp_path / "back"), fsync=False)
    assert not store.has_blob(blob.digest)
    assert list(store.blobs()) == []
