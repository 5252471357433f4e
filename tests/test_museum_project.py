"""A port of a public project's shape, used as its users would: nested wrappers, one task per
exported file listed from a folder, several workers, ``luigi`` and ``luigi-repro verify`` in fresh
processes from the project's folder (tests/projects/museum).

What a user of this shape expects: a new export is picked up and everything that reads the
exports through the wrapper is computed again; an edit reruns exactly the tasks it reaches; the
audit agrees with every build.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import List

import pytest
from sales import run

PROJECT = Path(__file__).resolve().parent / "projects" / "museum"


@pytest.fixture
def museum(tmp_path: Path) -> Path:
    """A fresh copy of the project, as a clone would give it."""
    target = tmp_path / "museum"
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns("__pycache__", "output"))
    return target


def build(project: Path) -> List[str]:
    """``luigi --module pipeline FillDb --workers 3``, which must succeed: the families that
    ran (from the project's own run log), sorted."""
    status, log = run(
        project,
        "luigi",
        "--module",
        "pipeline",
        "FillDb",
        "--local-scheduler",
        "--workers",
        "3",
        LUIGI_REPRO_STAT_CACHE=str(project / "stat-cache.sqlite3"),
    )
    assert status == 0, log[-3000:]
    assert "This progress looks :)" in log, log[-3000:]
    runs = project / "runs.log"
    ran = sorted(line.split("_")[0] for line in runs.read_text().split()) if runs.exists() else []
    runs.unlink(missing_ok=True)
    return ran


def verify(project: Path, *what: str) -> int:
    status, log = run(
        project,
        "luigi_repro",
        "verify",
        *what,
        LUIGI_REPRO_STAT_CACHE=str(project / "stat-cache.sqlite3"),
    )
    assert status in (0, 1), log[-3000:]
    return status


def test_the_museum_pipeline_as_its_users_run_it(museum: Path) -> None:
    assert build(museum) == [
        "Diagnostics",
        "GomusToDb",
        "PostPerformanceToDb",
        "PostsFile",
        "PostsFile",
    ]
    assert verify(museum, "--module", "pipeline", "FillDb") == 0
    assert build(museum) == []  # nothing changed: nothing runs

    # An export edited without changing its number of posts: the summary is computed again,
    # writes the same, and the report after it is cut off early.
    posts = museum / "data" / "posts"
    (posts / "2026-12-01.csv").write_text("post_id,text\n3,New EXHIBITION opens\n")
    assert build(museum) == ["PostPerformanceToDb", "PostsFile"]

    # A new export: listed by the wrapper, cleaned, and read by the summary through the wrapper.
    (posts / "2026-12-02.csv").write_text("post_id,text\n4,Late opening\n5,Tour\n")
    assert verify(museum, "--module", "pipeline", "FillDb") == 1
    assert build(museum) == ["Diagnostics", "PostPerformanceToDb", "PostsFile"]
    assert (museum / "output" / "post_performance.txt").read_text() == "posts: 5\n"

    # The ticket export: only what reads it.
    (museum / "data" / "gomus" / "orders.csv").write_text("order_id,tickets\n10,2\n")
    assert build(museum) == ["Diagnostics", "GomusToDb"]
    assert verify(museum, "--module", "pipeline", "FillDb") == 0
    report = str(museum / "output" / "diagnostics.txt")
    assert verify(museum, report) == 0  # from the records alone
    assert verify(museum, report) == 0  # and again, replayed
    assert re.search(r"tickets: 2", Path(report).read_text())
