"""Child processes whose output goes to a file, for tests that run several at once."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest


class LoggedProcess:
    """A child process writing to ``log``; :meth:`finish` waits and fails the test if it failed.

    Files, not pipes: processes that run at once are waited for one by one, and a pipe nobody
    reads yet could fill up and stall a process while it holds a lock the others wait for.
    """

    def __init__(self, command: List[str], log: Path, env: Optional[Dict[str, str]] = None) -> None:
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                command, env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def finish(self, timeout: float = 240) -> None:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"{self.log.stem} still running after {timeout} s:\n{self.output()}")
        assert self.process.returncode == 0, self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]
