"""Many processes racing on the same task and the same records, round after round.

Bounded by default; ``LUIGI_REPRO_STRESS=1`` runs the long version.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from pipelines import families, runs, write_raw
from racers import Cold

TESTS = Path(__file__).resolve().parent
STRESS = os.environ.get("LUIGI_REPRO_STRESS") == "1"
PROCESSES = 8 if STRESS else 4
ROUNDS = 25 if STRESS else 3


def race(rounds: int, processes: int) -> None:
    stop = Path("stop-reading")
    reader = subprocess.Popen(
        [sys.executable, str(TESTS / "racers.py"), "read", str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for round_number in range(rounds):
            write_raw("hot", f"round {round_number}\n")
            builders: List[subprocess.Popen[bytes]] = [
                subprocess.Popen([sys.executable, str(TESTS / "racers.py"), "build"])
                for _ in range(processes)
            ]
            assert [b.wait(120) for b in builders] == [0] * processes
            assert families(runs()) == ["Cold", "Hot"], f"round {round_number}"
            assert Cold().complete()
    finally:
        stop.touch()
        output, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0
    assert output.strip() == "0", "a reader saw a partial or corrupt record"


@pytest.mark.stress
def test_racing_builders_with_file_locks() -> None:
    """N builders per round on one pipeline: each task runs once per round, no corrupt record."""
    race(ROUNDS, PROCESSES)


@pytest.mark.stress
def test_racing_builders_with_redis_locks(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same race with the Redis lock backend."""
    monkeypatch.setenv("LUIGI_REPRO_LOCK", redis_url)
    race(ROUNDS, PROCESSES)
