"""The run cache on a local folder: what a user switching parameters back and forth lives through.

Every build here is a real ``luigi.build`` with the local scheduler; ``runs()`` says which
``run()`` bodies executed, so "restored" means the body did not run and the bytes still came back.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Dict, List

import pytest
from pipelines import build, families, runs, status_of, write_raw
from runcachepipeline import (
    RcCount,
    RcDynamic,
    RcNeverCached,
    RcOtherWriter,
    RcScale,
    RcSplit,
    RcTable,
)

from luigi_repro.log import LOGGER_NAME
from luigi_repro.record import parse_record
from luigi_repro.runcacheentry import dump_entry, parse_entry
from luigi_repro.runcachestore import LocalStore


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run cache folder, configured through the environment as a user would."""
    folder = tmp_path / "runcache"
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE", str(folder))
    write_raw("a", "alpha\nbeta\ngamma\n")
    return folder


def entries(cache: Path) -> Dict[str, bytes]:
    """Every entry in the cache: {family: raw bytes} (one entry per family in these tests)."""
    found: Dict[str, bytes] = {}
    for path in sorted((cache / "entries").rglob("*.json")):
        data = path.read_bytes()
        found.setdefault(json.loads(data)["task"]["task_id"], data)
    return found


def entry_path(cache: Path, task_id: str) -> Path:
    for path in (cache / "entries").rglob("*.json"):
        if json.loads(path.read_bytes())["task"]["task_id"] == task_id:
            return path
    raise AssertionError(f"no entry for {task_id}")


def blob_path(cache: Path, digest: str) -> Path:
    algorithm, hexpart = digest.split(":")
    return cache / "blobs" / algorithm / hexpart[:2] / hexpart


def restored_lines(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if "restored from run cache" in r.getMessage()]


def test_parameter_back_and_forth_restores_without_running(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """1 -> 2 -> 1: the second 1 is restored, not computed; bytes as the first; verify agrees."""
    assert build(RcCount(1))
    first = {p: Path(p).read_bytes() for p in ("out/scaled.txt", "out/count.txt")}
    assert families(runs()) == ["RcCount", "RcScale"]
    assert build(RcCount(2))
    assert families(runs()) == ["RcCount", "RcScale"]
    assert Path("out/count.txt").read_text() == "6\n"
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    assert build(RcCount(1))
    assert runs() == [], "both tasks were computed before: restored, not run"
    assert len(restored_lines(caplog)) == 2
    assert {p: Path(p).read_bytes() for p in first} == first
    assert status_of(RcCount(1)).ok
    record = parse_record(Path("out/count.txt.repro.json").read_bytes(), "count")
    assert record.run.restored_from is not None
    assert record.run.restored_from["action_key"].startswith("sha256:")
    assert build(RcCount(1))
    assert runs() == []


def test_edited_raw_input_computes_and_switching_back_restores(cache: Path) -> None:
    """A raw edit is a new action (computed); the old content again is the old action."""
    assert build(RcCount(1))
    runs()
    write_raw("a", "alpha\n")
    assert build(RcCount(1))
    assert families(runs()) == ["RcCount", "RcScale"]
    write_raw("a", "alpha\nbeta\ngamma\n")
    assert build(RcCount(1))
    assert runs() == []
    assert Path("out/count.txt").read_text() == "3\n"


def test_folder_and_several_outputs_are_restored_exactly(cache: Path) -> None:
    """A folder output (sub-folders, an empty one) and a second output come back identical."""

    def snapshot() -> Dict[str, bytes]:
        files = {str(p): p.read_bytes() for p in Path("out/parts").rglob("*") if p.is_file()}
        files["index"] = Path("out/index.txt").read_bytes()
        return files

    assert build(RcSplit(2))
    first = snapshot()
    assert build(RcSplit(1))
    assert snapshot() != first
    runs()
    assert build(RcSplit(2))
    assert runs() == []
    assert snapshot() == first
    assert Path("out/parts/empty").is_dir()
    assert status_of(RcSplit(2)).ok


def test_output_edited_after_restore_is_noticed_and_the_cache_stays_intact(
    cache: Path,
) -> None:
    """Editing a restored output by hand makes it stale; the cache's copy is unaffected, so the
    next build restores the original again instead of computing."""
    assert build(RcScale(1))
    assert build(RcScale(2))
    assert build(RcScale(1))
    runs()
    original = Path("out/scaled.txt").read_bytes()
    Path("out/scaled.txt").write_text("edited by hand\n")
    assert not status_of(RcScale(1)).ok
    assert build(RcScale(1))
    assert runs() == []
    assert Path("out/scaled.txt").read_bytes() == original


def test_corrupted_blob_is_discarded_and_the_task_runs(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cached file whose bytes no longer match its name never becomes an output."""
    assert build(RcScale(1))
    assert build(RcScale(2))
    runs()
    entry = parse_entry(entry_path(cache, RcScale(1).task_id).read_bytes(), None)
    blob = blob_path(cache, entry.outputs[0].blob.digest)  # type: ignore[union-attr]
    blob.chmod(0o644)
    blob.write_bytes(b"ALPHA\nBETA\nGAMMA\n")  # same size, other bytes
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    assert build(RcScale(1))
    assert families(runs()) == ["RcScale"]
    assert Path("out/scaled.txt").read_text() == "alpha\nbeta\ngamma\n"
    assert any("discarded" in r.getMessage() for r in caplog.records)
    assert status_of(RcScale(1)).ok
    # The run stored a good copy again: the next switch back restores.
    assert build(RcScale(2))
    assert build(RcScale(1))
    assert families(runs()) == []


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other key"])
def test_unusable_entry_never_restores(
    cache: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A truncated, corrupt or misplaced entry is refused with a warning; the task runs and a
    good entry replaces it."""
    assert build(RcScale(1))
    assert build(RcScale(2))
    runs()
    path = entry_path(cache, RcScale(1).task_id)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x80\x04not json")
    else:  # a valid entry of another action, copied under this key
        path.write_bytes(entry_path(cache, RcScale(2).task_id).read_bytes())
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    assert build(RcScale(1))
    assert families(runs()) == ["RcScale"]
    assert Path("out/scaled.txt").read_text() == "alpha\nbeta\ngamma\n"
    assert any("is not used" in r.getMessage() for r in caplog.records)
    assert parse_entry(entry_path(cache, RcScale(1).task_id).read_bytes(), None)


def test_signed_cache_never_restores_unsigned_or_forged_entries(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a signing key, an entry written without it (or with another key) is refused, and
    left in place: it may be good for a process holding the right key, and a teammate with a
    stale key must not wipe the team's cache."""
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "team-key")
    assert build(RcScale(1))
    assert build(RcScale(2))
    runs()
    path = entry_path(cache, RcScale(1).task_id)
    signed = path.read_bytes()
    entry = parse_entry(signed, b"team-key")
    assert entry.signature is not None
    for forged in (dump_entry(entry, None), dump_entry(entry, b"someone-else")):
        path.write_bytes(forged)
        assert build(RcScale(1))
        assert families(runs()) == ["RcScale"], "an unsigned or forged entry restored nothing"
        assert path.read_bytes() == forged, "refused, not removed"
        assert build(RcScale(2))
        assert runs() == []  # RcScale(2)'s own signed entry restores
    path.write_bytes(signed)
    assert build(RcScale(1))
    assert runs() == []


def test_opted_out_and_dynamic_tasks_are_never_cached(cache: Path) -> None:
    """``run_cache = False`` and a ``run()`` that yields dependencies always compute."""
    for factor in (1, 2, 1):
        assert build(RcNeverCached(factor), RcDynamic(factor))
    assert families(runs()) == ["RcDynamic"] * 3 + ["RcNeverCached"] * 3
    assert entries(cache) == {}


def test_restore_never_replaces_another_familys_output(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An output recorded by another task family is not overwritten by a restore."""
    assert build(RcScale(1))
    assert build(RcScale(2))
    assert build(RcOtherWriter())
    runs()
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    assert build(RcScale(1))
    assert families(runs()) == ["RcScale"]
    assert any("must not replace" in r.getMessage() for r in caplog.records)


def test_workers_restore_a_fresh_folder_from_a_warm_cache(cache: Path) -> None:
    """A teammate's empty output folder, two workers: everything restored, nothing computed."""
    assert build(RcSplit(1), RcCount(1))
    expected = Path("out/count.txt").read_bytes()
    runs()
    for record in Path("out").rglob("*.repro.json"):
        record.unlink()
    for path in sorted(Path("out").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    assert build(RcSplit(1), RcCount(1), workers=2)
    assert runs() == []
    assert Path("out/count.txt").read_bytes() == expected
    assert status_of(RcCount(1)).ok
    assert status_of(RcSplit(1)).ok


def test_hard_links_restore_and_a_hand_edit_in_place_is_caught(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_cache_links = true``: outputs share the blob's inode; editing one in place
    corrupts the shared blob, which the next restore detects rather than trusts."""
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE_LINKS", "true")
    assert build(RcScale(1))
    assert build(RcScale(2))
    assert build(RcScale(1))
    assert families(runs()) == ["RcScale", "RcScale"]
    entry = parse_entry(entry_path(cache, RcScale(1).task_id).read_bytes(), None)
    blob = blob_path(cache, entry.outputs[0].blob.digest)  # type: ignore[union-attr]
    assert os.stat("out/scaled.txt").st_ino == blob.stat().st_ino
    with open("out/scaled.txt", "r+") as stream:  # in place, through the shared inode
        stream.write("ALPHA")
    assert build(RcScale(2))
    assert build(RcScale(1))
    assert families(runs()) == ["RcScale"], "the corrupted blob was not restored"
    assert Path("out/scaled.txt").read_text() == "alpha\nbeta\ngamma\n"


def _store_entry(args: tuple[str, str, bytes]) -> bool:
    root, key, data = args
    return LocalStore(root).write_entry(key, data)


def test_concurrent_stores_of_one_entry_leave_one_whole_entry(tmp_path: Path) -> None:
    """Eight processes create one entry at once: one wins, the entry is one writer's bytes."""
    root = str(tmp_path / "shared")
    key = "sha256:" + "ab" * 32
    documents = [json.dumps({"writer": n, "pad": "x" * 50_000}).encode() for n in range(8)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        won = pool.map(_store_entry, [(root, key, data) for data in documents])
    assert won.count(True) == 1
    stored = LocalStore(root).read_entry(key)
    assert stored == documents[won.index(True)]
    assert not list((tmp_path / "shared" / "tmp").iterdir()), "no temporary left behind"


def test_dataframe_and_object_targets_are_restored_and_verified_by_their_data(
    cache: Path,
) -> None:
    """A Parquet output's fingerprint is of its data: the restored file must hold that data."""
    assert build(RcTable(1))
    first = Path("out/table.parquet").read_bytes()
    assert build(RcTable(2))
    runs()
    assert build(RcTable(1))
    assert runs() == []
    assert Path("out/table.parquet").read_bytes() == first
    assert json.loads(Path("out/sum.json").read_text()) == {"factor": 1, "rows": 3}
    assert status_of(RcTable(1)).ok
