"""Files run() reads without declaring them: seen by the audit hook, then warned about, tracked,
refused or ignored ([luigi_repro] undeclared_reads)."""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import luigi
import pytest
from pipelines import (
    Clean,
    build,
    edit_record_inputs,
    failure_of,
    families,
    log_run,
    make_raw,
    runs,
    status_of,
    write_raw,
)

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    InputChangedDuringRun,
    ReasonKind,
    Status,
    TaskWithCheckingInputHash,
    WrapperTask,
    audit_paths,
    reads,
)
from luigi_repro.cli import main
from luigi_repro.errors import UndeclaredRead
from luigi_repro.log import LOGGER_NAME
from luigi_repro.record import Record, parse_record

DATA = "data/financials.csv"


@pytest.fixture(autouse=True)
def _data_outside_the_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files under the temp folder are never counted, and pytest works there: move it aside."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    Path("data").mkdir()
    Path(DATA).write_text("year,revenue\n2023,10\n2024,12\n")


def use_policy(monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    monkeypatch.setenv("LUIGI_REPRO_UNDECLARED_READS", policy)


def record_beside(path: str) -> Record:
    return parse_record(Path(path + ".repro.json").read_bytes(), path)


def undeclared_entries(record: Record) -> List[Any]:
    return [entry for entry in record.inputs if entry.undeclared]


class Financials(TaskWithCheckingInputHash):
    """Reads a class-attribute LocalTarget in run() that requires() never declares."""

    financials = luigi.LocalTarget(DATA)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/summary.txt")

    def run(self) -> None:
        log_run(self)
        with self.financials.open("r") as source:
            rows = source.read().splitlines()
        with self.output().open("w") as sink:
            sink.write(f"{len(rows) - 1} years\n")


class Everything(WrapperTask):
    """A task without undeclared reads beside one with them."""

    def requires(self) -> List[luigi.Task]:
        return [Clean("a"), Financials()]


# --- warn --------------------------------------------------------------------------------------


def test_warn_names_the_file_once_and_lists_it_in_the_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Under the default policy one warning names the file and how to declare it."""
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        assert build(Financials())
    warnings = [r.getMessage() for r in caplog.records if "does not declare" in r.getMessage()]
    assert len(warnings) == 1
    assert os.path.abspath(DATA) in warnings[0]
    assert "HashableExternalFile(path)" in warnings[0]
    record = record_beside("out/summary.txt")
    assert record.undeclared_reads == (os.path.abspath(DATA),)
    assert record.inputs == ()


def test_warn_does_not_rerun_after_an_edit() -> None:
    """Under warn a listed file is not an input: editing it leaves the task complete."""
    assert build(Financials())
    Path(DATA).write_text("year,revenue\n2023,11\n2024,12\n")
    assert Financials().complete()


# --- track -------------------------------------------------------------------------------------


def test_track_records_the_file_as_an_implicit_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under track the file becomes an input entry keyed by its path, with its fingerprint."""
    use_policy(monkeypatch, "track")
    assert build(Financials())
    record = record_beside("out/summary.txt")
    path = os.path.abspath(DATA)
    [entry] = record.inputs
    assert (entry.key, entry.output_key, entry.uri) == ((f"undeclared:{path}",), (), path)
    assert entry.undeclared
    assert entry.fingerprint is not None
    assert record.undeclared_reads == ()
    assert Financials().complete()


def test_track_edit_reruns_exactly_that_task_and_verify_names_the_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Editing a tracked file makes its reader stale, verify says which file, and only it reruns."""
    use_policy(monkeypatch, "track")
    make_raw()
    assert build(Everything())
    assert families(runs()) == ["Clean", "Financials"]
    Path(DATA).write_text("year,revenue\n2023,10\n2024,13\n")
    code = main(["verify", "--module", "test_undeclared_reads", "Financials"])
    out = capsys.readouterr().out
    assert code != 0
    assert f"undeclared input {os.path.abspath(DATA)} changed" in out
    assert build(Everything())
    assert families(runs()) == ["Financials"]
    assert Everything().complete()


def test_track_deleted_file_is_a_changed_input_never_a_removed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tracked file that disappears is INPUT_CHANGED naming it, not INPUTS_REMOVED."""
    use_policy(monkeypatch, "track")
    assert build(Financials())
    Path(DATA).unlink()
    verdict = status_of(Financials())
    assert verdict.status == Status.STALE
    assert [r.kind for r in verdict.reasons] == [ReasonKind.INPUT_CHANGED]
    assert f"undeclared input {os.path.abspath(DATA)} does not exist" in verdict.reasons[0].message


def test_track_refuses_a_record_that_only_listed_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A record written under warn cannot vouch for the files it listed once they are tracked."""
    assert build(Financials())
    use_policy(monkeypatch, "track")
    verdict = status_of(Financials())
    assert [r.kind for r in verdict.reasons] == [ReasonKind.INPUTS_ADDED]
    assert os.path.abspath(DATA) in verdict.reasons[0].message
    runs()
    assert build(Financials())
    assert families(runs()) == ["Financials"]
    assert len(undeclared_entries(record_beside("out/summary.txt"))) == 1


@pytest.mark.parametrize("policy", ["warn", "error", "ignore"])
def test_tracked_entries_are_still_checked_under_other_policies(
    monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    """A record that tracked a file vouched for it: an edit is seen whatever the policy now."""
    use_policy(monkeypatch, "track")
    assert build(Financials())
    use_policy(monkeypatch, policy)
    assert Financials().complete()
    Path(DATA).write_text("changed\n")
    verdict = status_of(Financials())
    assert [r.kind for r in verdict.reasons] == [ReasonKind.INPUT_CHANGED]
    assert os.path.abspath(DATA) in verdict.reasons[0].message


class Rewrites(TaskWithCheckingInputHash):
    """Reads the undeclared file, then changes it before finishing."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/rewrites.txt")

    def run(self) -> None:
        text = Path(DATA).read_text()
        with self.output().open("w") as sink:
            sink.write(text)
        with open(DATA, "a") as source:
            source.write("2025,14\n")


def test_track_file_changed_during_the_run_fails_without_a_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tracked file that changed after run() read it fails the run like a declared input."""
    use_policy(monkeypatch, "track")
    error = failure_of(Rewrites())
    assert isinstance(error, InputChangedDuringRun)
    assert error.input_uri == os.path.abspath(DATA)
    assert Path("out/rewrites.txt").exists()
    assert not Path("out/rewrites.txt.repro.json").exists()


def test_record_only_audit_checks_tracked_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """``verify PATH`` compares a tracked file's fingerprint like any other input's."""
    use_policy(monkeypatch, "track")
    assert build(Financials())
    assert audit_paths(["out/summary.txt"]).ok
    Path(DATA).write_text("changed\n")
    report = audit_paths(["out/summary.txt"])
    reasons = [r for task in report.tasks.values() for r in task.reasons]
    assert [r.kind for r in reasons] == [ReasonKind.INPUT_CHANGED]
    assert os.path.abspath(DATA) in reasons[0].message


# --- error and ignore --------------------------------------------------------------------------


def test_error_fails_naming_the_file_without_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under error the run fails with UndeclaredRead naming the file, and writes no record."""
    use_policy(monkeypatch, "error")
    error = failure_of(Financials())
    assert isinstance(error, UndeclaredRead)
    assert error.paths == (os.path.abspath(DATA),)
    assert os.path.abspath(DATA) in str(error)
    assert not Path("out/summary.txt.repro.json").exists()
    assert build(Financials()) is False


def test_ignore_does_not_install_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ignore nothing is watched (no hook installed) and nothing is listed."""
    installed: List[Callable[..., Any]] = []
    monkeypatch.setattr(reads, "_installed", False)
    monkeypatch.setattr(sys, "addaudithook", installed.append)
    use_policy(monkeypatch, "ignore")
    assert build(Financials())
    assert installed == []
    assert record_beside("out/summary.txt").undeclared_reads == ()
    use_policy(monkeypatch, "warn")
    Path("out/summary.txt").unlink()
    assert build(Financials())
    assert installed == [reads._hook]


# --- what is seen ------------------------------------------------------------------------------


def _pandas(task: luigi.Task) -> None:
    import pandas

    pandas.read_csv(DATA)


def _thread(task: luigi.Task) -> None:
    worker = threading.Thread(target=Path(DATA).read_bytes)
    worker.start()
    worker.join()


def _after_chdir(task: luigi.Task) -> None:
    home = os.getcwd()
    os.chdir("data")
    try:
        Path("financials.csv").read_text()
    finally:
        os.chdir(home)


def _os_open(task: luigi.Task) -> None:
    os.close(os.open(DATA, os.O_RDONLY))


SEEN: Dict[str, Callable[[luigi.Task], None]] = {
    "pandas.read_csv": _pandas,
    "a thread the task starts": _thread,
    "a relative path after os.chdir": _after_chdir,
    "os.open": _os_open,
}


class Reader(TaskWithCheckingInputHash):
    """Does one named thing in run(), then writes its output."""

    action = luigi.Parameter()

    def requires(self) -> Dict[str, luigi.Task]:
        return {"file": HashableExternalFile("raw/a.txt"), "folder": HashableExternalFile("lot")}

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/reader_{self.action.replace(' ', '_')}.txt")

    def run(self) -> None:
        {**SEEN, **NOT_SEEN}[self.action](self)
        with self.output().open("w") as sink:
            sink.write(self.action)


@pytest.mark.parametrize("action", sorted(SEEN))
def test_reads_are_seen(action: str) -> None:
    """The undeclared file is listed, however run() opened it."""
    make_raw()
    Path("lot").mkdir()
    task = Reader(action)
    assert build(task)
    assert record_beside(task.output().path).undeclared_reads == (os.path.abspath(DATA),)


def _declared_file(task: luigi.Task) -> None:
    Path("raw/a.txt").read_text()


def _declared_folder(task: luigi.Task) -> None:
    Path("lot/part-0.txt").read_text()


def _own_output(task: luigi.Task) -> None:
    with task.output().temporary_path() as scratch:
        Path(scratch).write_text("draft")
        Path(scratch).read_text()
    Path(task.output().path).read_text()


def _temp_folder(task: luigi.Task) -> None:
    with tempfile.NamedTemporaryFile("w+") as scratch:
        scratch.write("x")
        scratch.flush()
        Path(scratch.name).read_text()


def _module_import(task: luigi.Task) -> None:
    name = f"helper_{uuid.uuid4().hex}"
    Path("lib").mkdir(exist_ok=True)
    Path("lib", f"{name}.py").write_text("VALUE = 1\n")
    sys.path.insert(0, os.path.abspath("lib"))
    try:
        importlib.import_module(name)
    finally:
        sys.path.remove(os.path.abspath("lib"))


def _inner_complete(task: luigi.Task) -> None:
    Clean("a").complete()  # reads Clean's record and fingerprints its files


def _directory(task: luigi.Task) -> None:
    os.close(os.open("lot", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)))
    os.listdir("lot")


def _pyarrow(task: luigi.Task) -> None:
    # Native reads are invisible to the hook: this test keeps the documented limit true.
    import pyarrow.parquet

    pyarrow.parquet.read_table("data/table.parquet")


NOT_SEEN: Dict[str, Callable[[luigi.Task], None]] = {
    "a declared file": _declared_file,
    "a file in a declared folder": _declared_folder,
    "its own output and temporary file": _own_output,
    "the temp folder": _temp_folder,
    "a module imported in run()": _module_import,
    "luigi_repro's own reads in an inner complete()": _inner_complete,
    "a folder": _directory,
    "pyarrow's native reader": _pyarrow,
}


@pytest.mark.parametrize("action", sorted(NOT_SEEN))
def test_reads_that_are_not_undeclared(monkeypatch: pytest.MonkeyPatch, action: str) -> None:
    """Declared inputs, own outputs, temporaries, modules, luigi_repro's and native reads."""
    # Every fingerprint is then too fresh to trust, so an inner complete() really reads files.
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", "3600")
    make_raw()
    Path("lot").mkdir()
    Path("lot/part-0.txt").write_text("part\n")
    if "pyarrow" in action:
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.table({"x": [1, 2]}), "data/table.parquet")
    assert build(Clean("a"))
    task = Reader(action)
    assert build(task)
    assert record_beside(task.output().path).undeclared_reads == ()


# --- generator runs and forked workers -----------------------------------------------------------


class Staged(TaskWithCheckingInputHash):
    """Reads one undeclared file before yielding a dependency and another after it."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/staged.txt")

    def run(self) -> Iterator[Any]:
        first = Path(DATA).read_text()
        cleaned = yield Clean("a")
        second = Path("data/extra.txt").read_text()
        with self.output().open("w") as sink:
            sink.write(first + cleaned.open().read() + second)


def test_generator_run_reads_are_attributed_to_their_own_task() -> None:
    """Reads on both sides of a yield count; the dependency run in between keeps its own."""
    make_raw()
    Path("data/extra.txt").write_text("extra\n")
    assert build(Staged())
    listed = record_beside("out/staged.txt").undeclared_reads
    assert listed == (os.path.abspath("data/extra.txt"), os.path.abspath(DATA))
    assert record_beside("out/clean_a.txt").undeclared_reads == ()


def test_forked_workers_warn_and_track(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --workers 2 tasks run in forked children, which inherit the hook and its policy."""
    make_raw()
    # A file handler is inherited by the children, so their warnings reach this process.
    handler = logging.FileHandler("warnings.log")
    logging.getLogger(LOGGER_NAME).addHandler(handler)
    try:
        assert build(Everything(), workers=2)
    finally:
        logging.getLogger(LOGGER_NAME).removeHandler(handler)
        handler.close()
    warnings = Path("warnings.log").read_text()
    assert warnings.count("does not declare") == 1
    assert os.path.abspath(DATA) in warnings
    assert record_beside("out/summary.txt").undeclared_reads == (os.path.abspath(DATA),)
    assert record_beside("out/clean_a.txt").undeclared_reads == ()
    use_policy(monkeypatch, "track")
    runs()
    assert build(Everything(), workers=2)
    assert families(runs()) == ["Financials"]
    assert len(undeclared_entries(record_beside("out/summary.txt"))) == 1
    Path(DATA).write_text("year,revenue\n")
    assert build(Everything(), workers=2)
    assert families(runs()) == ["Financials"]
    write_raw("a", "Bonjour\n")
    assert build(Everything(), workers=2)
    assert families(runs()) == ["Clean"]


# --- the open() flags --------------------------------------------------------------------------

FLAGS = [
    ("r", os.O_RDONLY, True),
    (None, os.O_RDONLY, True),
    ("r+", os.O_RDWR, True),
    ("a+", os.O_RDWR | os.O_APPEND | os.O_CREAT, True),
    ("w", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, False),
    ("a", os.O_WRONLY | os.O_APPEND | os.O_CREAT, False),
    ("w+", os.O_RDWR | os.O_CREAT | os.O_TRUNC, False),
    ("x+", os.O_RDWR | os.O_CREAT | os.O_EXCL, False),
    (None, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0), not hasattr(os, "O_DIRECTORY")),
    ("rb", None, True),
    ("wb", None, False),
    (None, None, False),
]


@pytest.mark.parametrize(("mode", "flags", "reads_content"), FLAGS)
def test_which_opens_are_reads(mode: Any, flags: Any, reads_content: bool) -> None:
    """Reading and read-write opens of existing content count; creating, truncating do not."""
    assert reads._is_read(mode, flags) is reads_content


class ThroughALink(TaskWithCheckingInputHash):
    """Reads ``link/../data.txt``: with link -> real/deep, that is real/data.txt."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/through_link.txt")

    def run(self) -> None:
        with open("link/../data.txt") as source, self.output().open("w") as sink:
            sink.write(source.read())


def test_a_read_through_a_symlink_and_dotdot_tracks_the_file_the_os_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tracked file is real/data.txt (what the OS opened), so editing the look-alike
    ./data.txt changes nothing and editing real/data.txt makes the task stale."""
    use_policy(monkeypatch, "track")
    os.makedirs("real/deep")
    os.symlink("real/deep", "link")
    Path("data.txt").write_text("look-alike\n")
    Path("real/data.txt").write_text("the one read\n")
    assert build(ThroughALink())
    [entry] = undeclared_entries(record_beside("out/through_link.txt"))
    assert entry.uri == os.path.join(os.getcwd(), "real", "data.txt")
    Path("data.txt").write_text("edited look-alike\n")
    assert ThroughALink().complete()
    Path("real/data.txt").write_text("edited\n")
    assert not ThroughALink().complete()


def test_a_copied_project_checks_its_own_tracked_files_not_the_originals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tracked reads are recorded where the run read them; in a copy of the project (records
    and all) they are the copy's files, for complete() as for the record-only audit."""
    use_policy(monkeypatch, "track")
    original = Path.cwd()
    assert build(Financials())
    copy = original.parent / "copy"
    shutil.copytree(original, copy, symlinks=True)
    monkeypatch.chdir(copy)
    assert Financials().complete()
    Path(DATA).write_text("year,revenue\n2023,10\n2024,99\n")  # the copy's file only
    assert not Financials().complete()
    assert not audit_paths(["out/summary.txt"]).ok
    monkeypatch.chdir(original)
    assert Financials().complete()  # the original's file did not change


def test_the_record_only_audit_refuses_a_listed_read_under_track(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A record written under warn lists its reads without fingerprints; once track is on,
    complete(), verify and the record-only audit all refuse it."""
    use_policy(monkeypatch, "warn")
    assert build(Financials())
    use_policy(monkeypatch, "track")
    assert not Financials().complete()
    report = audit_paths(["out/summary.txt"])
    assert not report.ok
    [node] = [n for n in report.tasks.values() if n.family == "Financials"]
    assert [r.kind for r in node.reasons] == [ReasonKind.INPUTS_ADDED]


def test_a_record_naming_a_pseudo_file_is_refused_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracked entry edited to /proc/self/pagemap (it would read for ever) is reported as not
    data, never read."""
    import attrs

    use_policy(monkeypatch, "track")
    assert build(Financials())
    edit_record_inputs(
        "out/summary.txt",
        lambda e: attrs.evolve(e, uri="/proc/self/pagemap") if e.undeclared else e,
    )
    verdict = status_of(Financials())
    assert [r.kind for r in verdict.reasons] == [ReasonKind.INPUT_CHANGED]
    assert "pseudo-file" in verdict.reasons[0].message


class ReadsResolved(TaskWithCheckingInputHash):
    """Reads its declared input through the path its symlinks resolve to."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("data/x.csv")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/resolved.txt")

    def run(self) -> None:
        with open(Path(self.input().path).resolve()) as source, self.output().open("w") as sink:
            sink.write(source.read())


def test_a_declared_input_opened_by_its_resolved_path_is_not_undeclared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``data`` is a symlink to storage elsewhere; opening the resolved path of a declared file
    reads that declared file, so even ``error`` lets the task run."""
    use_policy(monkeypatch, "error")
    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / "x.csv").write_text("a,b\n1,2\n")
    shutil.rmtree("data")
    os.symlink(storage, "data")
    assert build(ReadsResolved())
    assert undeclared_entries(record_beside("out/resolved.txt")) == []


class ReadsConfiguration(TaskWithCheckingInputHash):
    """Reads files the way libraries read their configuration."""

    paths = luigi.ListParameter()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/configured.txt")

    def run(self) -> None:
        sizes = [len(Path(path).read_bytes()) for path in self.paths]
        with self.output().open("w") as sink:
            sink.write(str(sizes))


def test_configuration_folders_are_not_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files under /etc and under undeclared_reads_ignore (folders or glob patterns, such as the
    hidden folders of a home) are never counted, even under ``error``."""
    use_policy(monkeypatch, "error")
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_text("[default]\nregion = eu-west-1\n")
    (home / "notes").mkdir()
    (home / "notes" / "n.txt").write_text("data\n")
    monkeypatch.setenv("LUIGI_REPRO_UNDECLARED_READS_IGNORE", f"/etc, {home}/.*, {home}/notes")
    etc = next(p for p in ("/etc/hostname", "/etc/passwd", "/etc/os-release") if Path(p).exists())
    task = ReadsConfiguration(paths=[etc, str(home / ".aws" / "config"), str(home / "notes/n.txt")])
    assert build(task)
    monkeypatch.setenv("LUIGI_REPRO_UNDECLARED_READS_IGNORE", "")
    Path("out/configured.txt").unlink()
    error = failure_of(task)
    assert isinstance(error, UndeclaredRead)
    assert set(error.paths) == {etc, str(home / ".aws" / "config"), str(home / "notes/n.txt")}


class RunsAnother(TaskWithCheckingInputHash):
    """Audits and runs another task from inside its own run()."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/runs_another.txt")

    def run(self) -> None:
        Path("out").mkdir(exist_ok=True)
        Clean("a").run()  # its protocol reads its input and records: luigi_repro's own reads
        report = audit_paths(["out/clean_a.txt"])
        with self.output().open("w") as sink:
            sink.write(str(report.ok))


def test_luigi_repro_own_reads_inside_a_run_are_never_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run() that calls another task's run() and a record-only audit is not charged with the
    files luigi_repro read for them."""
    use_policy(monkeypatch, "error")
    make_raw()
    assert build(RunsAnother())
    assert Path("out/runs_another.txt").read_text() == "True"


class Unpacks(TaskWithCheckingInputHash):
    """Writes a scratch file, reads it back, deletes it."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/unpacked.txt")

    def run(self) -> None:
        os.makedirs("scratch", exist_ok=True)
        Path("scratch/unpacked.csv").write_text("a,b\n1,2\n")
        rows = Path("scratch/unpacked.csv").read_text().splitlines()
        os.remove("scratch/unpacked.csv")
        with self.output().open("w") as sink:
            sink.write(str(len(rows)))


def test_a_scratch_file_the_run_wrote_first_is_not_an_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a run reads back from a file it created itself is its own data, under every policy."""
    use_policy(monkeypatch, "track")
    assert build(Unpacks())
    assert undeclared_entries(record_beside("out/unpacked.txt")) == []
    assert Unpacks().complete()


def test_a_project_inside_the_temp_folder_still_has_its_reads_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files under the temp folder are never data — except under the working folder of a
    project that lives there (a checkout in /tmp)."""
    use_policy(monkeypatch, "track")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the project is inside it now
    assert build(Financials())
    [entry] = undeclared_entries(record_beside("out/summary.txt"))
    assert entry.uri == os.path.abspath(DATA)
