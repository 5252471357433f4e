"""``luigi-repro verify DIR``: every record beneath a folder, like ``dvc status`` on a folder.

A folder with a record of its own stays one output (a folder target); any other folder stands
for the records beneath it, skipping luigi_repro's own lock and temporary files and never
following a symlinked folder; a folder that holds no record says so. A replayed audit of a
folder sees a record added beneath it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from pipelines import build
from v12pipeline import V12Folder, V12Leaf, V12Root, leaves, write_raw

from luigi_repro.auditmemory import replay_audit
from luigi_repro.cli import main

WINDOW_S = 0.05


def verify_json(*args: str) -> Tuple[int, Dict[str, Any]]:
    """``luigi-repro verify --format json ARGS`` through the console script."""
    script = shutil.which("luigi-repro")
    assert script is not None
    result = subprocess.run(
        [script, "verify", "--format", "json", *args], capture_output=True, text=True
    )
    assert result.returncode in (0, 1), result.stderr
    document: Dict[str, Any] = json.loads(result.stdout)
    return result.returncode, document


def recorded(document: Dict[str, Any]) -> List[str]:
    return sorted(t["label"] for t in document["tasks"] if t["kind"] == "recorded")


@pytest.fixture
def pipeline() -> None:
    write_raw(leaves())
    assert build(V12Root(), V12Folder())


def test_a_folder_stands_for_every_record_beneath_it(pipeline: None, tmp_path: Path) -> None:
    """out/ holds seven records in three subfolders; locks, temporaries and a symlinked folder
    leading elsewhere are not audited; the tips are the roots, the rest is drawn beneath."""
    assert any(p.name.endswith(".repro.lock") for p in Path("out/leaf").iterdir())
    Path("out/leaf/.a1.txt.repro-tmp-123-0123abcd").write_text("half a record")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy("out/root.txt", elsewhere / "other.txt")
    shutil.copy("out/root.txt.repro.json", elsewhere / "other.txt.repro.json")
    os.symlink(elsewhere, "out/linked")
    code, document = verify_json("out")
    assert code == 0
    assert recorded(document) == [
        "V12Folder()",
        "V12Leaf(name=a1)",
        "V12Leaf(name=a2)",
        "V12Leaf(name=b1)",
        "V12Leaf(name=b2)",
        "V12Mid(side=a)",
        "V12Mid(side=b)",
        "V12Root()",
    ]
    labels = {t["task_id"]: t["label"] for t in document["tasks"]}
    assert sorted(labels[root] for root in document["roots"]) == ["V12Folder()", "V12Root()"]
    assert all(str(elsewhere) not in uri for t in document["tasks"] for uri in t["outputs"])
    Path("raw/a2.txt").write_text("edited\n")
    code, document = verify_json("out/mid")  # a subfolder: its two records and what they read
    assert code == 1
    assert recorded(document) == [
        "V12Leaf(name=a1)",
        "V12Leaf(name=a2)",
        "V12Leaf(name=b1)",
        "V12Leaf(name=b2)",
        "V12Mid(side=a)",
        "V12Mid(side=b)",
    ]
    assert document["reason_counts"] == {"INPUT_CHANGED": 1, "UPSTREAM_NOT_UP_TO_DATE": 1}


def test_a_folder_with_its_own_record_is_one_output(pipeline: None) -> None:
    """out/folder is a folder target: audited as that one output, its content by its record."""
    code, document = verify_json("out/folder")
    assert code == 0
    assert recorded(document) == ["V12Folder()", "V12Leaf(name=a1)"]
    Path("out/folder/one.txt").write_text("tampered\n")
    code, document = verify_json("out/folder")
    assert code == 1
    folder = next(t for t in document["tasks"] if t["label"] == "V12Folder()")
    assert [r["kind"] for r in folder["reasons"]] == ["OUTPUT_MODIFIED"]


def test_a_folder_that_holds_no_record_says_so() -> None:
    """Nothing luigi_repro made is in it: NO_RECORD, exit 1, and a sentence saying why."""
    Path("data/sub").mkdir(parents=True)
    Path("data/sub/plain.csv").write_text("a,b\n")
    code, document = verify_json("data")
    assert code == 1
    (task,) = document["tasks"]
    assert task["status"] == "NO_RECORD"
    assert "is a folder that holds no record at all" in task["reasons"][0]["message"]
    script = shutil.which("luigi-repro")
    assert script is not None
    result = subprocess.run([script, "verify", "data/"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "holds no record at all" in result.stdout


def test_a_replayed_folder_audit_sees_a_record_added_beneath(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An up-to-date folder audit is replayed by stat; a new record in a subfolder, or the
    folder gaining a record of its own, makes the next call decide again and see it."""
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", str(WINDOW_S))
    write_raw(leaves())
    assert build(V12Leaf("a1"), V12Leaf("a2"))
    time.sleep(3 * WINDOW_S)
    folder = str(Path("out").resolve())
    assert main(["verify", "--format", "json", folder]) == 0
    capsys.readouterr()
    assert replay_audit([folder]) is not None
    assert main(["verify", "--format", "json", folder]) == 0  # replayed: the same report
    assert recorded(json.loads(capsys.readouterr().out)) == [
        "V12Leaf(name=a1)",
        "V12Leaf(name=a2)",
    ]
    assert build(V12Leaf("b1"))  # a new record in out/leaf, a folder that was listed
    assert replay_audit([folder]) is None
    code, document = verify_json(folder)
    assert code == 0
    assert "V12Leaf(name=b1)" in recorded(document)
    time.sleep(3 * WINDOW_S)
    assert main(["verify", folder]) == 0
    capsys.readouterr()
    assert replay_audit([folder]) is not None
    Path("out.repro.json").write_text("{}")  # out/ now claims to be one output
    assert replay_audit([folder]) is None
    code, document = verify_json(folder)
    assert code == 1
    assert [t["status"] for t in document["tasks"]] == ["BAD_RECORD"]
