"""A real project's shape, built and edited as its user would: ``examples/sales``.

The port of a public Luigi + scikit-learn pipeline keeps its logic in ``utils/`` helpers and
constants, reads its raw CSV through a class attribute that ``requires()`` never declares, and
lets its helpers write the real results. Each build runs ``luigi`` in a fresh process (so edited
code is imported afresh), each audit runs ``luigi-repro verify``; the tests assert exactly which
tasks ran (from luigi_repro's "X runs: …" log lines) and what the audit names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sales import build, copy_project, edit, verify

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the example, as a clone would give it."""
    return copy_project(tmp_path)


ALL = ["EncodeData", "ImputeData", "TrainModel"]
TRACK = {"LUIGI_REPRO_UNDECLARED_READS": "track"}


def test_by_default_the_undeclared_raw_csv_is_named_in_a_warning(project: Path) -> None:
    """Out of the box (``warn``), each task's run names the files it reads without declaring
    them; the raw CSV held as a class attribute first of all."""
    ran, log = build(project)
    assert ran == ALL
    warnings = [line for line in log.splitlines() if "does not declare" in line]
    assert any("ImputeData(" in w and str(project / "data" / "sales.csv") in w for w in warnings)
    assert any("EncodeData(" in w and "sales-imputed.csv" in w for w in warnings)
    assert build(project)[0] == []
    assert verify(project)[0] == 0


def test_editing_the_raw_csv_reruns_exactly_the_chain_under_track(project: Path) -> None:
    """With ``undeclared_reads = track`` the raw CSV and the helpers' intermediate files are
    inputs: one edited cell reruns the three tasks, and the audit names the file first."""
    assert build(project, **TRACK)[0] == ALL
    assert build(project, **TRACK)[0] == []
    edit(project / "data" / "sales.csv", "Spain,28,76000,no", "Spain,29,76000,no")
    status, report = verify(project, **TRACK)
    assert status == 1
    assert re.search(r"undeclared input \S*data/sales\.csv changed", report), report
    assert build(project, **TRACK)[0] == ALL
    assert verify(project, **TRACK)[0] == 0


def test_a_helper_constant_reruns_only_the_task_that_uses_it(project: Path) -> None:
    """``utils/config.py: EPOCHS`` is used by ``train_model`` only: TrainModel alone reruns,
    and the audit names the constant."""
    assert build(project, **TRACK)[0] == ALL
    edit(project / "utils" / "config.py", "EPOCHS = 300", "EPOCHS = 200")
    status, report = verify(project, **TRACK)
    assert status == 1
    assert "constant utils.config.EPOCHS changed" in report, report
    assert build(project, **TRACK)[0] == ["TrainModel"]


def test_a_helper_function_reruns_its_task_and_the_cutoff_stops_the_rest(project: Path) -> None:
    """A change in ``encode_data`` reruns EncodeData; its results are byte for byte the same,
    so TrainModel is cut off early. The audit names the function."""
    assert build(project, **TRACK)[0] == ALL
    edit(
        project / "utils" / "preproc.py",
        'out.update(age=row["age"], salary=row["salary"])',
        'out.update(age=row["age"].strip(), salary=row["salary"].strip())',
    )
    status, report = verify(project, **TRACK)
    assert status == 1
    assert "function utils.preproc.encode_data changed" in report, report
    ran, log = build(project, **TRACK)
    assert ran == ["EncodeData"]
    assert "TrainModel(date=2024-03-01, strategy=median) is already up to date" in log


def test_comments_and_docstrings_in_helpers_rerun_nothing(project: Path) -> None:
    """Editing a helper's docstring and comments is not a change of code."""
    assert build(project, **TRACK)[0] == ALL
    edit(
        project / "utils" / "preproc.py",
        '"""Fill missing ages and salaries; returns the path written."""',
        '"""Fill in the missing ages and salaries (reworded); returns the path written."""\n'
        "    # a comment that changes nothing",
    )
    assert verify(project, **TRACK)[0] == 0
    assert build(project, **TRACK)[0] == []
