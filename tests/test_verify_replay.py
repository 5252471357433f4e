"""``verify PATH`` in a new process replays an earlier up-to-date audit by stat, never a stale one.

An audit that found everything up to date is remembered in the stat cache file with the stat of
every file it read; a later audit with nothing changed replays it, without importing Luigi, and
anything changed (an input edited with its mtime put back, a record replaced, the environment, a
damaged store) makes it decide again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from pipelines import Report, build, make_raw

from luigi_repro.auditmemory import replay_audit
from luigi_repro.cli import main

#: The racy window used here: files older than this are remembered.
WINDOW_S = 0.05


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> str:
    """The example pipeline built, older than the racy window; the path of its last output."""
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", str(WINDOW_S))
    make_raw()
    assert build(Report())
    time.sleep(3 * WINDOW_S)
    return str(Path("out/report.txt").resolve())


def verify(capsys: pytest.CaptureFixture[str], *paths: str) -> Tuple[int, Dict[str, Any]]:
    code = main(["verify", "--format", "json", *paths])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def kinds(document: Dict[str, Any]) -> Dict[str, List[str]]:
    return {t["label"]: [r["kind"] for r in t["reasons"]] for t in document["tasks"]}


def test_an_unchanged_audit_is_replayed_with_the_same_report(
    settled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay_audit([settled]) is None  # nothing decided yet
    code, decided = verify(capsys, settled)
    assert code == 0
    replayed = replay_audit([settled])
    assert replayed is not None
    assert replayed.ok
    code, again = verify(capsys, settled)
    assert code == 0
    assert again["tasks"] == decided["tasks"]
    assert again["roots"] == decided["roots"]
    assert replay_audit([settled, settled]) is None  # another question: decided on its own


def test_an_input_edited_with_its_mtime_restored_is_found(
    settled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify(capsys, settled)[0] == 0
    raw = Path("raw/b.txt")
    before = raw.stat()
    raw.write_text(raw.read_text().swapcase())  # same size
    os.utime(raw, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert replay_audit([settled]) is None
    code, document = verify(capsys, settled)
    assert code == 1
    assert kinds(document)["Clean(name=b)"] == ["INPUT_CHANGED"]


def test_a_replaced_record_is_read_again(settled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify(capsys, settled)[0] == 0
    record = Path("out/merged.txt.repro.json")
    before = record.stat()
    spare = Path("out/spare.json")
    spare.write_text(record.read_text().replace('"outputs"', '"outputz"'))
    os.replace(spare, record)
    os.utime(record, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert replay_audit([settled]) is None
    code, document = verify(capsys, settled)
    assert code == 1
    assert any("BAD_RECORD" in found for found in kinds(document).values())


def test_another_environment_or_folder_decides_again(
    settled: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert verify(capsys, settled)[0] == 0
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "a team key")
    assert replay_audit([settled]) is None
    monkeypatch.delenv("LUIGI_REPRO_HMAC_KEY")
    assert replay_audit([settled]) is not None
    monkeypatch.chdir(Path("out"))
    assert replay_audit([settled]) is None


def test_a_damaged_entry_or_store_means_deciding(
    settled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = os.environ["LUIGI_REPRO_STAT_CACHE"]
    assert verify(capsys, settled)[0] == 0
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE audits SET entry = substr(entry, 1, length(entry) / 2)")
    assert replay_audit([settled]) is None
    assert verify(capsys, settled)[0] == 0  # decided, and remembered whole again
    assert replay_audit([settled]) is not None
    with open(store, "r+b") as stream:
        stream.truncate(os.path.getsize(store) // 3)
    for name in (store + "-wal", store + "-shm"):
        if os.path.exists(name):
            os.remove(name)
    # A new process meets the damaged file: it decides, and says the cache is unusable.
    command = [sys.executable, "-m", "luigi_repro", "verify", "--format", "json", settled]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"]


def test_concurrent_processes_share_the_store(settled: str) -> None:
    command = [sys.executable, "-m", "luigi_repro", "verify", "--format", "json", settled]
    for _ in range(2):  # the first round decides in every process, the second may replay
        started = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        for process in started:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            assert json.loads(out)["ok"]
            assert "unusable" not in err
    assert replay_audit([settled]) is not None


def test_a_replayed_audit_imports_no_luigi(settled: str) -> None:
    command = [sys.executable, "-X", "importtime", "-m", "luigi_repro", "verify", settled]
    first = subprocess.run(command, capture_output=True, text=True, check=False)
    assert first.returncode == 0
    assert "luigi.task\n" in first.stderr
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "luigi.task\n" not in again.stderr
    assert "| luigi\n" not in again.stderr


def test_a_path_through_a_switched_symlink_is_decided_again(
    settled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``current`` pointed at one copy of the results, then at another: the same path leads
    elsewhere, where inputs are looked for beside the copy, so the audit is decided again even
    though every file it read is the same file."""
    other = Path("elsewhere")
    other.mkdir()
    for item in Path("out").iterdir():  # a hard-linked copy (cp -al): the very same files
        if item.is_file():
            os.link(item, other / item.name)
    time.sleep(3 * WINDOW_S)  # linking moved their ctime: let them settle again
    Path("current").symlink_to(Path("out").resolve())
    through = str(Path("current/report.txt").absolute())
    assert verify(capsys, through)[0] == 0
    assert replay_audit([through]) is not None
    Path("current").unlink()
    Path("current").symlink_to(other.resolve())
    assert replay_audit([through]) is None


def test_an_audit_is_not_remembered_when_the_configuration_changed_under_it(
    settled: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings were read before luigi.cfg changed: what the audit found stood on the old
    file, so it must not be replayed against the new one."""
    from luigi_repro import auditmemory
    from luigi_repro.cli import verify as verify_command

    monkeypatch.setattr(verify_command, "config_state", lambda: [("luigi.cfg", None)])
    monkeypatch.setattr(auditmemory, "config_state", lambda: [("luigi.cfg", "written meanwhile")])
    assert verify(capsys, settled)[0] == 0
    assert replay_audit([settled]) is None
