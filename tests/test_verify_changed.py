"""``luigi-repro verify`` at 300+ tasks: ``--changed``, readable upstream reasons, the tree's
lines, wrappers that say what they wait for, and a reader that leaves early (``| head``).

Everything runs the installed console script, as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from pipelines import build
from v12pipeline import V12Root, V12Top, V12Wrapper, leaves, write_raw

PARTS = 300


def luigi_repro(*args: str, env: Optional[Dict[str, str]] = None) -> Tuple[int, str, str]:
    """Run the console script; returns (exit status, stdout, stderr)."""
    script = shutil.which("luigi-repro")
    assert script is not None
    environment = dict(env if env is not None else os.environ, PYTHONIOENCODING="utf-8")
    result = subprocess.run([script, *args], capture_output=True, text=True, env=environment)
    return result.returncode, result.stdout, result.stderr


def as_json(*args: str) -> Tuple[int, Dict[str, Any]]:
    code, out, err = luigi_repro("verify", "--format", "json", *args)
    assert code in (0, 1), err
    document: Dict[str, Any] = json.loads(out)
    return code, document


def headings(out: str) -> List[str]:
    """The task lines of a ``--changed`` listing (a mark, a label, a status)."""
    return [line for line in out.splitlines() if line.startswith(("✓", "✗"))]


@pytest.fixture
def big() -> List[str]:
    """300 partitions gathered by one task, read by another: built, all up to date."""
    write_raw([str(i) for i in range(PARTS)])
    assert build(V12Top(PARTS))
    return ["--module", "v12pipeline", "V12Top", "--parts", str(PARTS)]


def test_changed_at_300_tasks_lists_only_the_affected_tasks(big: List[str]) -> None:
    """One changed input of 300: three tasks listed, a count by reason, every format."""
    code, out, err = luigi_repro("verify", "--changed", *big)
    assert (code, out.count("\n")) == (0, 1), err  # nothing changed: the summary line alone
    assert "602 tasks (all up to date)" in out
    Path("raw/7.txt").write_text("edited\n")
    code, out, _ = luigi_repro("verify", "--changed", *big)
    assert code == 1
    assert headings(out) == [
        f"✗ V12Top(parts={PARTS})  STALE",
        f"✗ V12Gather(parts={PARTS})  STALE",
        "✗ V12Part(i=7, shard=s, alpha=a)  STALE",
    ]
    assert "UPSTREAM_NOT_UP_TO_DATE: V12Part(i=7, shard=s, alpha=a) (STALE)" in out
    assert "INPUT_CHANGED: input requires()" in out
    lines = out.splitlines()
    assert lines[-2] == "by reason: 1 INPUT_CHANGED, 2 UPSTREAM_NOT_UP_TO_DATE"
    assert lines[-1].startswith("602 tasks (3 not up to date)")
    assert len(lines) < 12  # not 600 lines of tasks that are fine
    full_code, full, _ = luigi_repro("verify", *big)
    assert full_code == 1
    assert full.count("\n") > 600

    code, document = as_json("--changed", *big)
    assert code == 1
    assert document["changed_only"] is True
    assert document["reason_counts"] == {"INPUT_CHANGED": 1, "UPSTREAM_NOT_UP_TO_DATE": 2}
    assert [t["family"] for t in document["tasks"]] == ["V12Top", "V12Gather", "V12Part"]
    assert document["summary"]["tasks"] == 602
    assert document["summary"]["not_up_to_date"] == 3
    code, document = as_json(*big)
    assert document["changed_only"] is False
    assert len(document["tasks"]) == 602
    assert document["reason_counts"] == {"INPUT_CHANGED": 1, "UPSTREAM_NOT_UP_TO_DATE": 2}

    code, out, _ = luigi_repro("verify", "--changed", "--format", "tsv", *big)
    rows = out.splitlines()
    assert code == 1
    assert len(rows) == 1 + 3
    assert rows[0].startswith("task_id\t")

    code, out, _ = luigi_repro("verify", "--changed", "out")  # PATH mode: every record in out/
    assert code == 1
    assert sorted(headings(out)) == [
        f"✗ V12Gather(parts={PARTS})  STALE",
        "✗ V12Part(i=7, shard=s, alpha=a)  STALE",
        f"✗ V12Top(parts={PARTS})  STALE",
    ]
    assert "by reason: 1 INPUT_CHANGED, 2 UPSTREAM_NOT_UP_TO_DATE" in out
    assert "602 tasks (3 not up to date)" in out.splitlines()[-1]  # 302 records, 300 raw files


def test_many_upstream_tasks_are_named_by_family_and_shortened(big: List[str]) -> None:
    """14 changed partitions: one phrase with the first few, an ellipsis and the last."""
    for i in range(14):
        Path(f"raw/{i}.txt").write_text("edited\n")
    code, out, _ = luigi_repro("verify", "--changed", *big)
    assert code == 1
    expected = (
        "UPSTREAM_NOT_UP_TO_DATE: 14 V12Part tasks: V12Part(i=0, shard=s, alpha=a), "
        "V12Part(i=1, shard=s, alpha=a), V12Part(i=2, shard=s, alpha=a), …, "
        "V12Part(i=13, shard=s, alpha=a) (STALE)"
    )
    assert expected in out
    assert "by reason: 14 INPUT_CHANGED, 2 UPSTREAM_NOT_UP_TO_DATE" in out
    code, document = as_json("--changed", "out")
    assert document["reason_counts"] == {"INPUT_CHANGED": 14, "UPSTREAM_NOT_UP_TO_DATE": 2}
    gather = next(t for t in document["tasks"] if t["family"] == "V12Gather")
    assert len(gather["reasons"]) == 14  # the JSON keeps one reason per upstream task


def test_a_reader_that_leaves_early_ends_the_command_quietly(big: List[str]) -> None:
    """| head: no Broken pipe message or traceback, and the verdict's own exit status."""
    Path("raw/7.txt").write_text("edited\n")
    script = shutil.which("luigi-repro")
    assert script is not None
    for args in (["verify", *big], ["verify", "out"], ["show", "out/top.txt"], ["--help"]):
        process = subprocess.Popen([script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()  # the reader is gone before anything is written
        err = process.stderr.read().decode()
        code = process.wait(timeout=300)
        assert err == "", (args, err)
        assert code == (1 if args[0] == "verify" else 0), args
    shell = f"{script} verify {' '.join(big)} | head -n 2"
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True)
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 2


def expected_tree(lines: List[str]) -> List[str]:
    return [line.rstrip() for line in lines]


def test_the_tree_draws_branches_and_lines_at_three_levels() -> None:
    """├─ for a child with siblings after it, └─ for the last, │ only where a sibling follows."""
    write_raw(leaves())
    assert build(V12Root())
    Path("raw/b2.txt").write_text("edited\n")
    code, out, _ = luigi_repro("verify", "--module", "v12pipeline", "V12Root")
    assert code == 1
    assert out.splitlines()[:-1] == [
        "✗ V12Root()  STALE",
        "│  - UPSTREAM_NOT_UP_TO_DATE: V12Mid(side=b) (STALE)",
        "├─ ✓ V12Mid(side=a)  UP_TO_DATE",
        "│  ├─ ✓ V12Leaf(name=a1)  UP_TO_DATE",
        "│  │  └─ ✓ HashableExternalFile(path=raw/a1.txt)  COMPLETE",
        "│  └─ ✓ V12Leaf(name=a2)  UP_TO_DATE",
        "│     └─ ✓ HashableExternalFile(path=raw/a2.txt)  COMPLETE",
        "└─ ✗ V12Mid(side=b)  STALE",
        "   │  - UPSTREAM_NOT_UP_TO_DATE: V12Leaf(name=b2) (STALE)",
        "   ├─ ✓ V12Leaf(name=b1)  UP_TO_DATE",
        "   │  └─ ✓ HashableExternalFile(path=raw/b1.txt)  COMPLETE",
        "   └─ ✗ V12Leaf(name=b2)  STALE",
        "      │  - INPUT_CHANGED: input requires() ("
        + str(Path("raw/b2.txt").resolve())
        + ") changed"
        + out.split("raw/b2.txt) changed", 1)[1].split("\n", 1)[0],
        "      └─ ✓ HashableExternalFile(path=raw/b2.txt)  COMPLETE",
    ]
    code, out, _ = luigi_repro("verify", "out/root.txt")  # PATH mode draws the same way
    assert "└─ ✗ V12Mid(side=b)  STALE" in out
    assert "   └─ ✗ V12Leaf(name=b2)  STALE" in out
    assert "│  └─ ✓ V12Leaf(name=a2)  UP_TO_DATE" in out


def test_an_incomplete_wrapper_names_what_it_waits_for() -> None:
    """A WrapperTask that is not complete names the wrapped task that is not, and its status."""
    write_raw(leaves())
    assert build(V12Wrapper())
    Path("out/leaf/a2.txt").write_text("tampered\n")
    code, out, _ = luigi_repro("verify", "--changed", "--module", "v12pipeline", "V12Wrapper")
    assert code == 1
    assert "✗ V12Wrapper()  INCOMPLETE" in out
    assert "UPSTREAM_NOT_UP_TO_DATE: V12Leaf(name=a2) (OUTPUT_MODIFIED)" in out
    code, document = as_json("--module", "v12pipeline", "V12Wrapper")
    wrapper = next(t for t in document["tasks"] if t["family"] == "V12Wrapper")
    assert [r["message"] for r in wrapper["reasons"]] == [
        "wrapped task V12Leaf(name=a2) is OUTPUT_MODIFIED"
    ]


def test_parameters_keep_their_declared_order_in_both_modes(big: List[str]) -> None:
    """Task and PATH mode show V12Part(i, shard, alpha) as declared, PATH mode from the order
    the record keeps: also without the pipeline's code, which a record-only audit never needs."""
    Path("raw/7.txt").write_text("edited\n")
    declared = "V12Part(i=7, shard=s, alpha=a)"
    assert declared in luigi_repro("verify", "--changed", *big)[1]
    assert declared in luigi_repro("verify", "--changed", "out/top.txt")[1]
    without_code = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    worktree = str(Path(__file__).resolve().parent.parent)
    without_code["PYTHONPATH"] = worktree  # luigi_repro itself, not the tests' pipelines
    _, out, err = luigi_repro("verify", "--changed", "out/top.txt", env=without_code)
    assert declared in out, err


def test_an_own_option_after_the_task_gets_one_line() -> None:
    """--changed after the task's arguments: one sentence with the hint, no usage text."""
    write_raw(leaves())
    code, _, err = luigi_repro(
        "verify", "--module", "v12pipeline", "V12Leaf", "--name", "a1", "--changed"
    )
    assert code == 2
    assert err.splitlines() == [
        "luigi-repro: error: unrecognized arguments: --changed (put luigi-repro's own options "
        "such as --changed before --module)"
    ]


def test_a_missing_path_is_no_such_file_even_without_a_module() -> None:
    """Never Luigi's list of its own tasks: the file is missing, and that is what is said."""
    code, out, err = luigi_repro("verify", "nosuchfile.csv")
    assert (code, out) == (2, "")
    assert err == "luigi-repro: error: no such file: nosuchfile.csv\n"
    code, _, err = luigi_repro("verify", "data/missing.parquet", "--changed")
    assert (code, err) == (2, "luigi-repro: error: no such file: data/missing.parquet\n")
    code, _, err = luigi_repro("verify", "V12Leaf")
    assert code == 2
    assert "Candidates" not in err
    assert "no such file: V12Leaf (to verify a task, give its module: --module M V12Leaf)" in err
    code, _, err = luigi_repro("verify", "v12pipeline.V12Leaf", "--name", "a1")  # Luigi's way
    assert "no such file" not in err
