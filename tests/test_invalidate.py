"""``luigi-repro invalidate``: records go, outputs stay, and the next build reruns what was asked.

Everything runs as a user would: the console script and the builds in fresh processes, over
the pipeline of tests/invalidation_pipeline.py.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import boto3
import pytest
from lockholder import lock_held_elsewhere

MODULE = ("--module", "invalidation_pipeline")
OUTPUTS = (
    "out/clean-a.txt",
    "out/parts-a",
    "out/clean-b.txt",
    "out/parts-b",
    "out/merged.txt",
    "out/report.txt",
)


def luigi_repro(*args: str, stdin: int = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    """The installed console script, with this environment (PYTHONPATH names this copy)."""
    return subprocess.run(
        ["luigi-repro", *args], stdin=stdin, capture_output=True, text=True, env=dict(os.environ)
    )


def build(task: str = "M12Report()") -> List[str]:
    """Build ``task`` in a fresh process; the tasks whose run() ran, in order."""
    Path("runs.log").write_text("")
    script = (
        "import luigi, invalidation_pipeline as p\n"
        f"assert luigi.build([p.{task}], local_scheduler=True, log_level='ERROR')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=dict(os.environ))
    return Path("runs.log").read_text().splitlines()


def snapshot() -> Dict[str, Tuple[bytes, int]]:
    """Every output file (folders' files too): its bytes and its modification time."""
    found = {}
    for output in OUTPUTS:
        paths = [Path(output)] if Path(output).is_file() else sorted(Path(output).iterdir())
        for path in paths:
            found[str(path)] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


def records() -> List[str]:
    return sorted(str(path) for path in Path("out").glob("*.repro.json"))


def verify() -> Tuple[int, Dict[str, List[str]]]:
    """``verify --format json`` of the whole pipeline: exit status, reason kinds per task."""
    result = luigi_repro("verify", "--format", "json", *MODULE, "M12Report")
    document = json.loads(result.stdout)
    kinds = {t["label"]: [r["kind"] for r in t["reasons"]] for t in document["tasks"]}
    return result.returncode, kinds


@pytest.fixture
def built() -> None:
    Path("raw").mkdir()
    Path("raw/a.txt").write_text("Alpha\nAardvark\n")
    Path("raw/b.txt").write_text("Beta\n")
    ran = build()
    assert sorted(ran[:2]) == ["M12Clean(name=a)", "M12Clean(name=b)"]
    assert ran[2:] == ["M12Merge()", "M12Report()"]


def test_invalidated_task_reruns_alone_and_its_outputs_are_untouched(built: None) -> None:
    """Both records of Clean(a) (a file and a folder output) go, no output changes; verify
    says NO_RECORD; a build reruns exactly Clean(a), and Merge cuts off (same bytes)."""
    before, all_records = snapshot(), records()
    result = luigi_repro("invalidate", "--yes", "--task", "M12Clean(name=a)", *MODULE, "M12Report")
    assert result.returncode == 0, result.stderr
    assert "Removed 2 record(s) of 1 task(s)" in result.stdout
    assert snapshot() == before
    gone = {"out/clean-a.txt.repro.json", "out/parts-a.repro.json"}
    assert records() == sorted(set(all_records) - gone)
    code, kinds = verify()
    assert code == 1
    assert kinds["M12Clean(name=a)"] == ["NO_RECORD", "NO_RECORD"]
    assert kinds["M12Clean(name=b)"] == []
    assert build() == ["M12Clean(name=a)"]
    assert verify()[0] == 0


def test_downstream_reruns_everything_that_depends_on_the_task(built: None) -> None:
    """--downstream: Clean(b), Merge and Report lose their records and all rerun (a task with
    no record has nothing to cut off against); Clean(a) keeps its record and does not."""
    before = snapshot()
    result = luigi_repro(
        "invalidate", "--yes", "--downstream", "--task", "M12Clean(name=b)", *MODULE, "M12Report"
    )
    assert result.returncode == 0, result.stderr
    assert "Removed 4 record(s) of 3 task(s)" in result.stdout
    assert snapshot() == before
    assert records() == ["out/clean-a.txt.repro.json", "out/parts-a.repro.json"]
    assert build() == ["M12Clean(name=b)", "M12Merge()", "M12Report()"]


def test_family_name_picks_every_instance_and_no_task_picks_the_root(built: None) -> None:
    """--task M12Clean names both instances; without --task the root alone is invalidated."""
    family = luigi_repro("invalidate", "--dry-run", "--task", "M12Clean", *MODULE, "M12Report")
    assert family.returncode == 0, family.stderr
    assert "Would remove 4 record(s) of 2 task(s) (dry run)." in family.stdout
    root = luigi_repro("invalidate", "--yes", *MODULE, "M12Report")
    assert root.returncode == 0, root.stderr
    assert "out/report.txt.repro.json" not in records()
    assert build() == ["M12Report()"]


def test_dry_run_lists_and_removes_nothing(built: None) -> None:
    before = records()
    result = luigi_repro("invalidate", "--dry-run", "--downstream", *MODULE, "M12Merge")
    assert result.returncode == 0, result.stderr
    assert "out/merged.txt.repro.json" in result.stdout
    assert "Would remove 1 record(s) of 1 task(s) (dry run)." in result.stdout
    assert records() == before


def test_without_a_terminal_and_without_yes_it_refuses(built: None) -> None:
    """Exit 2, one sentence naming --yes; nothing removed."""
    before = records()
    result = luigi_repro("invalidate", *MODULE, "M12Report")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "luigi-repro: error: invalidate asks for confirmation but standard input is not a "
        "terminal; pass --yes"
    ]
    assert records() == before


@pytest.mark.parametrize(("answer", "code", "removed"), [("n", 1, False), ("y", 0, True)])
def test_on_a_terminal_it_asks_first(built: None, answer: str, code: int, removed: bool) -> None:
    controller, terminal = pty.openpty()
    try:
        os.write(controller, f"{answer}\n".encode())
        result = luigi_repro("invalidate", *MODULE, "M12Report", stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == code, result.stderr
    assert ("out/report.txt.repro.json" not in records()) is removed
    assert ("Nothing was removed." in result.stdout) is not removed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--task", "M12Nope", *MODULE, "M12Report"), "no task named 'M12Nope' is in the graph"),
        ((), "nothing to invalidate: give a root task"),
        (("--module", "invalidation_pipeline", "M12Missing"), "is the task's module given"),
        (
            ("--task", "HashableExternalFile", *MODULE, "M12Report"),
            "is not a luigi_repro task: it has no record to remove",
        ),
    ],
)
def test_bad_requests_exit_2_with_one_sentence(
    built: None, args: Tuple[str, ...], message: str
) -> None:
    before = records()
    result = luigi_repro("invalidate", "--yes", *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert records() == before


def test_downstream_of_an_input_file_invalidates_its_users(built: None) -> None:
    """An external file has no record, but --downstream of it reaches the tasks reading it."""
    result = luigi_repro(
        "invalidate",
        "--yes",
        "--downstream",
        "--task",
        "HashableExternalFile(path=raw/b.txt)",
        *MODULE,
        "M12Report",
    )
    assert result.returncode == 0, result.stderr
    assert "Removed 4 record(s) of 3 task(s)" in result.stdout


def test_a_run_holding_the_lock_is_waited_for(built: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """While another process holds an output's run lock, the record is not removed: with a
    short lock timeout the command fails (exit 2) and the record is still there."""
    with lock_held_elsewhere("out/.report.txt.repro.lock"):
        monkeypatch.setenv("LUIGI_REPRO_LOCK_TIMEOUT", "1")
        result = luigi_repro("invalidate", "--yes", *MODULE, "M12Report")
    monkeypatch.setenv("LUIGI_REPRO_LOCK_TIMEOUT", "60")
    assert result.returncode == 2
    assert "out/report.txt.repro.json" in records()
    again = luigi_repro("invalidate", "--yes", *MODULE, "M12Report")
    assert again.returncode == 0, again.stderr
    assert "out/report.txt.repro.json" not in records()


def test_s3_output_loses_its_record_object_and_keeps_its_content(
    built: None, s3_bucket: str
) -> None:
    """The record of an S3 output is an object beside it: removed; the output object stays."""
    assert build(f"M12Upload(bucket={s3_bucket!r})") == ["M12Upload(bucket=" + s3_bucket + ")"]
    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == ["clean-a.txt", "clean-a.txt.repro.json"]
    result = luigi_repro("invalidate", "--yes", *MODULE, "M12Upload", "--bucket", s3_bucket)
    assert result.returncode == 0, result.stderr
    assert "Removed 1 record(s) of 1 task(s)" in result.stdout
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == ["clean-a.txt"]
    body = s3.get_object(Bucket=s3_bucket, Key="clean-a.txt")["Body"].read()
    assert body == b"alpha\naardvark\n"
    assert build(f"M12Upload(bucket={s3_bucket!r})") == ["M12Upload(bucket=" + s3_bucket + ")"]
