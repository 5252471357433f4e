"""How long starting takes: fresh interpreters importing the package, the command and Luigi.

Each contender is a new ``python`` process (the same interpreter and environment as this one),
timed from spawn to exit, run ``repeats`` times interleaved with the others; the medians are
printed in seconds and as ratios to an empty interpreter (``python -c pass``) and to
``import luigi``. ``import luigi_repro`` and the command's ``--help`` load nothing heavy; the
first task class (``from luigi_repro import TaskWithCheckingInputHash``) needs Luigi itself, so
its row is also shown minus ``import luigi``: what luigi_repro adds on top. Start-up does not grow
with any input, so there is no second size and no slope here.

Compiled bytecode is cached, as after an installation: the processes write and read it under a
temporary ``PYTHONPYCACHEPREFIX`` (never in the source tree), warmed by one untimed run each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

from benchmarks.common import Results, median_times

#: The target of the package import, in seconds of wall time from spawn to exit.
IMPORT_TARGET_SECONDS = 0.3

CONTENDERS: Tuple[Tuple[str, Sequence[str]], ...] = (
    ("python -c pass", ("-c", "pass")),
    ("import luigi", ("-c", "import luigi")),
    ("import luigi_repro", ("-c", "import luigi_repro")),
    ("luigi-repro --help", ("-m", "luigi_repro", "--help")),
    ("first task class", ("-c", "from luigi_repro import TaskWithCheckingInputHash")),
)


def _spawn(arguments: Sequence[str], env: Mapping[str, str]) -> Callable[[], None]:
    command: List[str] = [sys.executable, *arguments]

    def action() -> None:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)

    return action


def _cached_bytecode_env(cache: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def measure(results: Results, repeats: int) -> Dict[str, float]:
    """Median seconds of each contender; adds the rows, with the target and the ratios."""
    print(f"startup, fresh processes, bytecode cached, median of {repeats}")
    with tempfile.TemporaryDirectory(prefix="luigi-repro-pycache-") as cache:
        env = _cached_bytecode_env(cache)
        contenders = [(name, _spawn(args, env)) for name, args in CONTENDERS]
        for _, action in contenders:
            action()  # compiles and caches the bytecode
        medians = median_times(contenders, repeats)
    bare, luigi = medians["python -c pass"], medians["import luigi"]
    for name, seconds in medians.items():
        if name == "import luigi_repro":
            target = f"<= {IMPORT_TARGET_SECONDS} s"
            results.add("startup", name, seconds, "s", target, seconds <= IMPORT_TARGET_SECONDS)
        else:
            results.add("startup", name, seconds, "s")
    for name in ("import luigi_repro", "luigi-repro --help", "first task class"):
        results.add("startup", f"{name} / python -c pass", medians[name] / bare, "x")
        results.add("startup", f"{name} / import luigi", medians[name] / luigi, "x")
    results.add(
        "startup", "first task class - import luigi", medians["first task class"] - luigi, "s"
    )
    return medians


def run(results: Results, quick: bool) -> None:
    measure(results, repeats=5 if quick else 11)
