"""The code stays clean: ruff and mypy --strict run as part of the suite, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for p in ("luigi_repro", "tests", "benchmarks", "examples") if (ROOT / p).exists()]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", *SOURCES), ("ruff", "format", "--check", *SOURCES)],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff_is_clean(command: tuple[str, ...]) -> None:
    """ruff finds nothing to report in the package, tests, benchmarks and examples."""
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    """mypy --strict (configured in setup.cfg) accepts the package."""
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_renders_without_warnings() -> None:
    """README.rst is valid reStructuredText (it is also the package's long description)."""
    import io

    import docutils.core
    import docutils.writers.null

    warnings = io.StringIO()
    docutils.core.publish_string(
        (ROOT / "README.rst").read_text(),
        writer=docutils.writers.null.Writer(),
        settings_overrides={"halt_level": 5, "report_level": 2, "warning_stream": warnings},
    )
    assert warnings.getvalue() == ""


def test_changelog_has_an_unreleased_section() -> None:
    """CHANGELOG.md keeps user-visible changes under Unreleased, in Keep a Changelog form."""
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## Unreleased" in text
    assert "### Added" in text.split("## Unreleased", 1)[1]
