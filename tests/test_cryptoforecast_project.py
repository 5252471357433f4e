"""A port of a public project's shape, used as its users would: a crypto-price forecasting
pipeline (tests/projects/cryptoforecast) with one module per task class in packages, settings as
constants of a ``config`` module read in ``run()``, a helper class and trading functions in
modules of their own, dict outputs made in an ``output()`` that also creates folders, outputs
written in place through ``.path`` by pandas, and a year of daily ingest tasks (368 tasks).

What its user expects: a rebuild runs nothing; one edited day reruns that day and exactly the
tasks downstream of it; a changed constant or helper reruns exactly the tasks that use it; the
audit agrees with every build.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import List

import pytest
from sales import run

PROJECT = Path(__file__).resolve().parent / "projects" / "cryptoforecast"

pytestmark = pytest.mark.slow


@pytest.fixture
def crypto(tmp_path: Path) -> Path:
    """A fresh copy of the project, as a clone would give it."""
    target = tmp_path / "cryptoforecast"
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns("__pycache__", "output"))
    return target


def luigi_repro(project: Path, *args: str) -> tuple[int, str]:
    return run(
        project,
        "luigi_repro",
        *args,
        LUIGI_REPRO_STAT_CACHE=str(project / "stat-cache.sqlite3"),
    )


def build(project: Path) -> List[str]:
    """``luigi --module run_luigi Backtest --workers 2``, which must succeed: what ran, sorted."""
    status, log = run(
        project,
        "luigi",
        "--module",
        "run_luigi",
        "Backtest",
        "--local-scheduler",
        "--workers",
        "2",
        LUIGI_REPRO_STAT_CACHE=str(project / "stat-cache.sqlite3"),
    )
    assert status == 0, log[-3000:]
    assert "This progress looks :)" in log, log[-3000:]
    runs = project / "runs.log"
    ran = sorted(runs.read_text().split()) if runs.exists() else []
    runs.unlink(missing_ok=True)
    return ran


def verify(project: Path, *options: str) -> tuple[int, str]:
    status, log = luigi_repro(project, "verify", *options, "--module", "run_luigi", "Backtest")
    assert status in (0, 1), log[-3000:]
    return status, log


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def test_the_crypto_forecast_pipeline_as_its_users_run_it(crypto: Path) -> None:
    ran = build(crypto)
    assert len(ran) == 368
    assert verify(crypto)[0] == 0
    assert build(crypto) == []  # nothing changed: nothing runs

    # One day's export corrected: that day and everything downstream of it. --changed lists
    # just those four of 733 tasks (the raw files included), and counts them by reason.
    (crypto / "raw" / "ethbtc-2025-03-05.csv").write_text("2025-03-05,0.071000\n")
    status, log = verify(crypto, "--changed")
    assert status == 1
    listed = [line for line in log.splitlines() if line.startswith("✗ ")]
    assert [line.split("(")[0] for line in listed] == [
        "✗ Backtest",
        "✗ BollingerBands",
        "✗ IngestPricesHistoricalETHBTC",
        "✗ IngestDailyPrices",
    ]
    assert "IngestDailyPrices(date=2025-03-05)  STALE" in log
    assert "by reason: 1 INPUT_CHANGED, 3 UPSTREAM_NOT_UP_TO_DATE" in log
    assert "733 tasks (4 not up to date)" in log
    status, path_log = luigi_repro(crypto, "verify", "--changed", "output")
    assert status == 1
    assert "by reason: 1 INPUT_CHANGED, 3 UPSTREAM_NOT_UP_TO_DATE" in path_log
    assert build(crypto) == [
        "Backtest",
        "BollingerBands",
        "IngestDailyPrices_2025-03-05",
        "IngestPricesHistoricalETHBTC",
    ]
    assert verify(crypto)[0] == 0

    # A constant of the config module that only the strategy reads: the strategy reruns (and
    # the backtest only if the bands it reads changed).
    edit(crypto / "config.py", "stdK = 2", "stdK = 1.5")
    status, log = verify(crypto)
    assert status == 1
    assert "constant config.stdK changed" in log
    ran = build(crypto)
    assert ran[-1] == "BollingerBands"
    assert set(ran) <= {"Backtest", "BollingerBands"}

    # The helper class in its own module: only the task whose run() uses it.
    edit(crypto / "Wallet.py", "btc=1.0, eth=10.0", "btc=2.0, eth=10.0")
    assert build(crypto) == ["Backtest"]

    # A trading function two packages away, and a comment-only edit of it afterwards.
    edit(crypto / "trade" / "fn" / "bollinger_crossing.py", "return 0\n", "return 0.0\n")
    assert build(crypto) == ["Backtest"]
    edit(crypto / "trade" / "fn" / "bollinger_crossing.py", "return 0.0\n", "return 0.0  # flat\n")
    assert build(crypto) == []
    assert verify(crypto)[0] == 0

    # Forcing the strategy to run again: only its records go; its output bytes come out the
    # same, so the backtest after it is cut off early.
    bands = (crypto / "output" / "analyze" / "bollinger.csv").read_bytes()
    status, log = luigi_repro(
        crypto,
        "invalidate",
        "--yes",
        "--task",
        "BollingerBands",
        "--module",
        "run_luigi",
        "Backtest",
    )
    assert status == 0, log
    assert (crypto / "output" / "analyze" / "bollinger.csv").read_bytes() == bands
    status, log = verify(crypto, "--changed")
    assert (status, log.count("NO_RECORD: output")) == (1, 2)
    assert build(crypto) == ["BollingerBands"]

    # The results folder of a healthy pipeline holds no leftovers; an interrupted write's
    # temporary unchanged for longer than --older-than does, and only it is removed.
    status, log = luigi_repro(crypto, "gc", "output")
    assert (status, log.strip()) == (0, "No leftovers."), log
    stale = crypto / "output" / "trading" / "backtest_data.csv-luigi-tmp-1234567890"
    stale.write_text("half a table")
    time.sleep(1.1)  # gc counts the inode change time too, which only waiting makes old
    status, log = luigi_repro(crypto, "gc", "--yes", "--older-than", "1s", "output")
    assert status == 0, log
    assert not stale.exists()
    assert (crypto / "output" / "analyze" / "bollinger.csv").read_bytes() == bands
    assert verify(crypto)[0] == 0
