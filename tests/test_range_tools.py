"""Luigi's Range tools ask checked tasks the same verdict as ``complete()``.

Without ``bulk_complete``, ``RangeDaily`` and its siblings decide which dates are done from a
listing of output files, so a date whose input changed would never run again.
"""

from __future__ import annotations

import datetime
import functools
from pathlib import Path
from typing import Any, Dict, Type

import luigi
import pytest
from luigi.task_register import Register
from luigi.tools.range import RangeByMinutes, RangeDaily, RangeHourly, RangeMonthly
from pipelines import build, log_run, runs

from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash
from luigi_repro.report import verify

# Luigi's own Range classes declare a parameter default of None that it then warns about.
pytestmark = pytest.mark.filterwarnings('ignore:Parameter "param_name":UserWarning')

NOW_2024 = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc).timestamp()


def _stamp(value: Any) -> str:
    return str(value).replace(" ", "T").replace(":", "")


class _Dated(TaskWithCheckingInputHash):
    """Copies the raw file of its time slot to an output whose name holds the slot."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile(f"raw/{_stamp(self.slot())}.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/{type(self).__name__}/{_stamp(self.slot())}.txt")

    def slot(self) -> Any:
        raise NotImplementedError

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read().upper())


class Daily(_Dated):
    """One output per day."""

    date = luigi.DateParameter()

    def slot(self) -> Any:
        return self.date


class Hourly(_Dated):
    """One output per hour."""

    hour = luigi.DateHourParameter()

    def slot(self) -> Any:
        return self.hour


class EveryTenMinutes(_Dated):
    """One output per ten minutes."""

    minute = luigi.DateMinuteParameter(interval=10)

    def slot(self) -> Any:
        return self.minute


class Monthly(_Dated):
    """One output per month."""

    month = luigi.MonthParameter()

    def slot(self) -> Any:
        return self.month


_CASES: Dict[str, Dict[str, Any]] = {
    "daily": {
        "range": RangeDaily,
        "of": Daily,
        "slots": [datetime.date(2024, 1, d) for d in range(1, 6)],
        "bounds": {"start": datetime.date(2024, 1, 1), "stop": datetime.date(2024, 1, 6)},
        "extra": {"days_back": 3650},
    },
    "hourly": {
        "range": RangeHourly,
        "of": Hourly,
        "slots": [datetime.datetime(2024, 1, 1, h) for h in range(5)],
        "bounds": {
            "start": datetime.datetime(2024, 1, 1, 0),
            "stop": datetime.datetime(2024, 1, 1, 5),
        },
        "extra": {"hours_back": 24 * 3650},
    },
    "minutes": {
        "range": RangeByMinutes,
        "of": EveryTenMinutes,
        "slots": [datetime.datetime(2024, 1, 1, 0, m) for m in range(0, 50, 10)],
        "bounds": {
            "start": datetime.datetime(2024, 1, 1, 0, 0),
            "stop": datetime.datetime(2024, 1, 1, 0, 50),
        },
        "extra": {"minutes_back": 60 * 24 * 3650, "minutes_interval": 10},
    },
    "monthly": {
        "range": RangeMonthly,
        "of": Monthly,
        "slots": [datetime.date(2023, m, 1) for m in range(1, 6)],
        "bounds": {"start": datetime.date(2023, 1, 1), "stop": datetime.date(2023, 6, 1)},
        "extra": {"months_back": 12 * 10},
    },
}


def _range(case: Dict[str, Any]) -> luigi.Task:
    """A new Range task, as a new ``luigi`` process (a cron job) would make it.

    Luigi caches task instances, and a Range instance caches what it found missing: without
    clearing, a second build would reuse the first one's answer.
    """
    Register.clear_instance_cache()
    range_cls: Type[luigi.Task] = case["range"]
    return range_cls(of=case["of"], now=int(NOW_2024), **case["bounds"], **case["extra"])


@pytest.mark.parametrize("name", sorted(_CASES))
def test_a_range_reruns_exactly_the_stale_slot(name: str) -> None:
    """Five slots built; one slot's raw input edited; the range reruns exactly that slot."""
    case = _CASES[name]
    Path("raw").mkdir()
    for slot in case["slots"]:
        Path(f"raw/{_stamp(slot)}.txt").write_text(f"data of {slot}\n")
    assert build(_range(case))
    assert len(runs()) == len(case["slots"])

    stale = case["slots"][2]
    Path(f"raw/{_stamp(stale)}.txt").write_text(f"corrected data of {stale}\n")
    report = verify(_range(case))
    assert not report.ok, "the range is not complete while one slot is stale"

    assert build(_range(case))
    assert runs() == [case["of"](stale).task_id]
    assert (
        Path(f"out/{case['of'].__name__}/{_stamp(stale)}.txt").read_text().startswith("CORRECTED")
    )
    assert build(_range(case))
    assert runs() == []
    assert verify(_range(case)).ok


def test_bulk_complete_answers_as_complete_does() -> None:
    """bulk_complete lists exactly the dates whose complete() is True (also via a partial)."""
    dates = [datetime.date(2024, 1, d) for d in range(1, 5)]
    Path("raw").mkdir()
    for day in dates:
        Path(f"raw/{_stamp(day)}.txt").write_text(str(day))
    assert build(*(Daily(day) for day in dates[:3]))
    runs()
    Path(f"raw/{_stamp(dates[1])}.txt").write_text("changed")
    expected = [day for day in dates if Daily(day).complete()]
    assert expected == [dates[0], dates[2]]
    assert Daily.bulk_complete(dates) == expected
    partial = functools.partial(Daily)
    assert Daily.bulk_complete.__func__(partial, iter(dates)) == expected  # type: ignore[attr-defined]
    assert Daily.bulk_complete([{"date": d} for d in dates]) == [{"date": d} for d in expected]


class Regional(TaskWithCheckingInputHash):
    """Its date is not its first parameter: a Range names it with ``param_name``."""

    region = luigi.Parameter()
    date = luigi.DateParameter()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/{self.region}-{self.date:%Y-%m-%d}.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(f"{self.region} {self.date}\n")


def test_a_range_with_param_name_and_of_params_builds_every_date() -> None:
    """``RangeDaily(of=Regional, of_params={"region": "eu"}, param_name="date")`` sets the date,
    not the first positional parameter, and builds each date once."""
    Register.clear_instance_cache()
    bounds = {"start": datetime.date(2024, 1, 1), "stop": datetime.date(2024, 1, 4)}
    make = functools.partial(
        RangeDaily, of=Regional, of_params={"region": "eu"}, param_name="date", **bounds
    )
    assert build(make(now=int(NOW_2024)))
    assert len(runs()) == 3
    Register.clear_instance_cache()
    assert build(make(now=int(NOW_2024)))
    assert runs() == []
