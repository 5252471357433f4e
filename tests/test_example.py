"""The README's first command: the Iris demo runs end to end and audits what it should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "iris"


def test_demo_names_exactly_the_edited_input_and_the_tasks_downstream() -> None:
    """demo.py builds, audits, edits one raw value; verify then names that input and only the
    tasks downstream of it, a rebuild repairs them, and a cosmetic edit is cut off early."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "demo.py")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    step4 = out.split("=== 4.", 1)[1].split("=== 5.", 1)[0]
    changed = re.findall(r"INPUT_CHANGED: input requires\(\) \((.*?)\) changed", step4)
    assert changed == [str(EXAMPLE / "work" / "data" / "iris.csv")]
    stale = sorted(re.findall(r"✗ (\w+)\(", step4))
    assert stale == ["Clean", "Evaluate", "Features", "Report", "Split", "Train"]
    assert "7 tasks (6 not up to date)" in step4
    step6 = out.split("=== 6.", 1)[1].split("=== 7.", 1)[0]
    assert step6.count("skipping run() (early cutoff)") == 5
    assert "Demo finished" in out
