"""Folder outputs, in-memory mock outputs across forked workers, and foreign file systems."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any, List

import luigi
import pytest
from luigi.mock import MockFileSystem, MockTarget
from luigi.target import FileSystem, FileSystemTarget
from pipelines import build, families, log_run, runs, write_raw

from luigi_repro import (
    HashableDirectoryTarget,
    HashableExternalFile,
    HashableMockTarget,
    ReasonKind,
    TaskWithCheckingInputHash,
    judging,
)
from luigi_repro.record import dump_record
from luigi_repro.targets import HashableFileSystemTarget, HashableLocalTarget, as_hashable
from luigi_repro.testing import context, sample_record

# --- folders -------------------------------------------------------------------------------------


class Partitions(TaskWithCheckingInputHash):
    """Writes one file per line of the raw input into a folder (a partitioned dataset)."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/lines.txt")

    def output(self) -> HashableDirectoryTarget:
        return HashableDirectoryTarget("out/partitions")

    def run(self) -> None:
        log_run(self)
        lines = self.input().open().read().splitlines()
        with self.output().temporary_path() as folder:
            for index, line in enumerate(lines):
                Path(folder, f"part={index}").mkdir()
                Path(folder, f"part={index}", "data.txt").write_text(line + "\n")


def test_directory_output_is_replaced_whole_and_reports_changed_files() -> None:
    """A rerun replaces the folder at once; a hand edit is reported file by file."""
    write_raw("lines", "a\nb\nc\n")
    assert build(Partitions())
    target = Partitions().output()
    assert target.files() == ["part=0/data.txt", "part=1/data.txt", "part=2/data.txt"]
    write_raw("lines", "a\nb\n")
    assert build(Partitions())
    assert target.files() == ["part=0/data.txt", "part=1/data.txt"]  # no stale part=2 left
    assert sorted(p.name for p in Path("out").iterdir()) == [
        ".partitions.repro.lock",
        "partitions",
        "partitions.repro.json",
    ]
    Path(target.path_of("part=1/data.txt")).write_text("B\n")
    with judging(exhaustive=True) as judge:
        verdict = judge.status(Partitions())
    (reason,) = verdict.reasons
    assert reason.kind is ReasonKind.OUTPUT_MODIFIED
    assert reason.evidence["changed"] == ["part=1/data.txt"]


def test_directory_target_is_not_satisfied_by_a_file() -> None:
    """A file where the folder should be does not count as the output."""
    Path("out").mkdir()
    Path("out/partitions").write_text("not a folder")
    assert not HashableDirectoryTarget("out/partitions").exists()


def test_failed_directory_write_keeps_the_previous_folder() -> None:
    """An exception inside temporary_path() leaves the old folder and no temporary one."""
    target = HashableDirectoryTarget("out/kept")
    with target.temporary_path() as folder:
        Path(folder, "a.txt").write_text("old")

    def failing_write() -> None:
        with target.temporary_path() as folder:
            Path(folder, "a.txt").write_text("half")
            raise RuntimeError("failed run")

    with pytest.raises(RuntimeError):
        failing_write()
    assert Path("out/kept/a.txt").read_text() == "old"
    assert sorted(p.name for p in Path("out").iterdir()) == ["kept"]


def test_empty_folders_count_in_a_directory_fingerprint() -> None:
    """Adding or removing an empty sub-folder changes the folder's fingerprint."""
    target = HashableDirectoryTarget("out/d")
    with target.temporary_path() as folder:
        Path(folder, "a.txt").write_text("x")
    before = target.observe(context()).fingerprint
    Path("out/d/empty").mkdir()
    assert target.observe(context()).fingerprint != before


# --- mock targets across forked workers --------------------------------------------------------


class MockSource(luigi.ExternalTask):
    def output(self) -> MockTarget:
        return MockTarget("/mock/source.txt")


class MockUpper(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return MockSource()

    def output(self) -> HashableMockTarget:
        return HashableMockTarget("/mock/upper.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read().upper())


class MockCount(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return MockUpper()

    def output(self) -> HashableMockTarget:
        return HashableMockTarget("/mock/count.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(str(len(self.input().open("r").read())))


def put_mock(path: str, text: str) -> None:
    with MockTarget(path).open("w") as sink:
        sink.write(text)


def test_mock_pipeline_with_forked_workers() -> None:
    """Records of mock outputs live in the shared mock file system, seen by forked workers."""
    MockFileSystem().clear()
    put_mock("/mock/source.txt", "abc")
    assert build(MockCount(), workers=2)
    assert families(runs()) == ["MockCount", "MockUpper"]
    assert MockFileSystem().get_data("/mock/upper.txt.repro.json").startswith(b"{")
    assert MockCount().complete()
    put_mock("/mock/source.txt", "abc")  # the same content written again
    assert build(MockCount(), workers=2)
    assert runs() == []
    put_mock("/mock/source.txt", "xyz")
    assert build(MockCount(), workers=2)
    assert families(runs()) == ["MockCount", "MockUpper"]
    put_mock("/mock/upper.txt", "tampered")
    assert not MockCount().complete()
    MockFileSystem().clear()


def test_plain_mock_targets_get_the_mock_view() -> None:
    """An input that is a plain luigi MockTarget is fingerprinted through HashableMockTarget."""
    view = as_hashable(MockTarget("/mock/plain.txt"))
    assert isinstance(view, HashableMockTarget)
    assert view.uri == "mock:/mock/plain.txt"


# --- a file system luigi_repro knows nothing about ---------------------------------------------


class FolderFileSystem(FileSystem):
    """A minimal foreign file system: ``box://name`` stored under a local folder."""

    root = Path("box-storage")

    def _local(self, path: str) -> Path:
        return self.root / path.split("://", 1)[1]

    def exists(self, path: str) -> bool:
        return self._local(path).exists()

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        local = self._local(path)
        if local.is_dir():
            shutil.rmtree(local)
        else:
            local.unlink()

    def put(self, local_path: str, path: str) -> None:
        self._local(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path, self._local(path))

    def get(self, path: str, local_path: str) -> None:
        shutil.copyfile(self._local(path), local_path)


class ReadOnlyFileSystem(FolderFileSystem):
    """A file system client without put/get (like Azure's): inputs only."""

    put = None  # type: ignore[assignment]
    get = None  # type: ignore[assignment]


class BoxTarget(FileSystemTarget):
    """A target on :class:`FolderFileSystem` with its own open(); not a LocalTarget."""

    fs = FolderFileSystem()

    def __init__(self, path: str, format: Any = None) -> None:  # noqa: A002 - Luigi's name
        super().__init__(path)
        self.format = format

    def open(self, mode: str = "r") -> Any:
        local = self.fs._local(self.path)
        if mode == "r":
            return io.TextIOWrapper(io.BytesIO(local.read_bytes()), encoding="utf-8")
        local.parent.mkdir(parents=True, exist_ok=True)
        return _Writer(local)


class _Writer(io.StringIO):
    def __init__(self, local: Path) -> None:
        super().__init__()
        self.local = local

    def close(self) -> None:
        self.local.write_text(self.getvalue())
        super().close()


class BoxInput(luigi.ExternalTask):
    def output(self) -> BoxTarget:
        return BoxTarget("box://input.txt")


class BoxOutput(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return BoxInput()

    def output(self) -> BoxTarget:
        return BoxTarget("box://output.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read()[::-1])


def test_any_file_system_target_is_hashable_through_the_adapter() -> None:
    """Inputs and outputs on a foreign file system: fingerprinted by content, records beside."""
    with BoxTarget("box://input.txt").open("w") as sink:
        sink.write("hello")
    assert isinstance(as_hashable(BoxTarget("box://x")), HashableFileSystemTarget)
    assert build(BoxOutput())
    assert families(runs()) == ["BoxOutput"]
    assert Path("box-storage/output.txt").read_text() == "olleh"
    assert Path("box-storage/output.txt.repro.json").read_text().startswith("{")
    assert BoxOutput().complete()
    with BoxTarget("box://input.txt").open("w") as sink:
        sink.write("hellO")
    with judging(exhaustive=True) as judge:
        kinds: List[Any] = [r.kind for r in judge.status(BoxOutput()).reasons]
    assert kinds == [ReasonKind.INPUT_CHANGED]
    assert build(BoxOutput())
    assert Path("box-storage/output.txt").read_text() == "Olleh"


class MockViaTemporaryPath(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return MockSource()

    def output(self) -> HashableMockTarget:
        return HashableMockTarget("/mock/tp.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().temporary_path() as tmp, MockTarget(tmp).open("w") as sink:
            sink.write(self.input().open("r").read()[::-1])


def test_mock_temporary_path_replaces_an_existing_output() -> None:
    """A rerun through temporary_path() replaces the mock output (Luigi's would refuse)."""
    MockFileSystem().clear()
    put_mock("/mock/source.txt", "abc")
    assert build(MockViaTemporaryPath())
    put_mock("/mock/source.txt", "xyz")
    assert build(MockViaTemporaryPath())
    assert families(runs()) == ["MockViaTemporaryPath", "MockViaTemporaryPath"]
    assert MockFileSystem().get_data("/mock/tp.txt") == b"zyx"
    keys = MockFileSystem().get_all_data().keys()
    assert not [k for k in keys if "luigi-tmp" in k]
    MockFileSystem().clear()


class BareTarget(BoxTarget):
    fs = ReadOnlyFileSystem()


class BareInput(luigi.ExternalTask):
    def output(self) -> BareTarget:
        return BareTarget("box://bare-input.txt")


class ReadsBare(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return BareInput()

    def output(self) -> BoxTarget:
        return BoxTarget("box://from-bare.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read().upper())


class WritesBare(TaskWithCheckingInputHash):
    def output(self) -> BareTarget:
        return BareTarget("box://bare-output.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("x")


def test_file_system_without_put_and_get_is_input_only() -> None:
    """Without put/get an input is still checked by content; as an output it is refused."""
    with BareTarget("box://bare-input.txt").open("w") as sink:
        sink.write("abc")
    assert build(ReadsBare())
    runs()
    assert ReadsBare().complete()
    with BareTarget("box://bare-input.txt").open("w") as sink:
        sink.write("abd")
    assert not ReadsBare().complete()
    assert build(WritesBare()) is False  # refused before run(): nothing written anywhere
    assert not Path("box-storage/bare-output.txt").exists()
    assert not WritesBare().complete()


def test_binary_content_is_hashed_byte_for_byte() -> None:
    """Through fs.get the adapter sees bytes: line endings and non-UTF-8 bytes count."""
    view = HashableFileSystemTarget(BoxTarget("box://bin"))
    Path("box-storage").mkdir(exist_ok=True)
    fingerprints = []
    for data in (b"a\r\nb", b"a\nb", b"\xff\xfe"):
        Path("box-storage/bin").write_bytes(data)
        fingerprints.append(view.observe(context()).fingerprint)
    assert len(set(fingerprints)) == 3


def test_only_real_bookkeeping_is_left_out_of_a_folder() -> None:
    """A sibling's record and our hidden files are skipped; a user's *.repro.json is data."""
    from luigi_repro.locking import LOCK_FILE_MARK

    target = HashableDirectoryTarget("out/mixed")
    record = dump_record(sample_record(HashableLocalTarget("out/mixed/data.csv")))
    with target.temporary_path() as folder:
        Path(folder, "data.csv").write_text("1")
        Path(folder, "data.csv.repro.json").write_bytes(record)  # the record of data.csv: ours
        Path(folder, "notes.repro.json").write_text("{}")  # no sibling "notes": user data
        Path(folder, ".data.csv.repro.lock").write_bytes(LOCK_FILE_MARK)
    assert target.files() == ["data.csv", "notes.repro.json"]
    before = target.observe(context()).fingerprint
    Path("out/mixed/notes.repro.json").write_text('{"edited": true}')
    assert target.observe(context()).fingerprint != before
