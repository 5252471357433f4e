"""Attacks on the run cache, round two: the S3 store, ``cache gc``/``stats``, ``verify`` and keys.

Each test is one attack as a user meets it: a good S3 blob that an entry lying about its size
must not get deleted, a huge object that must not be downloaded whole, a blob swapped during a
server copy the server did not make conditional, a torn local blob that must be replaced,
stray files and foreign keys that must not fail every gc, a run writing in place into a
hard-linked blob. The two strict xfails are known limits, documented: a ``luigi.cfg`` value
read without a ``luigi.Config`` class, and verify promising a restore that an early cutoff
makes unnecessary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import boto3
import luigi
import pytest
from pipelines import build, families, runs, write_raw
from rcxpipeline import RcxDown, RcxGreet, RcxInPlace, RcxShout
from runcachepipeline import RcScale

import luigi_repro.runcaches3outputs as s3outputs
from luigi_repro.runcacheentry import BlobRef
from luigi_repro.runcaches3 import S3Store
from luigi_repro.runcaches3objects import HashingSink
from luigi_repro.runcachestore import BlobCorrupt, blob_name

RAW = "alpha\nbeta\ngamma\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runcache"
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE", str(folder))
    write_raw("a", RAW)
    return folder


@pytest.fixture
def s3cache(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The run cache on S3 (s3://bucket/cache); S3 outputs go to the same bucket."""
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE", f"s3://{s3_bucket}/cache")
    monkeypatch.setenv("RCX_BUCKET", s3_bucket)
    write_raw("a", RAW)
    return s3_bucket


def s3_keys(bucket: str, under: str) -> List[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=under)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def s3_get(bucket: str, key: str) -> bytes:
    return bytes(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def s3_put(bucket: str, key: str, data: bytes) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)


def s3_entries(bucket: str) -> Dict[str, Tuple[str, Dict[str, Any]]]:
    """The S3 entries by their task's ``factor``: (key, document)."""
    found = {}
    for key in s3_keys(bucket, "cache/entries/"):
        document = json.loads(s3_get(bucket, key))
        found[document["task"]["params"]["factor"]] = (key, document)
    return found


def lie_about_size(bucket: str, liar: str, honest: str) -> None:
    """Make the entry of factor ``liar`` name ``honest``'s blob, one byte too long."""
    entries = s3_entries(bucket)
    key, document = entries[liar]
    blob = entries[honest][1]["outputs"][0]["blob"]
    document["outputs"][0]["blob"] = dict(blob, size=blob["size"] + 1)
    s3_put(bucket, key, json.dumps(document).encode())


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["luigi-repro", *args], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )


# --- the S3 store ------------------------------------------------------------------------------


def test_s3_entry_with_wrong_blob_size_does_not_delete_a_good_blob(s3cache: str) -> None:
    assert build(RcScale(1))
    assert build(RcScale(2))
    lie_about_size(s3cache, "1", "2")
    assert build(RcScale(1))
    runs()
    assert build(RcScale(2))
    assert runs() == [], "RcScale(2)'s own entry and blob were good: it must be restored"


def test_s3_output_entry_with_wrong_blob_size_does_not_delete_a_good_blob(s3cache: str) -> None:
    assert build(RcxShout(1))
    assert build(RcxShout(2))
    lie_about_size(s3cache, "1", "2")
    assert build(RcxShout(1))
    runs()
    assert build(RcxShout(2))
    assert runs() == [], "RcxShout(2)'s own entry and blob were good: it must be restored"


def test_s3_huge_object_at_a_blob_name_is_refused_unread(
    s3cache: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = S3Store(f"s3://{s3cache}/cache")
    small = tmp_path / "small.txt"
    small.write_text(RAW)
    blob = store.put_file(str(small), "xxh3_128")
    s3_put(s3cache, store.key(blob_name(blob.digest)), b"\0" * (16 << 20))
    received = [0]
    write = HashingSink.write

    def counting(sink: HashingSink, data: bytes) -> int:
        received[0] += len(data)
        return write(sink, data)

    monkeypatch.setattr(HashingSink, "write", counting)
    with pytest.raises(BlobCorrupt):
        store.get_file(BlobRef(blob.digest, blob.size), str(tmp_path / "restored"), False)
    assert received[0] < 1 << 20, f"{received[0]} bytes downloaded for a {blob.size}-byte blob"


def test_s3_output_restore_checks_the_etag_the_copy_reports(
    s3cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert build(RcxShout(1))
    made = s3_get(s3cache, "out/shout")
    s3_put(s3cache, "out/shout", b"changed\n")
    runs()
    real = s3outputs.server_copy

    def unconditional(api: Any, source: Any, dest: Any, size: int, etag: Any) -> Any:
        if dest[1] == "out/shout":  # swapped meanwhile; a server that ignores CopySourceIfMatch
            api.put_object(Bucket=source[0], Key=source[1], Body=b"X" * size)
            etag = None
        return real(api, source, dest, size, etag)

    monkeypatch.setattr(s3outputs, "server_copy", unconditional)
    assert build(RcxShout(1))
    assert runs() or s3_get(s3cache, "out/shout") == made, "the swapped bytes were restored"


def test_s3_entry_copied_under_a_wrong_shard_is_counted_once(s3cache: str) -> None:
    assert build(RcScale(1))
    (key,) = s3_keys(s3cache, "cache/entries/")
    s3_put(s3cache, f"cache/entries/zz/{key.rsplit('/', 1)[1]}", s3_get(s3cache, key))
    done = cli("cache", "stats", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["entries"] == 1


def test_foreign_keys_under_blobs_do_not_fail_every_gc(s3cache: str) -> None:
    assert build(RcScale(1))
    s3_put(s3cache, "cache/blobs/../../etc", b"hostile")
    s3_put(s3cache, "cache/blobs/xxh3_128/ab/", b"")  # a console "folder"
    for _ in range(2):
        done = cli("cache", "gc", "--max-size", "1GiB", "--grace", "0s", "--yes")
    assert done.returncode == 0, done.stdout[-400:]


def test_s3_racing_writers_leave_one_entry_others_restore(s3cache: str, tmp_path: Path) -> None:
    """13-211 (withstood): three checkouts store one action at once (conditional puts)."""
    script = (
        "import sys, luigi, runcachepipeline as p\n"
        "sys.exit(0 if luigi.build([p.RcScale(3)], local_scheduler=True) else 3)\n"
    )
    command = [sys.executable, "-c", script]
    folders = [tmp_path / f"checkout{n}" for n in range(3)]
    processes = []
    for folder in folders:
        (folder / "raw").mkdir(parents=True)
        (folder / "raw" / "a.txt").write_text(RAW)
        processes.append(subprocess.Popen(command, cwd=folder, env=dict(os.environ)))
    assert [process.wait(180) for process in processes] == [0, 0, 0]
    for folder in folders:
        assert (folder / "out" / "scaled.txt").read_text() == "".join(
            line * 3 for line in RAW.splitlines(keepends=True)
        )
    assert len(s3_keys(s3cache, "cache/entries/")) == 1
    assert build(RcScale(3))
    assert runs() == []


# --- the local store and cache gc --------------------------------------------------------------


def test_torn_blob_is_replaced_by_the_next_run(cache: Path) -> None:
    assert build(RcScale(1))
    (blob,) = [p for p in (cache / "blobs").rglob("*") if p.is_file()]
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as stream:
        stream.truncate(5)  # what a power cut can leave of a file never flushed
    outcomes = []
    for _ in range(3):
        Path("out/scaled.txt").write_text("edited\n")
        runs()
        assert build(RcScale(1))
        outcomes.append("ran" if runs() else "restored")
    assert "restored" in outcomes[1:], outcomes


def test_a_run_writing_in_place_never_writes_into_a_hard_linked_blob(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``run_cache_links`` a restored output is the cache's blob (same inode, read-only
    when it was stored by a copy). A later run that writes its output in place must write a
    file of its own: the blob keeps its bytes, and switching back restores them."""
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE_LINKS", "true")
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE", str(cache))
    assert build(RcxInPlace(1))
    first = Path("out/inplace.txt").read_bytes()
    assert build(RcxInPlace(2))
    runs()
    assert build(RcxInPlace(1))
    assert runs() == []
    assert Path("out/inplace.txt").stat().st_nlink > 1, "restored as a hard link"
    assert build(RcxInPlace(3))  # never computed: runs, writing in place
    assert families(runs()) == ["RcxInPlace"]
    kept = [p.read_bytes() for p in (cache / "blobs").rglob("*") if p.is_file()]
    assert first in kept, "the blob the output was linked to kept its bytes"
    assert build(RcxInPlace(1))
    assert runs() == [], "the blob kept its bytes: restored again"
    assert Path("out/inplace.txt").read_bytes() == first


def test_stray_files_in_blobs_are_not_blobs(cache: Path) -> None:
    assert build(RcScale(1))
    (blob,) = [p for p in (cache / "blobs").rglob("*") if p.is_file()]
    (blob.parent / ".DS_Store").write_bytes(b"\0" * 6148)
    (cache / "blobs" / "Thumbs.db").write_bytes(b"x" * 100)
    stats = cli("cache", "stats", "--format", "json")
    assert json.loads(stats.stdout)["blobs"] == 1
    for _ in range(2):
        done = cli("cache", "gc", "--max-size", "1GiB", "--grace", "0s", "--yes")
    assert done.returncode == 0, done.stdout[-400:]


# --- keys and verify ---------------------------------------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="known limit (README, Run cache): a luigi.cfg value read without a luigi.Config class "
    "is in no key, as in no record",
)
def test_luigi_cfg_value_read_without_a_config_class_is_not_restored_over(cache: Path) -> None:
    config = luigi.configuration.get_config()
    config.add_section("rcx")
    try:
        config.set("rcx", "greeting", "hello")
        assert build(RcxGreet())
        config.set("rcx", "greeting", "goodbye")
        for path in Path("out").glob("greet.txt*"):
            path.unlink()  # what a user does to rebuild: records cannot see the value either
        assert build(RcxGreet())
        assert Path("out/greet.txt").read_text() == "goodbye\n"
    finally:
        config.remove_section("rcx")


def _restorable(family: str) -> List[str]:
    done = cli("verify", "--format", "json", "--module", "rcxpipeline", family)
    assert done.returncode in (0, 1), done.stderr
    return sorted(task["family"] for task in json.loads(done.stdout)["tasks"] if task["restorable"])


def _snapshot(root: Path) -> Dict[str, Tuple[int, int, int, bytes]]:
    return {
        str(path): (st.st_mode, st.st_mtime_ns, st.st_ctime_ns, path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
        for st in [path.lstat()]
    }


@pytest.mark.xfail(
    strict=True,
    reason="known limit: verify cannot foresee the early cutoff a restore upstream may bring",
)
def test_verify_marks_restorable_only_what_the_build_restores(cache: Path) -> None:
    assert build(RcxDown())
    Path("out/up.txt").write_text("edited by hand\n")
    marked = _restorable("RcxDown")
    assert build(RcxDown())
    restored = sorted(
        family
        for family, name in (("RcxDown", "down"), ("RcxUp", "up"))
        if json.loads(Path(f"out/{name}.txt.repro.json").read_text())["run"].get("restored_from")
    )
    assert marked == restored


def test_verify_leaves_the_cache_unchanged(cache: Path) -> None:
    """13-206 (withstood): verify reads entries, a corrupt one included, and changes nothing."""
    assert build(RcxDown())
    corrupt = cache / "entries" / "ff" / ("ff" * 32 + ".json")
    corrupt.parent.mkdir(parents=True, exist_ok=True)
    corrupt.write_text("{not json")
    Path("out/up.txt").write_text("edited by hand\n")
    before = _snapshot(cache)
    assert _restorable("RcxDown")
    assert _snapshot(cache) == before
    assert families(runs()) == ["RcxDown", "RcxUp"]
