"""``luigi-repro gc``: luigi_repro's leftovers are found and, with --yes, removed; nothing else.

Through the console script, on a folder left the way crashed runs and users leave one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import luigi
import pytest
from lockholder import lock_held_elsewhere

from luigi_repro import HashableDirectoryTarget, HashableLocalTarget, TaskWithCheckingInputHash
from luigi_repro.leftoverremoval import remove_leftovers
from luigi_repro.leftovers import survey
from luigi_repro.locking import LOCK_FILE_MARK
from luigi_repro.record import OutputEntry, Record, RunSection, TaskSection, dump_record

DAY = 86400


def luigi_repro(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["luigi-repro", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )


def gc_json(*args: str) -> Dict[str, Any]:
    result = luigi_repro("gc", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    document: Dict[str, Any] = json.loads(result.stdout)
    return document


#: The age, in real seconds, of the temporaries the tests leave: gc counts a file's inode
#: change time, which nobody can set back, so only waiting makes a file old.
OLD = 3.0
OLDER_THAN = "3s"


def wait_until_old(seconds: float, *paths: Path) -> None:
    """Sleep until ``paths`` (and everything in the folders among them) last changed, content
    or inode, more than ``seconds`` ago."""
    inner = [p for path in paths for p in [path, *(path.rglob("*") if path.is_dir() else [])]]
    newest = max(max(st.st_mtime, st.st_ctime) for st in (p.lstat() for p in inner))
    time.sleep(max(0.0, newest + seconds + 0.1 - time.time()))


def a_record(output: str) -> bytes:
    """A well-formed record of a task with one output, ``output``."""
    task = TaskSection("M12Gone", "gone", "M12Gone__99914b932b", {}, "xxh3_128:00")
    entry = OutputEntry((), os.path.abspath(output), "xxh3_128:00", 1)
    run = RunSection("r", "2026-01-01T00:00:00", "2026-01-01T00:00:01", 1.0, "host", 1)
    return dump_record(Record(task, (), (entry,), run, beside=()))


@pytest.fixture
def messy() -> Dict[str, Path]:
    """A results folder with leftovers of every kind, and look-alikes that are not ours."""
    out = Path("out")
    out.mkdir()
    files: Dict[str, Path] = {}

    def put(name: str, data: bytes, key: str) -> Path:
        path = out / name
        path.write_bytes(data)
        files[key] = path
        return path

    # Leftovers.
    put("gone.csv.repro.json", a_record("out/gone.csv"), "orphan_record")
    put("gone-folder.repro.json", a_record("out/gone-folder"), "orphan_folder_record")
    put(".gone.csv.repro.lock", LOCK_FILE_MARK, "free_lock")
    put("x.csv-luigi-tmp-0123456789", b"partial", "luigi_tmp_file")
    folder = out / "parts-luigi-tmp-987654321"
    folder.mkdir()
    (folder / "part-0").write_bytes(b"p")
    files["luigi_tmp_folder"] = folder
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    put(f".kept.csv.repro.json.repro-tmp-{dead_pid}-0badcafe", b"{", "our_tmp")
    # Ours, in use or needed.
    put("kept.csv", b"data", "output")
    put("kept.csv.repro.json", a_record("out/kept.csv"), "live_record")
    put(".busy.csv.repro.lock", LOCK_FILE_MARK, "held_lock")  # a run about to write busy.csv
    put(".kept.csv.repro.lock", LOCK_FILE_MARK, "output_lock")  # the next run takes it again
    live = f".kept.csv.repro-tmp-{os.getpid()}-00c0ffee"
    put(live, b"partial", "live_writer_tmp")
    # Not ours, however they are named.
    put("notes.repro.json", b"my notes, not JSON", "user_record_name")
    put("other.repro.json", b'{"tool": "luigi_repro"}', "half_record")
    put("wrong.csv.repro.json", a_record("out/another.csv"), "record_of_another")
    put(".user.repro.lock", b"my lock, my content\n", "user_lock")
    put("y.csv-luigi-tmp-12", b"too few digits", "near_tmp_name")
    link = out / "z.csv-luigi-tmp-0123456789"
    link.symlink_to("kept.csv")
    files["tmp_named_symlink"] = link
    wait_until_old(OLD, out)
    put("young.csv-luigi-tmp-1111111111", b"partial", "young_tmp")  # gc runs next: it is young
    return files


LEFTOVERS = (
    "orphan_record",
    "orphan_folder_record",
    "free_lock",
    "luigi_tmp_file",
    "luigi_tmp_folder",
    "our_tmp",
)


def test_lists_by_default_with_the_documented_json_and_removes_nothing(
    messy: Dict[str, Path],
) -> None:
    with lock_held_elsewhere(str(messy["held_lock"])):
        document = gc_json("--older-than", OLDER_THAN, "out")
    assert set(document) == {
        "schema",
        "paths",
        "older_than_seconds",
        "remove",
        "leftovers",
        "kept",
        "summary",
    }
    assert document["schema"] == 1
    assert document["older_than_seconds"] == OLD
    assert document["remove"] is False
    found = {entry["path"]: entry for entry in document["leftovers"]}
    assert set(found) == {str(messy[key].resolve()) for key in LEFTOVERS}
    for entry in found.values():
        assert set(entry) == {"path", "kind", "why", "bytes", "removed", "error"}
        assert entry["removed"] is False
    kinds = {key: found[str(messy[key].resolve())]["kind"] for key in LEFTOVERS}
    assert kinds == {
        "orphan_record": "record",
        "orphan_folder_record": "record",
        "free_lock": "lock",
        "luigi_tmp_file": "temporary",
        "luigi_tmp_folder": "temporary",
        "our_tmp": "temporary",
    }
    kept = {entry["path"]: entry["why"] for entry in document["kept"]}
    assert kept[str(messy["held_lock"].resolve())] == "a process holds it"
    assert "less than" in kept[str(messy["young_tmp"].resolve())]
    assert "is running" in kept[str(messy["live_writer_tmp"].resolve())]
    assert document["summary"] == {"found": 6, "removed": 0, "failed": 0, "kept": 3}
    assert all(path.exists() or path.is_symlink() for path in messy.values())


def test_yes_removes_the_leftovers_and_nothing_else(messy: Dict[str, Path]) -> None:
    """A held lock stays (its holder runs); look-alikes of users' stay; the text says so."""
    with lock_held_elsewhere(str(messy["held_lock"])):
        result = luigi_repro("gc", "--yes", "--older-than", OLDER_THAN, "out")
        assert messy["held_lock"].exists()
    assert result.returncode == 0, result.stderr
    assert "Removed 6 of 6 leftover(s)." in result.stdout
    for key, path in messy.items():
        there = path.exists() or path.is_symlink()
        assert there is (key not in LEFTOVERS), key
    assert messy["user_record_name"].read_bytes() == b"my notes, not JSON"
    assert Path("out/kept.csv").read_bytes() == b"data"
    released = gc_json("out")  # its holder is gone now: nothing holds it any more
    assert [entry["path"] for entry in released["leftovers"]] == [str(messy["held_lock"].resolve())]


@pytest.mark.parametrize(
    ("older_than", "seconds", "found"),
    [("1s", 1, True), ("30m", 1800, False), ("24h", DAY, False), ("7d", 7 * DAY, False)],
)
def test_older_than_takes_seconds_minutes_hours_and_days(
    older_than: str, seconds: float, found: bool
) -> None:
    Path("out").mkdir()
    temporary = Path("out/r.csv-luigi-tmp-0000000001")
    temporary.write_bytes(b"x")
    wait_until_old(1, temporary)
    document = gc_json("--older-than", older_than, "out")
    assert document["older_than_seconds"] == seconds
    assert bool(document["leftovers"]) is found
    assert bool(document["kept"]) is not found


def test_a_temporary_a_process_has_open_is_kept() -> None:
    """Luigi's names carry no pid: a process of this host that has the file open is its
    writer, however old the file is."""
    Path("out").mkdir()
    temporary = Path("out/r.csv-luigi-tmp-0000000002")
    temporary.write_bytes(b"x")
    wait_until_old(1, temporary)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"f = open({str(temporary)!r}, 'ab'); print('open', flush=True); "
            "import sys; sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "open\n"
        result = luigi_repro("gc", "--yes", "--older-than", "1s", "out")
    finally:
        writer.communicate("")
    assert result.returncode == 0, result.stderr
    assert temporary.exists()
    assert "a process has it open" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--older-than", "3 weeks", "."), "is not an age like 30m, 24h or 7d"),
        (("missing-folder",), "missing-folder is not a folder"),
        (("--format", "xml", "."), "invalid choice"),
        ((), "the following arguments are required"),
    ],
)
def test_bad_requests_exit_2(args: tuple[str, ...], message: str) -> None:
    result = luigi_repro("gc", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_lock_file_replaced_after_the_survey_is_not_removed() -> None:
    """Removal checks it is still the same file (inode) and locks it itself first."""
    Path("out").mkdir()
    lock = Path("out/.a.csv.repro.lock")
    lock.write_bytes(LOCK_FILE_MARK)
    found = survey(["out"], DAY, ".repro.json", 1 << 20, time.time())
    assert [item.kind for item in found.leftovers] == ["lock"]
    Path("out/new").write_bytes(LOCK_FILE_MARK)
    os.replace("out/new", lock)  # a run recreated it meanwhile
    [(_, why)] = remove_leftovers(found.leftovers, DAY, ".repro.json", 1 << 20)
    assert why == "it was replaced since it was found"
    assert lock.exists()
    again = survey(["out"], DAY, ".repro.json", 1 << 20, time.time())
    with lock_held_elsewhere(str(lock)):  # taken after the survey, before the removal
        [(_, why)] = remove_leftovers(again.leftovers, DAY, ".repro.json", 1 << 20)
    assert why == f"a process holds {again.leftovers[0].path} now"
    assert lock.exists()


def test_a_record_whose_output_is_being_written_is_kept() -> None:
    """An orphan record's output lock held by a run: the run may be about to write it."""
    Path("out").mkdir()
    record = Path("out/b.csv.repro.json")
    record.write_bytes(a_record("out/b.csv"))
    with lock_held_elsewhere("out/.b.csv.repro.lock"):
        result = luigi_repro("gc", "--yes", "--format", "json", "out")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    [entry] = [e for e in document["leftovers"] if e["kind"] == "record"]
    assert entry["removed"] is False
    assert "a process holds" in entry["error"]
    assert document["summary"]["failed"] == 1
    assert record.exists()


class FG12Clean(TaskWithCheckingInputHash):
    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/a.txt")

    def run(self) -> None:
        with self.output().open("w") as stream:
            stream.write("A")


class FG12Bundle(TaskWithCheckingInputHash):
    """A release's provenance bundle: a folder of copied records, which are its data."""

    def requires(self) -> FG12Clean:
        return FG12Clean()

    def output(self) -> HashableDirectoryTarget:
        return HashableDirectoryTarget("out/bundle")

    def run(self) -> None:
        with self.output().temporary_path() as folder:
            inside = Path(folder)
            (inside / "sub").mkdir()
            for copy in ("a.txt.repro.json", "sub/b.txt.repro.json"):
                shutil.copy("out/a.txt.repro.json", inside / copy)
            (inside / ".c.csv.repro.lock").write_bytes(LOCK_FILE_MARK)
            (inside / "d.csv-luigi-tmp-0123456789").write_text("a table of the release")


def test_nothing_inside_a_recorded_folder_output_is_touched() -> None:
    """Record-, lock- and temporary-shaped files in a folder output are its data: gc neither
    searches it (whichever PATH leads there) nor removes them, and the output stays intact."""
    assert luigi.build([FG12Bundle()], local_scheduler=True, log_level="ERROR")
    bundle = Path("out/bundle")
    data = sorted(str(p) for p in bundle.rglob("*"))
    Path("out/gone.csv.repro.json").write_bytes(a_record("out/gone.csv"))  # a real leftover
    Path("out/copy.repro.json").write_bytes(a_record("out/copy"))  # an output named like one
    Path("out/copy.repro.json.repro.json").write_bytes(a_record("out/copy.repro.json"))
    wait_until_old(1, bundle)
    for inner in ("out/bundle", "out/bundle/sub"):
        assert gc_json("--older-than", "1s", inner)["summary"]["found"] == 0
    result = luigi_repro("gc", "--yes", "--older-than", "1s", "--format", "json", "out")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    removed = [entry["path"] for entry in document["leftovers"] if entry["removed"]]
    assert removed == [str(Path("out/gone.csv.repro.json").resolve())]
    assert document["kept"] == []
    assert sorted(str(p) for p in bundle.rglob("*")) == data
    assert Path("out/copy.repro.json").exists()
    verify = luigi_repro("verify", "--full", "out/bundle")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_folder_recorded_after_the_survey_keeps_its_content() -> None:
    """Removal looks again: a folder that became a recorded output meanwhile holds data."""
    Path("out/release").mkdir(parents=True)
    inner = Path("out/release/x.csv.repro.json")
    inner.write_bytes(a_record("out/release/x.csv"))
    found = survey([os.path.abspath("out")], DAY, ".repro.json", 1 << 20, time.time())
    assert [item.path for item in found.leftovers] == [str(inner.resolve())]
    Path("out/release.repro.json").write_bytes(a_record("out/release"))
    [(_, why)] = remove_leftovers(found.leftovers, DAY, ".repro.json", 1 << 20)
    assert why == f"it is data of the recorded output {Path('out/release').resolve()}"
    assert inner.exists()


def test_a_temporary_staged_with_an_old_modification_time_is_young() -> None:
    """``shutil.copy2`` (like tar or rsync -a) keeps the source's mtime: the file was made a
    moment ago all the same, and its writer may be computing the rest of it."""
    reference = Path("reference.csv")
    reference.write_text("a,b\n" * 100)
    two_days_ago = time.time() - 2 * DAY
    os.utime(reference, (two_days_ago, two_days_ago))
    Path("out").mkdir()
    staged = Path("out/table.csv-luigi-tmp-0123456789")
    shutil.copy2(reference, staged)
    parts = Path("out/parts-luigi-tmp-0123456789")
    parts.mkdir()
    shutil.copy2(reference, parts / "part-0")
    shutil.copystat(reference, parts)
    result = luigi_repro("gc", "--yes", "--format", "json", "out")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["leftovers"] == []
    kept = {entry["path"]: entry["why"] for entry in document["kept"]}
    assert set(kept) == {str(staged.resolve()), str(parts.resolve())}
    assert all("less than 86400s" in why for why in kept.values())
    assert staged.exists()
    assert (parts / "part-0").exists()


def test_dotdot_after_a_symlink_is_searched_where_the_os_says() -> None:
    """``LINK/..`` is the folder above LINK's target (as for ``ls`` and ``cd -P``), not the
    current folder: gc searches and reports there, and leaves the current folder alone."""
    here = Path("project/a.txt.repro.json")
    here.parent.mkdir()
    here.write_bytes(a_record("project/a.txt"))
    Path("releases/v3").mkdir(parents=True)
    there = Path("releases/old.csv.repro.json")
    there.write_bytes(a_record("releases/old.csv"))
    Path("link").symlink_to(Path("releases/v3").resolve())
    result = luigi_repro("gc", "--yes", "--format", "json", "link/..")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["paths"] == [str(Path("releases").resolve())]
    assert [entry["path"] for entry in document["leftovers"]] == [str(there.resolve())]
    assert here.exists()
    assert not there.exists()
