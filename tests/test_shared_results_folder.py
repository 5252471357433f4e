"""A real project's results folder shared with a hostile neighbour: ``examples/sales``.

The sales port writes its declared outputs into ``logs/``. Here that folder is shared (mode
0777, as a team folder often is) and a neighbour plants symlinks at the names luigi_repro writes,
FIFOs, device links, huge and deeply nested records, escape codes and their own lock files. The
user goes on building and auditing as before; nothing of theirs is overwritten, nothing hangs,
and every audit names what is wrong. A missing CI secret stops runs and audits instead of
silently accepting unsigned records.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from sales import AS_ORDINARY_USER, build, copy_project, edit, luigi, ran_tasks, verify

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ALL = ["EncodeData", "ImputeData", "TrainModel"]
NEIGHBOUR = 65534  # nobody
OUTPUTS = ["impute-2024-03-01.txt", "encode-2024-03-01.txt", "train-2024-03-01.txt"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sales port, built once with its raw CSV tracked, with a shared ``logs/`` folder;
    reachable by the neighbour."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as two users")
    monkeypatch.setenv("LUIGI_REPRO_UNDECLARED_READS", "track")
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path.parent, 0o755)
    project = copy_project(tmp_path)
    assert build(project)[0] == ALL
    os.chmod(project / "logs", 0o777)
    return project


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of the user's that a planted link points at; it must never change."""
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    return path


def untouched(victim: Path) -> bool:
    return victim.read_text() == "precious\n" and victim.stat().st_mtime_ns == 1_000_000_000


def plant(path: Path) -> Path:
    """Hand a planted file to the neighbour, as if they had made it."""
    os.lchown(path, NEIGHBOUR, NEIGHBOUR)
    return path


def stale(project: Path) -> None:
    """Edit the raw data so that the whole chain must run again."""
    edit(project / "data" / "sales.csv", "Spain,28,76000,no", "Spain,29,76000,no")


def test_links_planted_at_every_name_written_overwrite_nothing(project: Path, victim: Path) -> None:
    """Symlinks at the old fixed temporary names and at Luigi's temporary-name pattern: a full
    rebuild succeeds, the victim is untouched, no temporary file is left."""
    logs = project / "logs"
    for name in OUTPUTS:
        for planted in (f".{name}.repro.json.repro-tmp", f"{name}-luigi-tmp-0000000001"):
            plant(_symlink(victim, logs / planted))
    stale(project)
    assert build(project)[0] == ALL
    assert untouched(victim)
    assert verify(project)[0] == 0
    left = [p.name for p in logs.iterdir() if "tmp" in p.name and not p.is_symlink()]
    assert left == []


def _symlink(target: Path, link: Path) -> Path:
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    return link


def test_a_link_planted_at_a_lock_file_stops_the_run_and_creates_nothing(
    project: Path, victim: Path, tmp_path: Path
) -> None:
    """A symlink at a run-lock file (to the victim, or dangling into a new folder): the run of
    that task fails naming the lock file; nothing is written or created through the link."""
    logs = project / "logs"
    plant(_symlink(victim, logs / ".impute-2024-03-01.txt.repro.lock"))
    plant(_symlink(tmp_path / "made" / "here", logs / ".encode-2024-03-01.txt.repro.lock"))
    stale(project)
    status, log = luigi(project)
    assert status == 0  # luigi's own exit status; the task failed
    assert "impute-2024-03-01.txt.repro.lock" in log
    assert ran_tasks(log) == []
    assert untouched(victim)
    assert not (tmp_path / "made").exists()


def test_hostile_records_cost_seconds_and_are_named(project: Path) -> None:
    """A FIFO, a link to /dev/zero and a 40 MiB record in place of the three records: verify
    answers within seconds naming each; the next build reruns the chain and heals them."""
    logs = project / "logs"
    records = [logs / f"{name}.repro.json" for name in OUTPUTS]
    for record in records:
        record.unlink()
    os.mkfifo(records[0])
    records[1].symlink_to("/dev/zero")
    with open(records[2], "wb") as stream:
        stream.truncate(40 << 20)
    for record in records:
        plant(record)
    started = time.monotonic()
    status, report = verify(project)
    assert time.monotonic() - started < 30
    assert status == 1
    assert "not a regular file" in report, report
    assert "max_record_bytes" in report, report
    assert build(project)[0] == ALL
    assert all(stat.S_ISREG(r.lstat().st_mode) for r in records)
    assert verify(project)[0] == 0


def test_escape_codes_in_a_record_are_shown_escaped(project: Path) -> None:
    """A record whose task family clears the screen and draws a fake "up to date" line."""
    record = project / "logs" / "train-2024-03-01.txt.repro.json"
    text = record.read_text().replace('"TrainModel"', '"TrainModel\\u001b[2J\\n\\u2713 ok"', 1)
    record.write_text(text)
    report = verify(project, "logs/train-2024-03-01.txt")[1]
    assert "\x1b" not in report
    assert "\\x1b[2J\\n" in report, report


def test_lock_files_left_by_another_user_still_work(project: Path) -> None:
    """The neighbour ran the pipeline first (their lock files, mode 0644, stay); the user, who
    cannot write those files, still builds: a read-only descriptor locks too."""
    for lock in (project / "logs").glob(".*.repro.lock"):
        plant(lock)
        os.chmod(lock, 0o644)
    shutil.rmtree(project / "outcomes")  # the helpers' results: the user rebuilds them
    os.chmod(project, 0o777)
    os.chmod(project / "data", 0o777)
    stale(project)
    ran, _ = build(project, prefix=AS_ORDINARY_USER)
    assert ran == ALL
    assert verify(project, prefix=AS_ORDINARY_USER)[0] == 0


def test_a_missing_ci_secret_stops_runs_and_audits(project: Path) -> None:
    """Built with a key; in a job where the secret came through empty, nothing runs and the audit
    exits 2 naming the variable — it never reports unsigned records as up to date."""
    key = {"LUIGI_REPRO_HMAC_KEY": "team secret"}
    stale(project)
    assert build(project, **key)[0] == ALL
    assert verify(project, **key)[0] == 0
    empty = {"LUIGI_REPRO_HMAC_KEY": ""}
    stale_again = project / "data" / "sales.csv"
    edit(stale_again, "Spain,29,76000,no", "Spain,30,76000,no")
    status, log = luigi(project, **empty)
    assert ran_tasks(log) == []
    assert "LUIGI_REPRO_HMAC_KEY is set but empty" in log
    status, report = verify(project, **empty)
    assert status == 2
    assert "LUIGI_REPRO_HMAC_KEY is set but empty" in report
    status, _ = verify(project, LUIGI_REPRO_REQUIRE_SIGNATURES="true")
    assert status == 2
