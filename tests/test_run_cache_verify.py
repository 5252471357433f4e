"""``luigi-repro verify`` with a run cache: a task that is not up to date, but whose next run
would restore its outputs from the cache, says ``STALE (restorable from run cache)``.

The pipeline (:mod:`rcvpipeline`) is built with ``level`` 1, then 2; asking for 1 again is the
same action as the first build. Everything is checked through the installed console script,
and against what the build then really does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from pipelines import build, runs
from rcvpipeline import RcvDown, RcvUncached

from luigi_repro.report import verify
from luigi_repro.runcachestore import LocalStore, entry_name

TASK = ["--module", "rcvpipeline", "RcvDown", "--level", "1"]
RESTORABLE = "STALE (restorable from run cache)"


def luigi_repro(*args: str, env: Optional[Dict[str, str]] = None) -> Tuple[int, str, str]:
    """Run the console script; returns (exit status, stdout, stderr)."""
    script = shutil.which("luigi-repro")
    assert script is not None
    environment = dict(env if env is not None else os.environ, PYTHONIOENCODING="utf-8")
    result = subprocess.run([script, *args], capture_output=True, text=True, env=environment)
    return result.returncode, result.stdout, result.stderr


def verify_json(*args: str) -> Dict[str, Dict[str, Any]]:
    """``verify --format json``: exit status 1 (stale), the tasks by family, and the summary
    under ``""``."""
    code, out, err = luigi_repro("verify", "--format", "json", *args)
    assert code == 1, err
    document = json.loads(out)
    tasks: Dict[str, Dict[str, Any]] = {task["family"]: task for task in document["tasks"]}
    tasks[""] = document["summary"]
    return tasks


def headings(out: str) -> List[str]:
    return [line.strip("│└├─ ") for line in out.splitlines() if "✗" in line or "✓" in line]


def cache_files(cache: Path) -> Dict[str, Tuple[int, int]]:
    """Every file in the cache with its size and modification time."""
    return {
        str(path.relative_to(cache)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(cache.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local run cache; ``raw/in.txt`` built with level 1, then level 2 (in this order)."""
    folder = tmp_path / "run-cache"
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE", str(folder))
    Path("raw").mkdir()
    Path("raw/in.txt").write_text("hello\n")
    for level in (1, 2):
        assert build(RcvDown(level))
    assert len(runs()) == 4
    return folder


def test_1_2_1_says_restorable_and_the_build_restores(cache: Path) -> None:
    """Before the third build both tasks (a chain) say so in the tree, with the entry's run;
    the build then runs nothing and restores from exactly the entries verify named."""
    before = cache_files(cache)
    code, out, err = luigi_repro("verify", *TASK)
    assert code == 1, err
    assert headings(out) == [
        f"✗ RcvDown(level=1)  {RESTORABLE}",
        f"✗ RcvStep(level=1)  {RESTORABLE}",
        "✓ HashableExternalFile(path=raw/in.txt)  COMPLETE",
    ]
    assert "PARAMS_CHANGED: parameters changed (level: '2' -> '1')" in out
    assert out.count("~ restorable from run cache: run ") == 2
    assert "(2 not up to date, 2 restorable from run cache)" in out.splitlines()[-1]

    tasks = verify_json(*TASK)
    assert tasks[""]["restorable"] == 2
    assert tasks[""]["not_up_to_date"] == 2
    for family in ("RcvStep", "RcvDown"):
        assert tasks[family]["status"] == "STALE"
        assert tasks[family]["ok"] is False
        assert set(tasks[family]["restorable"]) == {"action_key", "run_id", "host", "created"}
        assert tasks[family]["restorable"]["action_key"].startswith("sha256:")
    assert tasks["HashableExternalFile"]["restorable"] is None
    assert cache_files(cache) == before  # verify read the cache, and changed nothing in it

    assert build(RcvDown(1))
    assert runs() == []  # both restored: run() never called
    for family, output in (("RcvStep", "out/step.txt"), ("RcvDown", "out/down.txt")):
        record = json.loads(Path(output + ".repro.json").read_text())
        restored_from = record["run"]["restored_from"]
        assert {k: restored_from[k] for k in tasks[family]["restorable"]} == (
            tasks[family]["restorable"]
        )
    code, out, _ = luigi_repro("verify", *TASK)
    assert code == 0
    assert "restorable" not in out


def test_a_corrupt_entry_is_plain_stale_and_left_in_place(cache: Path) -> None:
    """Only an entry that parses counts; verify removes nothing (the run will, with a warning).
    Without RcvStep's entry it runs, so RcvDown's key cannot be known beforehand: verify does
    not promise a restore that depends on what a run will write (here it writes the same bytes
    as build 1, so the build does restore RcvDown)."""
    step_key = verify_json(*TASK)["RcvStep"]["restorable"]["action_key"]
    entry = cache / entry_name(step_key)
    entry.write_bytes(entry.read_bytes()[:40])
    tasks = verify_json(*TASK)
    assert tasks["RcvStep"]["restorable"] is None
    assert tasks["RcvDown"]["restorable"] is None
    assert tasks[""]["restorable"] == 0
    code, out, _ = luigi_repro("verify", *TASK)
    assert code == 1
    assert headings(out)[:2] == ["✗ RcvDown(level=1)  STALE", "✗ RcvStep(level=1)  STALE"]
    assert "restorable" not in out
    assert entry.exists()

    assert build(RcvDown(1))
    assert [run.split("_")[0] for run in runs()] == ["RcvStep"]


def test_an_upstream_task_that_will_run_makes_the_key_unknowable(cache: Path) -> None:
    """A changed raw input never seen before: RcvStep runs, so RcvDown cannot be restored."""
    Path("raw/in.txt").write_text("new text\n")
    tasks = verify_json(*TASK)
    assert tasks["RcvStep"]["restorable"] is None
    assert tasks["RcvDown"]["restorable"] is None
    Path("raw/in.txt").write_text("hello\n")  # back to what the entries were made from
    tasks = verify_json(*TASK)
    assert tasks[""]["restorable"] == 2


def test_without_a_cache_nothing_changes(cache: Path, tmp_path: Path) -> None:
    """No run cache configured: no mark, no lookup, the cache folder is not even created."""
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_REPRO_RUN_CACHE"}
    shutil.rmtree(cache)
    code, out, _ = luigi_repro("verify", *TASK, env=env)
    assert code == 1
    assert "restorable" not in out
    code, out, _ = luigi_repro("verify", "--format", "json", *TASK, env=env)
    document = json.loads(out)
    assert document["summary"]["restorable"] == 0
    assert all(task["restorable"] is None for task in document["tasks"])
    assert not cache.exists()
    code, out, _ = luigi_repro("verify", "--format", "tsv", *TASK, env=env)
    assert all(row.endswith("\t") for row in out.splitlines()[1:])


def test_tsv_has_a_restorable_column(cache: Path) -> None:
    """The last column is the entry's action key, empty for a task that is not restorable."""
    code, out, _ = luigi_repro("verify", "--format", "tsv", *TASK)
    assert code == 1
    rows = [row.split("\t") for row in out.splitlines()]
    assert rows[0] == ["task_id", "family", "kind", "status", "ok", "reasons", "restorable"]
    by_family = {row[1]: row for row in rows[1:]}
    assert by_family["RcvStep"][3] == "STALE"
    assert by_family["RcvStep"][6].startswith("sha256:")
    assert by_family["RcvDown"][6].startswith("sha256:")
    assert by_family["HashableExternalFile"][6] == ""


def test_changed_lists_restorable_tasks_and_counts_them(cache: Path) -> None:
    code, out, _ = luigi_repro("verify", "--changed", *TASK)
    assert code == 1
    lines = out.splitlines()
    assert headings(out) == [
        f"✗ RcvDown(level=1)  {RESTORABLE}",
        f"✗ RcvStep(level=1)  {RESTORABLE}",
    ]
    assert lines[-2] == "by reason: 2 PARAMS_CHANGED, 1 UPSTREAM_NOT_UP_TO_DATE"
    assert lines[-1].startswith("3 tasks (2 not up to date, 2 restorable from run cache)")
    code, out, _ = luigi_repro("verify", "--changed", "--format", "json", *TASK)
    document = json.loads(out)
    assert [task["family"] for task in document["tasks"]] == ["RcvDown", "RcvStep"]
    assert document["summary"]["restorable"] == 2


def test_dag_shows_the_same_verdict(cache: Path) -> None:
    """dot: the status words, their own colour and class, the entry's run in the tooltip."""
    code, out, _ = luigi_repro("dag", *TASK)
    assert code == 1
    step = next(line for line in out.splitlines() if 'label="RcvStep(level=1)' in line)
    assert f"\\n{RESTORABLE}" in step
    assert 'class="status_stale_restorable_from_run_cache"' in step
    assert 'fillcolor="#c9eef0"' in step
    assert "restorable from run cache: run " in step
    code, out, _ = luigi_repro("dag", "--format", "html", *TASK)
    assert code == 1
    assert RESTORABLE in out


def test_a_task_that_opts_out_is_plain_stale(cache: Path) -> None:
    """``run_cache = False``: never restored, so never marked."""
    for level in (1, 2):
        assert build(RcvUncached(level))
    runs()
    args = ["--module", "rcvpipeline", "RcvUncached", "--level", "1"]
    tasks = verify_json(*args)
    assert tasks["RcvUncached"]["status"] == "STALE"
    assert tasks["RcvUncached"]["restorable"] is None
    assert build(RcvUncached(1))
    assert len(runs()) == 1


def test_path_mode_leaves_tasks_unmarked(cache: Path) -> None:
    """Records alone give no action key (no code, no parameters to compute it from): the task
    mode says restorable, the record-only audit of the same outputs says STALE only."""
    Path("raw/in.txt").write_text("new text\n")
    assert build(RcvDown(2))
    runs()
    Path("raw/in.txt").write_text("hello\n")  # what build 2 was made from, kept in the cache
    tasks = verify_json("--module", "rcvpipeline", "RcvDown", "--level", "2")
    assert tasks["RcvStep"]["reasons"][0]["kind"] == "INPUT_CHANGED"
    assert tasks[""]["restorable"] == 2
    paths = verify_json("out/down.txt")
    assert paths[""]["not_up_to_date"] == 2
    assert paths[""]["restorable"] == 0
    code, out, _ = luigi_repro("verify", "out/down.txt")
    assert code == 1
    assert "restorable" not in out


def test_one_entry_read_per_stale_task_whose_key_is_known(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to date: no read at all. 1 -> 2 -> 1: one read per task. A raw input never seen
    before: one read (RcvStep's key is known, there is no entry), none for RcvDown, whose key
    depends on what RcvStep's run will write. No run cache configured: no read."""
    read: List[str] = []
    original = LocalStore.read_entry

    def counting(store: LocalStore, action_key: str) -> Optional[bytes]:
        read.append(action_key)
        return original(store, action_key)

    monkeypatch.setattr(LocalStore, "read_entry", counting)
    assert verify(RcvDown(2)).ok
    assert read == []
    assert verify(RcvDown(1)).restorable() == 2
    assert len(read) == 2
    read.clear()
    Path("raw/in.txt").write_text("new text\n")
    assert verify(RcvDown(1)).restorable() == 0
    assert len(read) == 1
    read.clear()
    monkeypatch.delenv("LUIGI_REPRO_RUN_CACHE")
    Path("raw/in.txt").write_text("hello\n")
    assert verify(RcvDown(1)).restorable() == 0
    assert read == []
