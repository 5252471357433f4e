"""Own-verdicts reused across ``complete()`` calls: only while everything they saw is the same.

A later call replays the evidence an earlier verdict was decided from (records by content,
fingerprints through the stat cache, existence answers, parameters, code, requirements); any
difference, however small or recent, makes the task be judged again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, List

import pytest
from pipelines import Clean, Merge, Report, build, families, make_raw, runs, write_raw

from luigi_repro import judging
from luigi_repro.runtime import reset as forget_verdicts


@pytest.fixture(autouse=True)
def built() -> None:
    forget_verdicts()
    make_raw()
    assert build(Report())
    runs()


def judged_again(task: object) -> int:
    """How many own-verdicts a fresh call had to decide (not reuse) for ``task``'s DAG."""
    with judging() as judge:
        ok = judge.status(task).ok  # type: ignore[arg-type]
    assert isinstance(ok, bool)
    return judge.tasks_judged - judge.verdicts_reused


def test_an_unchanged_pipeline_is_judged_from_remembered_verdicts() -> None:
    """Nothing changed: the root's remembered status stands for its whole DAG, unvisited."""
    assert Report().complete()
    with judging() as judge:
        assert judge.status(Report()).ok
    assert (judge.tasks_judged, judge.verdicts_reused, judge.statuses_reused) == (1, 1, 1)
    with judging(exhaustive=True, fresh=True) as audit:
        assert audit.status(Report()).ok
    assert audit.tasks_judged == 4  # an audit visits every task


def test_a_raw_edit_right_after_a_check_is_seen() -> None:
    """Same size, same second: the stat cache rehashes what a stat cannot vouch for."""
    assert Report().complete()
    write_raw("a", "HELLO\n")
    assert not Report().complete()
    assert not Clean("a").complete()
    assert Clean("b").complete()
    assert build(Report())
    assert families(runs()) == ["Clean"]  # early cutoff: same cleaned text


def test_an_output_edited_with_its_times_restored_is_seen() -> None:
    assert Merge().complete()
    path = Path("out/merged.txt")
    before = os.stat(path)
    path.write_text(path.read_text().upper())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not Merge().complete()
    assert not Report().complete()


def test_a_replaced_record_is_seen() -> None:
    assert Merge().complete()
    record = Path("out/merged.txt.repro.json")
    document = json.loads(record.read_text())
    document["task"]["params"] = {"unexpected": "1"}
    record.write_text(json.dumps(document))
    assert judged_again(Merge()) == 1  # decided again, from the new record
    assert not Merge().complete()
    assert judged_again(Merge()) == 0  # the new verdict (not complete) is remembered in turn


def test_a_removed_record_or_output_is_seen() -> None:
    assert Report().complete()
    Path("out/report.txt.repro.json").unlink()
    assert not Report().complete()
    assert build(Report())
    assert Report().complete()
    Path("out/clean_b.txt").unlink()
    assert not Report().complete()


def test_code_version_changed_at_run_time_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Report().complete()
    monkeypatch.setattr(Merge, "code_version", "2")
    assert not Report().complete()


def test_other_settings_are_judged_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A remembered verdict belongs to the settings it was decided under."""
    assert Report().complete()
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "now signed")
    assert not Report().complete()  # the records are unsigned
    monkeypatch.delenv("LUIGI_REPRO_HMAC_KEY")
    assert Report().complete()


def test_full_audits_never_reuse_verdicts() -> None:
    assert Report().complete()
    from luigi_repro import verify

    report = verify(Report(), full=True)
    assert report.ok
    with judging(full=True) as judge:
        judge.status(Report())
    assert judge.verdicts_reused == 0


def test_settled_files_are_revalidated_by_one_stat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files older than the racy window are vouched for by their stat alone; a rewrite (even of
    the same size) changes the stat and is seen."""
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", "0")
    monkeypatch.setenv("LUIGI_REPRO_WATCH_CHANGES", "false")  # replay by stat, not by events
    assert build(Report())
    assert Report().complete()
    with judging() as judge:
        assert judge.status(Report()).ok
    assert judge.verdicts_reused == 4
    assert judge.counters.files_hashed == 0
    path = write_raw("b", "WORLD\n")
    os.utime(path, ns=(1, 1))  # even with an old mtime, the ctime moves
    assert not Report().complete()
    assert Clean("a").complete()


def test_files_fingerprinted_while_fresh_are_later_vouched_for_by_a_stat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A verdict decided while its files were within the racy window is revalidated by reading
    them; once they have settled, by a stat alone."""
    from luigi_repro import HashableLocalTarget

    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", "0.2")
    monkeypatch.setenv("LUIGI_REPRO_WATCH_CHANGES", "false")  # replay by stat, not by events
    write_raw("a", "Fresh\n")
    assert build(Report())
    assert Report().complete()  # decided while every file is fresh
    time.sleep(0.3)
    observed: List[str] = []
    original = HashableLocalTarget.observe

    def counting(self: HashableLocalTarget, *args: Any, **kwargs: Any) -> Any:
        observed.append(self.path)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HashableLocalTarget, "observe", counting)
    assert Report().complete()  # settled now: read once more, and remembered as settled
    assert observed
    observed.clear()
    assert Report().complete()
    assert observed == []
