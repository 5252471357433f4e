"""Starting up is cheap: importing the package or the command loads no scheduler, server or
optional backend, the public API still resolves every name, and the command's summary line
times the whole command, interpreter start included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from pipelines import Report, build, make_raw

import luigi_repro
from luigi_repro.version import __version__

#: Modules only a scheduler, the web server or an optional backend needs.
HEAVY = ("luigi.rpc", "luigi.server", "tornado", "boto3", "redis", "pandas", "pyarrow")


def loaded_heavy_modules(code: str) -> List[str]:
    """The heavy modules loaded after running ``code`` in a fresh interpreter."""
    heavy = f"[m for m in sys.modules if m in {HEAVY!r} or m.split('.')[0] in {HEAVY!r}]"
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({heavy})))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import luigi_repro",
        "import luigi_repro.cli",
        "from luigi_repro import __version__",
        "from luigi_repro.cli import main; main(['--help'])",
        "from luigi_repro.cli import main; main(['--version'])",
    ],
)
def test_starting_loads_no_scheduler_server_or_backend(code: str) -> None:
    assert loaded_heavy_modules(code) == []


def test_every_public_name_resolves() -> None:
    """``from luigi_repro import X`` works for each name of ``__all__`` and ``dir()`` lists them."""
    namespace: Dict[str, Any] = {}
    names = [name for name in luigi_repro.__all__ if name != "HashableS3Target"]
    exec(f"from luigi_repro import {', '.join(names)}", namespace)
    assert all(namespace[name] is not None for name in names)
    assert namespace["TaskWithCheckingInputHash"].__module__ == "luigi_repro.task"
    assert set(luigi_repro.__all__) <= set(dir(luigi_repro))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'luigi_repro' has no attribute 'Nope'"):
        luigi_repro.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_the_version_is_the_same_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    from luigi_repro.cli import main

    assert luigi_repro.__version__ == __version__
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"luigi-repro {__version__}\n"


def test_the_summary_times_the_whole_command_from_process_start() -> None:
    """Time spent before ``main()`` (here a deliberate pause) is part of the reported seconds."""
    make_raw()
    assert build(Report())
    report = str(Path("out/report.txt").resolve())
    script = (
        "import sys, time\n"
        "time.sleep(0.5)\n"
        f"sys.argv = ['luigi-repro', 'verify', '--format', 'json', {report!r}]\n"
        "from luigi_repro.cli import main\n"
        "sys.exit(main())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["summary"]["seconds"] >= 0.5
