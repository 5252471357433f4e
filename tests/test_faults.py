"""SIGKILL at every step of the run protocol, many times over.

After each crash: no record vouches for content it did not see, no task is wrongly complete,
and the next build recovers with no manual clean-up. ``LUIGI_REPRO_STRESS=1`` runs many more
trials than the bounded default.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import luigi
import pytest
from faults import POINTS, A, M, Z, expected
from pipelines import runs, write_raw

from luigi_repro import RecordError, judging
from luigi_repro.fingerprint import hash_file
from luigi_repro.record import parse_record

TESTS = Path(__file__).resolve().parent
STRESS = os.environ.get("LUIGI_REPRO_STRESS") == "1"
ROUNDS = 8 if STRESS else 1
TRIALS: List[Tuple[str, str]] = [
    (point, str(nth)) for point in POINTS for nth in ("1", "2", "3")
] * ROUNDS + [("random:0.15", "1")] * (40 if STRESS else 6)


def crash_build(point: str, nth: str) -> int:
    """Build Z in a child that SIGKILLs itself at ``point``; its exit status."""
    result = subprocess.run(
        [sys.executable, str(TESTS / "faults.py"), point, nth],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    return result.returncode


def check_invariants(raw: str) -> List[str]:
    """What a crash may never leave: a record that vouches for unseen content, or a false
    "complete". Returns the violations found."""
    problems = []
    for record_path in sorted(Path("out").glob("*.repro.json")):
        try:
            record = parse_record(record_path.read_bytes(), str(record_path))
        except RecordError as exc:
            problems.append(f"corrupt record {record_path}: {exc}")
            continue
        for entry in record.outputs:
            if not os.path.exists(entry.uri):
                continue  # judged MISSING_OUTPUT; never complete
            actual, _ = hash_file(entry.uri, "xxh3_128")
            if actual != entry.fingerprint:
                problems.append(f"{record_path} vouches for content it did not see: {entry.uri}")
    want = expected(raw)
    with judging() as judge:
        for task in (A(), M(), Z()):
            if judge.is_complete(task):
                for target in luigi.task.flatten(task.output()):
                    if Path(target.path).read_text() != want[target.path]:
                        problems.append(f"{task} is complete but {target.path} is stale")
    return problems


@pytest.mark.stress
def test_sigkill_at_every_step_never_leaves_a_lie_and_always_recovers() -> None:
    """Many crashes at every protocol step (and at random moments), each followed by checks
    and a normal build that must repair everything."""
    outcomes: Dict[str, int] = {}
    violations: List[str] = []
    for trial, (point, nth) in enumerate(TRIALS):
        raw = f"raw input, version {trial % 3}\n"  # changes every trial: tasks really rerun
        write_raw("a", raw)
        status = crash_build(point, nth)
        outcomes[point] = outcomes.get(point, 0) + (status == -9)
        violations += [f"trial {trial} ({point}#{nth}): {p}" for p in check_invariants(raw)]
        assert luigi.build([Z()], local_scheduler=True, log_level="ERROR"), f"trial {trial}"
        runs()
        with judging() as judge:
            assert judge.is_complete(Z()), f"trial {trial}: not repaired"
        want = expected(raw)
        for path, content in want.items():
            assert Path(path).read_text() == content, f"trial {trial}: {path}"
    assert violations == []
    killed = sum(outcomes.values())
    print(f"\n{len(TRIALS)} crash trials, {killed} killed mid-build: {outcomes}")
    assert killed >= len(POINTS)  # every named step was really reached and crashed at
    for point in POINTS:
        assert outcomes[point] >= 1, f"the build never reached {point}"
