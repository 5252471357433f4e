"""The ``examples/sales`` port (a real project's shape), copied, built and audited the way its
user would: ``luigi`` and ``luigi-repro verify`` in fresh processes, from the project's folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sales"
TASK = ["TrainModel", "--date", "2024-03-01"]


def copy_project(tmp_path: Path) -> Path:
    """A fresh copy of the example, as a clone would give it."""
    target = tmp_path / "sales"
    shutil.copytree(
        EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", "logs", "outcomes")
    )
    return target


def _env(project: Path, **overrides: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(project), env.get("PYTHONPATH", "")])
    # Reads under the temporary folder are never counted; the copy lives under pytest's, so the
    # processes get a temporary folder of their own beside it.
    scratch = project.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    env["TMPDIR"] = str(scratch)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # an edit in the same second must not reuse a .pyc
    env.update(overrides)
    return env


#: Run a command as root without the power to override file permissions: the user of a shared
#: folder, for whom another user's files are as protected as they are for anyone (the suite runs
#: as root, and an unprivileged user could not reach the interpreter under /root).
AS_ORDINARY_USER = ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner")


def run(project: Path, *command: str, prefix: Sequence[str] = (), **env: str) -> Tuple[int, str]:
    """``python -m <command>`` in the project's folder: exit status and everything printed."""
    done = subprocess.run(
        [*prefix, sys.executable, "-m", *command],
        cwd=project,
        env=_env(project, **env),
        capture_output=True,
        text=True,
        timeout=240,
    )
    return done.returncode, done.stdout + done.stderr


def luigi(project: Path, prefix: Sequence[str] = (), **env: str) -> Tuple[int, str]:
    """``luigi --module pipeline TrainModel …``: exit status and log (not checked)."""
    return run(
        project, "luigi", "--module", "pipeline", *TASK, "--local-scheduler", prefix=prefix, **env
    )


def ran_tasks(log: str) -> List[str]:
    """The tasks that ran, from luigi_repro's "X runs: …" lines."""
    return sorted(re.findall(r"luigi_repro: (\w+)\(date=2024-03-01, strategy=median\) runs: ", log))


def build(project: Path, prefix: Sequence[str] = (), **env: str) -> Tuple[List[str], str]:
    """``luigi --module pipeline TrainModel …``, which must succeed; the tasks that ran, and the
    log."""
    status, log = luigi(project, prefix, **env)
    assert status == 0, log[-3000:]
    assert "This progress looks :)" in log, log[-3000:]
    return ran_tasks(log), log


def verify(project: Path, *extra: str, prefix: Sequence[str] = (), **env: str) -> Tuple[int, str]:
    """``luigi-repro verify --module pipeline TrainModel …`` (or ``verify PATH…`` when paths are
    given): exit status and report."""
    what = list(extra) if extra else ["--module", "pipeline", *TASK]
    return run(project, "luigi_repro", "verify", *what, prefix=prefix, **env)


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first ``old`` in the file by ``new`` (an edit by hand)."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
