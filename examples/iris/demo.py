"""End-to-end demo: build the Iris pipeline, audit it, edit a raw input, audit and rebuild again.

Run from anywhere: ``python3 examples/iris/demo.py``. Everything happens in
``examples/iris/work/`` (recreated on each run; the repository's data file is never touched).
Each step prints the command a user would type. The demo exits with status 1 if any step does
not behave as luigi_repro promises, so it doubles as an end-to-end test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
TASK = ["--module", "pipeline", "Report"]


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 74 - len(text)), flush=True)


def run(shown: str, command: Sequence[str], expect: int, keep: str = "all") -> str:
    """Run a command in the work folder, print it and (part of) its output, check its status."""
    print(f"$ {shown}", flush=True)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [sys.executable, *command], cwd=WORK, env=env, capture_output=True, text=True
    )
    output = result.stdout + result.stderr
    lines = output.splitlines()
    if keep == "luigi":  # Luigi is chatty: keep its summary and luigi_repro's early-cutoff notes
        lines = _luigi_summary(lines)
    print("\n".join(lines), flush=True)
    if result.returncode != expect:
        print(
            f"demo: expected exit status {expect}, got {result.returncode}:\n{output}",
            file=sys.stderr,
        )
        sys.exit(1)
    return output


def _luigi_summary(lines: List[str]) -> List[str]:
    kept, inside = [], False
    for line in lines:
        if "early cutoff" in line:
            kept.append("  " + line.split("luigi_repro: ", 1)[-1])
        if "===== Luigi Execution Summary =====" in line:
            inside = not inside
            continue
        if inside and line.strip() and "This progress looks" not in line:
            kept.append(line)
    return kept


def luigi_build() -> str:
    return run(
        "luigi --module pipeline Report --local-scheduler",
        ["-m", "luigi", *TASK, "--local-scheduler", "--log-level", "INFO"],
        expect=0,
        keep="luigi",
    )


def verify(expect: int, *extra: str) -> str:
    shown = " ".join(["luigi-repro verify", *extra] if extra else ["luigi-repro verify", *TASK])
    return run(shown, ["-m", "luigi_repro", "verify", *(extra or TASK)], expect=expect)


def require(condition: bool, what: str) -> None:
    if not condition:
        print(f"demo: {what}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK / "data").mkdir(parents=True)
    shutil.copy(HERE / "data" / "iris.csv", WORK / "data" / "iris.csv")
    print(f"Working in {WORK}")

    banner("1. Build the pipeline with Luigi")
    luigi_build()

    banner("2. Audit it: everything is up to date")
    verify(0)

    banner("3. Edit one raw value (flower 1: petal length 1.4 -> 1.5)")
    raw = WORK / "data" / "iris.csv"
    lines = raw.read_text().splitlines(keepends=True)
    require(lines[1].startswith("5.1,3.5,1.4,0.2,"), "unexpected first data row")
    lines[1] = lines[1].replace("5.1,3.5,1.4,", "5.1,3.5,1.5,", 1)
    raw.write_text("".join(lines))
    print("$ sed -i '2s/5.1,3.5,1.4,/5.1,3.5,1.5,/' data/iris.csv")

    banner("4. Audit again: the edited input and exactly the tasks downstream of it")
    output = verify(1)
    require("INPUT_CHANGED: input requires() (" in output, "verify did not name the input")
    require("data/iris.csv) changed" in output, "verify did not name data/iris.csv")

    banner("5. Rebuild: only the stale tasks run")
    luigi_build()
    verify(0)

    banner("6. A change that does not alter the cleaned data: early cutoff")
    raw.write_text(raw.read_text().replace(",setosa\n", ", Setosa \n", 1))
    print("$ sed -i '0,/,setosa$/s//, Setosa /' data/iris.csv   # same after cleaning")
    output = luigi_build()
    require("early cutoff" in output, "no early cutoff after a cosmetic raw edit")
    verify(0)

    banner("7. Audit the report from its records alone, and show where it came from")
    verify(0, "results/report.md")
    run(
        "luigi-repro show --lineage results/report.md",
        ["-m", "luigi_repro", "show", "--lineage", "results/report.md"],
        expect=0,
    )
    print("\nDemo finished: every step behaved as expected.")


if __name__ == "__main__":
    main()
