"""``HashableLocalTarget``: a true drop-in for ``luigi.LocalTarget``, and a HashableTarget.

Where the behaviour must be Luigi's own, the same test runs on ``luigi.LocalTarget`` and on
``HashableLocalTarget`` so that any divergence shows up as one failing parameter.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import inspect
import os
import pickle
import tempfile
import threading
from pathlib import Path
from typing import Any, List, Optional, Type

import luigi
import luigi.format
import luigi.local_target
import luigi.target
import pytest
import xxhash

from luigi_repro.config import Settings
from luigi_repro.errors import RecordError
from luigi_repro.record import OutputEntry, Record, RunSection, TaskSection, dump_record
from luigi_repro.targets import HashableLocalTarget, HashableTarget
from luigi_repro.targets.base import FingerprintContext, Observation, as_hashable, target_from_uri

BOTH = pytest.mark.parametrize(
    "cls", [luigi.LocalTarget, HashableLocalTarget], ids=["luigi", "hashable"]
)

HOUR_NS = 3600 * 1_000_000_000


def fp(data: bytes) -> str:
    """The fingerprint luigi_repro must give raw bytes by default."""
    return "xxh3_128:" + xxhash.xxh3_128(data).hexdigest()


def context(racy_window_ns: int = 0, full: bool = False) -> FingerprintContext:
    return FingerprintContext(
        algorithm="xxh3_128", racy_window_ns=racy_window_ns, record_suffix=".repro.json", full=full
    )


def listing(folder: str = ".") -> List[str]:
    """Every path below ``folder``, relative and sorted (folders end with a slash)."""
    found = []
    for root, dirs, files in os.walk(folder):
        rel = os.path.relpath(root, folder)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        found += [prefix + d + "/" for d in dirs] + [prefix + f for f in files]
    return sorted(found)


def replace_file(path: str, data: bytes) -> None:
    """Give ``path`` new content under a new inode, as editors and atomic writers do."""
    Path(path + ".new").write_bytes(data)
    os.replace(path + ".new", path)


def make_record(run_id: str = "run-1", uri: str = "/data/out.txt") -> Record:
    return Record(
        task=TaskSection(
            family="Clean",
            module="pipelines",
            task_id="Clean_a_0123456789",
            params={"name": "a"},
            code_fingerprint=fp(b"code"),
        ),
        inputs=(),
        outputs=(OutputEntry(key=(), uri=uri, fingerprint=fp(b"out"), size=3),),
        run=RunSection(
            run_id=run_id,
            started="2024-01-01T00:00:00+00:00",
            ended="2024-01-01T00:00:01+00:00",
            duration_s=1.0,
            host="host",
            pid=123,
        ),
    )


@pytest.fixture
def tmpdir_for_luigi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``tempfile.gettempdir()`` (used for ``is_tmp`` targets) at a private folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# --- identity and constructor ------------------------------------------------------------------


def test_is_a_luigi_local_target_and_a_hashable_target() -> None:
    """User code doing isinstance checks against Luigi's classes keeps accepting the target."""
    target = HashableLocalTarget("x.txt")
    assert isinstance(target, luigi.LocalTarget)
    assert isinstance(target, luigi.target.FileSystemTarget)
    assert isinstance(target, luigi.target.Target)
    assert isinstance(target, HashableTarget)


def test_constructor_signature_matches_luigi() -> None:
    """Parameter names, order and defaults are exactly LocalTarget's."""
    ours = inspect.signature(HashableLocalTarget).parameters
    theirs = inspect.signature(luigi.LocalTarget).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [
        (p.name, p.default, p.kind) for p in theirs.values()
    ]


@BOTH
def test_constructor_positional_order(cls: Type[luigi.LocalTarget]) -> None:
    """``(path, format, is_tmp)`` given positionally land in the right attributes."""
    target = cls("x.bin", luigi.format.Nop, True)
    assert (target.path, target.format, target.is_tmp) == ("x.bin", luigi.format.Nop, True)


@BOTH
def test_constructor_keywords_and_defaults(cls: Type[luigi.LocalTarget]) -> None:
    """Keywords work in any order and the defaults are Luigi's (Text format, not temporary)."""
    target = cls(is_tmp=False, format=luigi.format.UTF8, path="x.txt")
    assert (target.path, target.format, target.is_tmp) == ("x.txt", luigi.format.UTF8, False)
    plain = cls("y.txt")
    assert plain.format is luigi.format.get_default_format()
    assert plain.is_tmp is False


@BOTH
def test_pathlib_path_is_converted_to_str(cls: Type[luigi.LocalTarget]) -> None:
    """A ``pathlib.Path`` is accepted and stored as a plain ``str``."""
    target = cls(Path("sub") / "x.txt")
    assert type(target.path) is str
    assert target.path == os.path.join("sub", "x.txt")
    assert str(target) == target.path


@BOTH
@pytest.mark.parametrize("path", [None, ""])
def test_path_or_is_tmp_must_be_set(cls: Type[luigi.LocalTarget], path: Optional[str]) -> None:
    """Without a path and without ``is_tmp`` the constructor fails with Luigi's message."""
    with pytest.raises(Exception, match="path or is_tmp must be set"):
        cls(path)


@BOTH
def test_pickle_round_trip(cls: Type[luigi.LocalTarget]) -> None:
    """A target survives pickling (Luigi's multiprocessing workers pickle tasks and targets)."""
    target = cls("x.txt", luigi.format.Nop)
    clone = pickle.loads(pickle.dumps(target))
    assert type(clone) is cls
    assert (clone.path, clone.is_tmp) == ("x.txt", False)
    assert type(clone.format) is type(luigi.format.Nop)


@BOTH
def test_exists(cls: Type[luigi.LocalTarget]) -> None:
    """``exists()`` is True for a file or a folder and False for a missing path."""
    Path("out.txt").write_text("x")
    Path("folder").mkdir()
    assert cls("out.txt").exists() is True
    assert cls("folder").exists() is True
    assert cls("folder/").exists() is True
    assert cls("missing.txt").exists() is False


# --- is_tmp ------------------------------------------------------------------------------------


@BOTH
def test_is_tmp_target_gets_a_temporary_path(
    cls: Type[luigi.LocalTarget], tmpdir_for_luigi: Path
) -> None:
    """``is_tmp=True`` without a path picks ``luigi-tmp-*`` in the temp folder."""
    target = cls(is_tmp=True)
    assert os.path.dirname(target.path) == str(tmpdir_for_luigi)
    assert os.path.basename(target.path).startswith("luigi-tmp-")
    assert not target.exists()


@BOTH
def test_is_tmp_target_deletes_itself_when_garbage_collected(
    cls: Type[luigi.LocalTarget], tmpdir_for_luigi: Path
) -> None:
    """Dropping the last reference to a written ``is_tmp`` target deletes its file."""
    target = cls(is_tmp=True)
    with target.open("w") as stream:
        stream.write("scratch")
    path = target.path
    assert os.path.exists(path)
    del target
    gc.collect()
    assert not os.path.exists(path)


def test_is_tmp_target_deletes_its_record_too(tmpdir_for_luigi: Path) -> None:
    """A garbage-collected ``is_tmp`` HashableLocalTarget leaves neither file nor record."""
    target = HashableLocalTarget(is_tmp=True)
    with target.open("w") as stream:
        stream.write("scratch")
    target.write_record_bytes(Settings(), b"{}")
    del target
    gc.collect()
    assert listing(str(tmpdir_for_luigi)) == []


# --- fs ----------------------------------------------------------------------------------------


def test_fs_is_luigis_class_level_local_file_system() -> None:
    """``fs`` is a plain class attribute holding a LocalFileSystem of exactly Luigi's type."""
    static = inspect.getattr_static(HashableLocalTarget, "fs")
    assert type(static) is type(luigi.LocalTarget.fs) is luigi.local_target.LocalFileSystem
    assert HashableLocalTarget("a").fs is HashableLocalTarget("b").fs is static


@BOTH
def test_fs_rename_dont_move_refuses_an_existing_destination(cls: Type[luigi.LocalTarget]) -> None:
    """Other code relying on ``fs.rename_dont_move`` still gets FileAlreadyExists."""
    Path("src.txt").write_text("new")
    Path("dst.txt").write_text("old")
    with pytest.raises(luigi.target.FileAlreadyExists):
        cls("dst.txt").fs.rename_dont_move("src.txt", "dst.txt")
    assert Path("src.txt").read_text() == "new"
    assert Path("dst.txt").read_text() == "old"


@BOTH
def test_fs_rename_dont_move_renames_to_a_free_destination(cls: Type[luigi.LocalTarget]) -> None:
    """``fs.rename_dont_move`` to a free name renames the file."""
    Path("src.txt").write_text("new")
    cls("dst.txt").fs.rename_dont_move("src.txt", "dst.txt")
    assert listing() == ["dst.txt"]
    assert Path("dst.txt").read_text() == "new"


# --- open --------------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("existing", [None, "old"], ids=["new", "overwrite"])
def test_open_w_is_atomic(cls: Type[luigi.LocalTarget], existing: Optional[str]) -> None:
    """Until close, the output is absent or keeps its old content; then it holds the new."""
    if existing is not None:
        Path("out.txt").write_text(existing)
    with cls("out.txt").open("w") as stream:
        stream.write("new")
        stream.flush()
        if existing is None:
            assert not os.path.exists("out.txt")
        else:
            assert Path("out.txt").read_text() == existing
        (temp,) = [name for name in os.listdir(".") if name != "out.txt"]
        assert temp.startswith("out.txt-luigi-tmp-")
    assert listing() == ["out.txt"]
    assert Path("out.txt").read_text() == "new"


@BOTH
def test_open_w_exception_keeps_old_content_and_no_temp(cls: Type[luigi.LocalTarget]) -> None:
    """An exception inside ``with open('w')`` leaves the previous content and no temporary."""
    Path("out.txt").write_text("old")

    def write_and_fail() -> None:
        with cls("out.txt").open("w") as stream:
            stream.write("half-written")
            stream.flush()
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        write_and_fail()
    gc.collect()  # Luigi removes the temporary when the abandoned file object is collected
    assert listing() == ["out.txt"]
    assert Path("out.txt").read_text() == "old"


@BOTH
def test_open_w_creates_parent_folders(cls: Type[luigi.LocalTarget]) -> None:
    """Writing ``a/b/out.txt`` creates ``a/b`` first."""
    with cls(os.path.join("a", "b", "out.txt")).open("w") as stream:
        stream.write("x")
    assert listing() == ["a/", "a/b/", "a/b/out.txt"]


@BOTH
@pytest.mark.parametrize(
    ("fmt", "value", "on_disk"),
    [
        (luigi.format.Nop, b"\x00\xffraw bytes\n", b"\x00\xffraw bytes\n"),
        (luigi.format.UTF8, "h\u00e9llo \u2713\n", "h\u00e9llo \u2713\n".encode()),
        (luigi.format.Gzip, b"compress me " * 50, None),
    ],
    ids=["nop", "utf8", "gzip"],
)
def test_open_round_trip_with_format(
    cls: Type[luigi.LocalTarget], fmt: Any, value: Any, on_disk: Optional[bytes]
) -> None:
    """What is written through a format reads back identically, and the disk holds its encoding."""
    target = cls("out.dat", format=fmt)
    with target.open("w") as stream:
        stream.write(value)
    raw = Path("out.dat").read_bytes()
    if on_disk is None:
        assert gzip.decompress(raw) == value
    else:
        assert raw == on_disk
    with target.open("r") as stream:
        assert stream.read() == value


@BOTH
@pytest.mark.parametrize("mode", ["a", "x", "r+"])
def test_bad_mode_raises_like_luigi(cls: Type[luigi.LocalTarget], mode: str) -> None:
    """Modes other than r/w are refused with Luigi's message and create nothing."""
    with pytest.raises(Exception, match=r"mode must be 'r' or 'w' \(got: "):
        cls("out.txt").open(mode)
    assert listing() == []


@BOTH
def test_open_r_of_missing_file_raises_file_not_found(cls: Type[luigi.LocalTarget]) -> None:
    """Reading a missing output raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        cls("missing.txt").open("r")


# --- makedirs, move, copy, remove --------------------------------------------------------------


@BOTH
def test_makedirs_creates_parents_only(cls: Type[luigi.LocalTarget]) -> None:
    """``makedirs()`` creates the parent folders, not the output, and may be repeated."""
    target = cls(os.path.join("a", "b", "out.txt"))
    target.makedirs()
    target.makedirs()
    assert listing() == ["a/", "a/b/"]


@BOTH
def test_move_moves_and_creates_parent(cls: Type[luigi.LocalTarget]) -> None:
    """``move()`` renames the file into a new folder, creating it."""
    Path("out.txt").write_text("data")
    cls("out.txt").move(os.path.join("sub", "moved.txt"))
    assert listing() == ["sub/", "sub/moved.txt"]
    assert Path("sub/moved.txt").read_text() == "data"


@BOTH
def test_move_overwrites_unless_raise_if_exists(cls: Type[luigi.LocalTarget]) -> None:
    """``move()`` replaces an existing destination; with raise_if_exists it refuses instead."""
    Path("a.txt").write_text("a")
    Path("b.txt").write_text("b")
    with pytest.raises(luigi.target.FileAlreadyExists):
        cls("a.txt").move("b.txt", raise_if_exists=True)
    assert (Path("a.txt").read_text(), Path("b.txt").read_text()) == ("a", "b")
    cls("a.txt").move("b.txt")
    assert listing() == ["b.txt"]
    assert Path("b.txt").read_text() == "a"


@BOTH
def test_move_of_missing_file_raises_file_not_found(cls: Type[luigi.LocalTarget]) -> None:
    """Moving a missing output raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        cls("missing.txt").move("elsewhere.txt")


@BOTH
def test_copy_copies_and_creates_parent(cls: Type[luigi.LocalTarget]) -> None:
    """``copy()`` duplicates the file into a new folder, creating it, and keeps the source."""
    Path("out.txt").write_text("data")
    cls("out.txt").copy(os.path.join("sub", "copy.txt"))
    assert listing() == ["out.txt", "sub/", "sub/copy.txt"]
    assert Path("sub/copy.txt").read_text() == "data"


@BOTH
def test_copy_raise_if_exists(cls: Type[luigi.LocalTarget]) -> None:
    """``copy(raise_if_exists=True)`` onto an existing file raises Luigi's RuntimeError."""
    Path("a.txt").write_text("a")
    Path("b.txt").write_text("b")
    with pytest.raises(RuntimeError, match="Destination exists"):
        cls("a.txt").copy("b.txt", raise_if_exists=True)
    assert Path("b.txt").read_text() == "b"
    cls("a.txt").copy("b.txt")
    assert Path("b.txt").read_text() == "a"


@BOTH
def test_remove_file_and_folder(cls: Type[luigi.LocalTarget]) -> None:
    """``remove()`` deletes a file, and a folder with everything inside it."""
    Path("out.txt").write_text("x")
    Path("folder/sub").mkdir(parents=True)
    Path("folder/sub/f.txt").write_text("y")
    cls("out.txt").remove()
    cls("folder").remove()
    assert listing() == []


@BOTH
def test_remove_of_missing_file_raises_file_not_found(cls: Type[luigi.LocalTarget]) -> None:
    """Removing a missing output raises FileNotFoundError, as Luigi's does."""
    with pytest.raises(FileNotFoundError):
        cls("missing.txt").remove()


@pytest.mark.parametrize("path", ["out.txt", "folder", "folder/"])
def test_remove_deletes_the_record(path: str) -> None:
    """``remove()`` deletes the output and its ``<path>.repro.json`` record."""
    if path.startswith("folder"):
        Path("folder").mkdir()
        Path("folder/f.txt").write_text("x")
    else:
        Path(path).write_text("x")
    target = HashableLocalTarget(path)
    target.write_record_bytes(Settings(), b"{}")
    assert os.path.exists(path.rstrip("/") + ".repro.json")
    target.remove()
    assert listing() == []


def test_move_deletes_the_record() -> None:
    """A successful ``move()`` deletes the record, which vouched for the old path only."""
    Path("out.txt").write_text("x")
    target = HashableLocalTarget("out.txt")
    target.write_record_bytes(Settings(), b"{}")
    target.move("moved.txt")
    assert listing() == ["moved.txt"]


def test_refused_move_keeps_the_record() -> None:
    """A ``move()`` refused by raise_if_exists leaves output and record in place."""
    Path("out.txt").write_text("x")
    Path("taken.txt").write_text("y")
    target = HashableLocalTarget("out.txt")
    target.write_record_bytes(Settings(), b"{}")
    with pytest.raises(luigi.target.FileAlreadyExists):
        target.move("taken.txt", raise_if_exists=True)
    assert listing() == ["out.txt", "out.txt.repro.json", "taken.txt"]


def test_move_dir_deletes_the_record() -> None:
    """Luigi's ``move_dir()`` alias also takes the record away."""
    Path("folder").mkdir()
    Path("folder/f.txt").write_text("x")
    target = HashableLocalTarget("folder")
    target.write_record_bytes(Settings(), b"{}")
    target.move_dir("moved")
    assert listing() == ["moved/", "moved/f.txt"]


# --- temporary_path ----------------------------------------------------------------------------


@BOTH
def test_temporary_path_new_file(cls: Type[luigi.LocalTarget]) -> None:
    """The temporary path is beside the output (parent created on entry); it becomes the output."""
    target = cls(os.path.join("a", "b", "out.txt"))
    with target.temporary_path() as temp:
        assert os.path.isdir(os.path.join("a", "b"))
        assert os.path.dirname(temp) == os.path.join("a", "b")
        assert os.path.basename(temp).startswith("out.txt-luigi-tmp-")
        assert not os.path.exists(target.path)
        Path(temp).write_text("new")
    assert listing() == ["a/", "a/b/", "a/b/out.txt"]
    assert Path(target.path).read_text() == "new"


@BOTH
def test_temporary_path_trailing_slash_folder(cls: Type[luigi.LocalTarget]) -> None:
    """A path ending in a slash yields a temporary path that keeps the slash, for folders."""
    target = cls("dataset/")
    with target.temporary_path() as temp:
        assert temp.endswith("/")
        assert temp.startswith("dataset-luigi-tmp-")
        os.mkdir(temp)
        Path(temp, "part-0").write_text("p0")
    assert listing() == ["dataset/", "dataset/part-0"]


@BOTH
def test_temporary_path_not_written_raises(cls: Type[luigi.LocalTarget]) -> None:
    """If the block writes nothing at the temporary path, exiting raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError), cls("out.txt").temporary_path():
        pass
    assert listing() == []


@BOTH
def test_temporary_path_parent_that_is_a_file(cls: Type[luigi.LocalTarget]) -> None:
    """A parent path taken by a file makes ``temporary_path()`` raise Luigi's NotADirectory."""
    Path("f").write_text("x")
    with pytest.raises(luigi.target.NotADirectory), cls("f/out.txt").temporary_path():
        pass
    assert listing() == ["f"]


def test_luigi_temporary_path_refuses_an_existing_output() -> None:
    """The contrast: Luigi's own ``temporary_path()`` cannot replace an existing output."""
    Path("out.txt").write_text("old")

    def replace() -> None:
        with luigi.LocalTarget("out.txt").temporary_path() as temp:
            Path(temp).write_text("new")

    with pytest.raises(luigi.target.FileAlreadyExists):
        replace()
    assert Path("out.txt").read_text() == "old"


def _make(path: str, kind: str, text: str) -> None:
    if kind == "file":
        Path(path).write_text(text)
    else:
        Path(path).mkdir()
        Path(path, "part-0").write_text(text)
        Path(path, "sub").mkdir()
        Path(path, "sub", "part-1").write_text(text + "!")


def _content(path: str) -> Any:
    if os.path.isdir(path):
        return {rel: Path(path, rel).read_text() for rel in listing(path) if not rel.endswith("/")}
    return Path(path).read_text()


@pytest.mark.parametrize(
    ("old_kind", "new_kind", "slash"),
    [
        ("file", "file", ""),
        ("dir", "dir", ""),
        ("file", "dir", ""),
        ("dir", "file", ""),
        ("dir", "dir", "/"),
        ("file", "dir", "/"),
    ],
    ids=["file-file", "dir-dir", "file-dir", "dir-file", "dir-dir-slash", "file-dir-slash"],
)
def test_temporary_path_replaces_an_existing_output(
    old_kind: str, new_kind: str, slash: str
) -> None:
    """Unlike Luigi's, ``temporary_path()`` replaces an existing output, leaving nothing beside."""
    Path("sub").mkdir()
    _make("sub/out", old_kind, "old")
    with HashableLocalTarget("sub/out" + slash).temporary_path() as temp:
        assert temp.endswith(slash)
        _make(temp.rstrip("/"), new_kind, "new")
        _make("expected", new_kind, "new")
    assert _content("sub/out") == _content("expected")
    assert os.listdir("sub") == ["out"]


@pytest.mark.parametrize("old_kind", ["file", "dir", None], ids=["old-file", "old-dir", "no-old"])
@pytest.mark.parametrize(
    ("new_kind", "slash"),
    [("file", ""), ("dir", ""), ("dir", "/"), (None, "")],
    ids=["new-file", "new-dir", "new-dir-slash", "nothing-written"],
)
def test_temporary_path_failure_keeps_previous_output(
    old_kind: Optional[str], new_kind: Optional[str], slash: str
) -> None:
    """An exception in the block leaves the previous output untouched and no temporary behind."""
    Path("sub").mkdir()
    if old_kind is not None:
        _make("sub/out", old_kind, "old")
    before = listing()

    def write_then_fail() -> None:
        with HashableLocalTarget("sub/out" + slash).temporary_path() as temp:
            if new_kind is not None:
                _make(temp.rstrip("/"), new_kind, "new")
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        write_then_fail()
    assert listing() == before
    if old_kind is not None:
        _make("expected", old_kind, "old")
        assert _content("sub/out") == _content("expected")


def test_temporary_path_keeps_the_record_file_apart() -> None:
    """Replacing an output through ``temporary_path()`` does not touch the record beside it."""
    Path("out.txt").write_text("old")
    target = HashableLocalTarget("out.txt")
    target.write_record_bytes(Settings(), b"{}")
    with target.temporary_path() as temp:
        Path(temp).write_text("new")
    assert listing() == ["out.txt", "out.txt.repro.json"]
    assert target.read_record_bytes(Settings()) == b"{}"


# --- the HashableTarget contract: identity and locations ---------------------------------------


@pytest.mark.parametrize("path", ["out.txt", "sub/out.txt", "dataset/"])
def test_uri_is_the_absolute_path(path: str) -> None:
    """``uri`` is the absolute form of the path, whatever cwd-relative form was given."""
    uri = HashableLocalTarget(path).uri
    assert os.path.isabs(uri)
    assert uri == os.path.join(os.getcwd(), path.rstrip("/"))


def test_a_symlink_before_dotdot_is_resolved_as_the_os_does() -> None:
    """``link/../data.txt`` (link -> real/deep) is real/data.txt, not data.txt: its own URI and
    lock, while ``path`` keeps what the user wrote."""
    os.makedirs("real/deep")
    os.symlink("real/deep", "link")
    through_link = HashableLocalTarget("link/../data.txt")
    plain = HashableLocalTarget("data.txt")
    assert through_link.uri == os.path.join(os.getcwd(), "real", "data.txt")
    assert plain.uri == os.path.join(os.getcwd(), "data.txt")
    assert through_link.path == "link/../data.txt"
    assert through_link.lock_name() != plain.lock_name()
    assert through_link.lock_name() == HashableLocalTarget("real/data.txt").lock_name()
    os.symlink("deep", "real/other")  # a link deeper in the path, before the `..`
    os.makedirs("real/deep/inner")
    assert HashableLocalTarget("real/other/inner/../x").uri == os.path.join(
        os.getcwd(), "real", "deep", "x"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("out.txt", "out.txt.repro.json"),
        ("sub/out.txt", "sub/out.txt.repro.json"),
        ("dataset/", "dataset.repro.json"),
    ],
)
def test_record_location_is_path_plus_suffix(path: str, expected: str) -> None:
    """The record sits beside the output, named ``<path>`` + the configured suffix."""
    target = HashableLocalTarget(path)
    assert target.record_location(Settings()) == expected
    assert target.record_location(Settings(record_suffix=".rec")) == expected.replace(
        ".repro.json", ".rec"
    )


@pytest.mark.parametrize(
    ("path", "folder", "name"),
    [("out.txt", "", ".out.txt.repro.lock"), ("sub/dataset/", "sub", ".dataset.repro.lock")],
)
def test_lock_name_is_hidden_beside_the_output(path: str, folder: str, name: str) -> None:
    """The run lock is ``.<name>.repro.lock`` in the output's own folder."""
    lock = HashableLocalTarget(path).lock_name()
    assert lock == os.path.join(os.getcwd(), folder, name)


# --- record bytes ------------------------------------------------------------------------------


def test_record_bytes_round_trip() -> None:
    """Written record bytes read back identically and land at ``record_location``."""
    settings = Settings()
    target = HashableLocalTarget("out.txt")
    target.write_record_bytes(settings, b"first")
    target.write_record_bytes(settings, b"second")
    assert target.read_record_bytes(settings) == b"second"
    assert Path("out.txt.repro.json").read_bytes() == b"second"
    target.remove_record(settings)
    assert target.read_record_bytes(settings) is None
    assert listing() == []


def test_absent_record_reads_none_and_removes_quietly() -> None:
    """No record: reading gives None, removing is no error (even when the folder is missing)."""
    settings = Settings()
    for path in ["out.txt", "missing/folder/out.txt"]:
        target = HashableLocalTarget(path)
        assert target.read_record_bytes(settings) is None
        assert target.read_record(settings) is None
        target.remove_record(settings)
    assert listing() == []


def test_remove_record_deletes_the_record_only() -> None:
    """``remove_record`` deletes the record, never a temporary (its name is no longer fixed)."""
    settings = Settings()
    target = HashableLocalTarget("out.txt")
    Path("out.txt").write_text("data")
    target.write_record_bytes(settings, b"{}")
    Path(".out.txt.repro.json.repro-tmp").write_bytes(b"crashed write of an older version")
    target.remove_record(settings)
    assert listing() == [".out.txt.repro.json.repro-tmp", "out.txt"]


def test_file_at_the_old_fixed_temporary_name_is_never_written() -> None:
    """A record write never reuses a file at the old fixed temporary name: it writes a new one."""
    settings = Settings()
    target = HashableLocalTarget("out.txt")
    Path(".out.txt.repro.json.repro-tmp").write_bytes(b"someone else's file")
    target.write_record_bytes(settings, b"{}")
    assert listing() == [".out.txt.repro.json.repro-tmp", "out.txt.repro.json"]
    assert Path(".out.txt.repro.json.repro-tmp").read_bytes() == b"someone else's file"
    assert Path("out.txt.repro.json").read_bytes() == b"{}"


def test_write_record_bytes_leaves_no_temporary() -> None:
    """Writing a record leaves only the record: its temporary was renamed into place."""
    HashableLocalTarget("out.txt").write_record_bytes(Settings(), b"{}")
    assert listing() == ["out.txt.repro.json"]


# --- parsed records ----------------------------------------------------------------------------


def test_read_record_parses_a_real_record() -> None:
    """A record dumped by ``dump_record`` is read back as an equal Record."""
    settings = Settings(racy_window_ns=0)
    record = make_record(uri=os.path.abspath("out.txt"))
    target = HashableLocalTarget("out.txt")
    target.write_record_bytes(settings, dump_record(record))
    assert target.read_record(settings) == record
    assert target.read_record(settings) == record  # a second read, maybe from the cache


def test_write_record_then_read_record() -> None:
    """``write_record`` stores what ``read_record`` returns."""
    settings = Settings()
    record = make_record()
    target = HashableLocalTarget("out.txt")
    target.write_record(settings, record)
    assert target.read_record(settings) == record


@pytest.mark.parametrize(
    "garbage",
    [b"", b"not json", b"\x80\x04\x95pickle", b"[]", b'{"schema": 999}'],
    ids=["empty", "text", "binary", "list", "future"],
)
def test_read_record_of_garbage_raises_record_error(garbage: bytes) -> None:
    """An unusable record raises RecordError naming its location."""
    target = HashableLocalTarget("out.txt")
    target.write_record_bytes(Settings(), garbage)
    with pytest.raises(RecordError) as excinfo:
        target.read_record(Settings())
    assert excinfo.value.location == "out.txt.repro.json"


def test_read_record_of_an_unreadable_record_raises_record_error() -> None:
    """A record location that cannot be read (here a folder) raises RecordError, not OSError."""
    Path("out.txt.repro.json").mkdir()
    with pytest.raises(RecordError, match="is a folder"):
        HashableLocalTarget("out.txt").read_record(Settings())


def test_read_record_sees_a_replaced_record() -> None:
    """Replacing the record is seen at once, even though parsed records are cached."""
    settings = Settings(racy_window_ns=0)
    target = HashableLocalTarget("out.txt")
    target.write_record(settings, make_record("run-1"))
    assert target.read_record(settings) == make_record("run-1")
    target.write_record(settings, make_record("run-2"))
    assert target.read_record(settings) == make_record("run-2")
    target.remove_record(settings)
    assert target.read_record(settings) is None


# --- record_token ------------------------------------------------------------------------------


def test_record_token_is_none_without_a_record() -> None:
    """No record file, no token."""
    assert HashableLocalTarget("out.txt").record_token(Settings(racy_window_ns=0)) is None


def test_record_token_is_none_for_a_fresh_record() -> None:
    """A record younger than the racy window may still be replaced unseen: no token."""
    target = HashableLocalTarget("out.txt")
    target.write_record_bytes(Settings(), b"{}")
    assert target.record_token(Settings(racy_window_ns=HOUR_NS)) is None


def test_record_token_is_stable_for_an_old_record() -> None:
    """A record older than the racy window has a token that does not change while untouched."""
    target = HashableLocalTarget("out.txt")
    target.write_record_bytes(Settings(), b"{}")
    token = target.record_token(Settings(racy_window_ns=0))
    assert token is not None
    assert target.record_token(Settings(racy_window_ns=0)) == token
    hour_ago = os.stat("out.txt.repro.json").st_mtime_ns - HOUR_NS
    os.utime("out.txt.repro.json", ns=(hour_ago, hour_ago))
    aged = target.record_token(Settings())  # the default 2 s window
    assert aged is not None
    assert target.record_token(Settings()) == aged


def test_record_token_changes_when_the_record_is_replaced() -> None:
    """Replacing the record, even with the same bytes and times, gives another token."""
    settings = Settings(racy_window_ns=0)
    target = HashableLocalTarget("out.txt")
    target.write_record_bytes(settings, b"{}")
    st = os.stat("out.txt.repro.json")
    token = target.record_token(settings)
    target.write_record_bytes(settings, b"{}")
    os.utime("out.txt.repro.json", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.record_token(settings) not in (None, token)


# --- observe -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [None, luigi.format.Nop, luigi.format.UTF8, luigi.format.Gzip],
    ids=["default", "nop", "utf8", "gzip"],
)
def test_observe_file_hashes_raw_bytes_whatever_the_format(fmt: Any) -> None:
    """The fingerprint of a file is xxh3_128 of the bytes on disk, whatever ``format`` says."""
    data = b"\x1f\x8b not really gzip \xff\n" * 100
    Path("out.dat").write_bytes(data)
    observation = HashableLocalTarget("out.dat", format=fmt).observe(context())
    assert observation.fingerprint == fp(data)
    assert observation.size == len(data)
    assert observation.manifest is None
    assert observation.stable


def test_observe_file_written_through_gzip_hashes_the_compressed_bytes() -> None:
    """A Gzip target's fingerprint is that of the compressed file, not of what it decodes to."""
    target = HashableLocalTarget("out.gz", format=luigi.format.Gzip)
    with target.open("w") as stream:
        stream.write(b"payload " * 100)
    assert target.observe(context()).fingerprint == fp(Path("out.gz").read_bytes())


def test_observe_reuses_the_previous_observation() -> None:
    """Given its previous observation and an unchanged file, observe reads nothing."""
    Path("out.txt").write_bytes(b"content")
    target = HashableLocalTarget("out.txt")
    first = target.observe(context())
    ctx = context()
    second = target.observe(ctx, previous=first)
    assert ctx.counters.files_hashed == 0
    assert ctx.counters.bytes_hashed == 0
    assert second.fingerprint == first.fingerprint == fp(b"content")


def test_observe_reuse_survives_a_json_round_trip_of_state() -> None:
    """The state kept in a record (JSON) is enough to avoid re-reading later."""
    import json

    Path("out.txt").write_bytes(b"content")
    target = HashableLocalTarget("out.txt")
    first = target.observe(context())
    stored = Observation(first.fingerprint, first.size, json.loads(json.dumps(dict(first.state))))
    ctx = context()
    assert target.observe(ctx, previous=stored).fingerprint == fp(b"content")
    assert ctx.counters.files_hashed == 0


def test_observe_rereads_a_changed_file() -> None:
    """A file replaced since the previous observation is hashed again: its new fingerprint."""
    Path("out.txt").write_bytes(b"one")
    target = HashableLocalTarget("out.txt")
    first = target.observe(context())
    replace_file("out.txt", b"two")
    ctx = context()
    assert target.observe(ctx, previous=first).fingerprint == fp(b"two")
    assert ctx.counters.files_hashed == 1


def test_observe_does_not_trust_a_racy_previous_observation() -> None:
    """Inside the racy window the previous fingerprint is not reused: the file is read again."""
    Path("out.txt").write_bytes(b"content")
    target = HashableLocalTarget("out.txt")
    first = target.observe(context(racy_window_ns=HOUR_NS))
    ctx = context(racy_window_ns=HOUR_NS)
    assert target.observe(ctx, previous=first).fingerprint == fp(b"content")
    assert ctx.counters.files_hashed == 1


def test_observe_rereads_when_the_algorithm_changed() -> None:
    """A previous observation made with another algorithm is never reused."""
    Path("out.txt").write_bytes(b"content")
    target = HashableLocalTarget("out.txt")
    first = target.observe(
        FingerprintContext(algorithm="sha256", racy_window_ns=0, record_suffix=".repro.json")
    )
    assert first.fingerprint.startswith("sha256:")
    ctx = context()
    assert target.observe(ctx, previous=first).fingerprint == fp(b"content")
    assert ctx.counters.files_hashed == 1


def test_observe_full_ignores_the_previous_observation() -> None:
    """``full=True`` reads the content even when the previous observation could vouch."""
    Path("out.txt").write_bytes(b"content")
    target = HashableLocalTarget("out.txt")
    first = target.observe(context())
    ctx = context(full=True)
    target.observe(ctx, previous=first)
    assert ctx.counters.files_hashed == 1


def _dataset() -> None:
    Path("dataset/year=2024").mkdir(parents=True)
    Path("dataset/part-0.csv").write_bytes(b"a,b\n1,2\n")
    Path("dataset/year=2024/part-1.csv").write_bytes(b"a,b\n3,4\n5,6\n")


@pytest.mark.parametrize("path", ["dataset", "dataset/"])
def test_observe_directory_gives_a_manifest(path: str) -> None:
    """A folder is fingerprinted by a manifest of its files' relative paths and fingerprints."""
    _dataset()
    observation = HashableLocalTarget(path).observe(context())
    assert observation.manifest == {
        "part-0.csv": fp(b"a,b\n1,2\n"),
        "year=2024/part-1.csv": fp(b"a,b\n3,4\n5,6\n"),
    }
    assert observation.size == len(b"a,b\n1,2\n") + len(b"a,b\n3,4\n5,6\n")
    assert observation.fingerprint.startswith("xxh3_128:")
    assert observation.fingerprint not in observation.manifest.values()


def _record_of(uri: str) -> bytes:
    return dump_record(
        Record(
            task=TaskSection("T", "m", "T_1", {}, "xxh3_128:" + "0" * 32),
            inputs=(),
            outputs=(OutputEntry((), uri, "xxh3_128:" + "1" * 32, 1),),
            run=RunSection("r", "s", "e", 0.0, "h", 1),
        )
    )


def test_observe_directory_ignores_bookkeeping_files() -> None:
    """Records, locks and our temporaries in a folder change neither manifest nor fingerprint."""
    from luigi_repro.locking import LOCK_FILE_MARK

    _dataset()
    target = HashableLocalTarget("dataset")
    clean = target.observe(context())
    Path("dataset/part-0.csv.repro.json").write_bytes(
        _record_of(os.path.abspath("dataset/part-0.csv"))
    )
    Path("dataset/.part-0.csv.repro.lock").write_bytes(LOCK_FILE_MARK)
    Path("dataset/.part-0.csv.repro.json.repro-tmp").write_text("a record being written")
    Path("dataset/year=2024/.part-1.csv.repro-tmp-123-0123abcd").write_text("tmp")
    Path("dataset/.year=2024.repro-tmp-old").mkdir()  # a folder output set aside
    Path("dataset/.year=2024.repro-tmp-old/inner.csv").write_text("aside")
    cluttered = target.observe(context())
    assert cluttered.manifest == clean.manifest
    assert cluttered.fingerprint == clean.fingerprint


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("part-0.csv.repro.json", b"{}"),  # named like a record, but not one
        ("part-0.csv.repro.json", None),  # a genuine record, but of another file
        (".part-0.csv.repro.lock", b""),  # named like a lock, without the lock's mark
        (".part-0.csv.repro.lock", b"user data\n"),
        ("notes.repro.json", b"{}"),  # no sibling it could describe
        (".notes.repro-tmp", b"cached"),  # named like a temporary, but of nothing here
        (".part-0.csv.repro-tmp-backup", b"x"),  # not a name luigi_repro gives temporaries
    ],
)
def test_files_merely_named_like_bookkeeping_are_data(name: str, content: Optional[bytes]) -> None:
    """Inside a folder input, only records and locks luigi_repro wrote for outputs there are
    skipped: a file that merely has their name is content, and editing it changes the folder."""
    _dataset()
    target = HashableLocalTarget("dataset")
    data = _record_of("/elsewhere/other.csv") if content is None else content
    Path("dataset", name).write_bytes(data)
    first = target.observe(context())
    assert name in (first.manifest or {})
    Path("dataset", name).write_bytes(data + b" ")
    assert target.observe(context()).fingerprint != first.fingerprint


def test_run_lock_files_carry_their_mark() -> None:
    """A lock file made by a run holds the mark that tells it from data."""
    from luigi_repro.locking import LOCK_FILE_MARK, FileLocks, LockRequest, lock_file_for

    lock = lock_file_for("out.txt")
    with FileLocks().hold([LockRequest("out.txt", lock)], 5):
        pass
    with FileLocks().hold([LockRequest("out.txt", lock)], 5):
        pass
    assert Path(lock).read_bytes() == LOCK_FILE_MARK


def test_observe_directory_changes_with_content_and_names() -> None:
    """Editing, adding or renaming a file in the folder changes its fingerprint."""
    _dataset()
    target = HashableLocalTarget("dataset")
    seen = {target.observe(context()).fingerprint}
    replace_file("dataset/part-0.csv", b"a,b\n1,3\n")
    seen.add(target.observe(context()).fingerprint)
    Path("dataset/extra.csv").write_bytes(b"")
    seen.add(target.observe(context()).fingerprint)
    os.rename("dataset/extra.csv", "dataset/extra2.csv")
    seen.add(target.observe(context()).fingerprint)
    assert len(seen) == 4


def test_observe_directory_reuses_the_previous_observation() -> None:
    """Given its previous observation, an unchanged folder is observed without reading a file."""
    _dataset()
    target = HashableLocalTarget("dataset")
    first = target.observe(context())
    ctx = context()
    second = target.observe(ctx, previous=first)
    assert ctx.counters.files_hashed == 0
    assert second.fingerprint == first.fingerprint
    assert second.manifest == first.manifest
    replace_file("dataset/part-0.csv", b"changed\n")
    ctx = context()
    third = target.observe(ctx, previous=second)
    assert ctx.counters.files_hashed == 1
    assert third.manifest is not None
    assert third.manifest["part-0.csv"] == fp(b"changed\n")


@pytest.mark.parametrize("path", ["missing.txt", "missing/", "no/such/file"])
def test_observe_missing_path_raises_file_not_found(path: str) -> None:
    """Observing content that does not exist raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        HashableLocalTarget(path).observe(context())


def test_observe_of_a_fifo_does_not_hang() -> None:
    """A named pipe at the output path is not read (as inside folders), so a check cannot hang."""
    os.mkfifo("out.pipe")
    done = threading.Event()

    def observe() -> None:
        with contextlib.suppress(Exception):
            HashableLocalTarget("out.pipe").observe(context())
        done.set()

    threading.Thread(target=observe, daemon=True).start()
    finished = done.wait(0.5)
    if not finished:  # release the blocked reader so that no thread stays behind
        with contextlib.suppress(OSError):
            os.close(os.open("out.pipe", os.O_WRONLY | os.O_NONBLOCK))
        done.wait(5)
    assert finished


# --- adapters and resolvers --------------------------------------------------------------------


def test_as_hashable_of_a_local_target() -> None:
    """A plain LocalTarget gets a HashableLocalTarget view with the same path and format."""
    view = as_hashable(luigi.LocalTarget("sub/out.bin", format=luigi.format.Nop))
    assert isinstance(view, HashableLocalTarget)
    assert type(view) is HashableLocalTarget
    assert view.path == "sub/out.bin"
    assert view.format is luigi.format.Nop
    assert view.is_tmp is False


def test_as_hashable_of_a_hashable_target_is_itself() -> None:
    """A target that already is hashable is returned unchanged."""
    target = HashableLocalTarget("out.txt")
    assert as_hashable(target) is target


def test_as_hashable_view_never_deletes_user_data(tmpdir_for_luigi: Path) -> None:
    """The view of an ``is_tmp`` LocalTarget is not temporary: collecting it keeps the file."""
    original = luigi.LocalTarget(is_tmp=True)
    with original.open("w") as stream:
        stream.write("keep me")
    view = as_hashable(original)
    assert isinstance(view, HashableLocalTarget)
    assert view.is_tmp is False
    assert view.path == original.path
    del view
    gc.collect()
    assert Path(original.path).read_text() == "keep me"


def test_target_from_uri_of_an_absolute_path() -> None:
    """An absolute path from a record becomes a HashableLocalTarget for that path."""
    uri = os.path.abspath("sub/out.txt")
    target = target_from_uri(uri)
    assert type(target) is HashableLocalTarget
    assert target.path == uri
    assert target.uri == uri
    assert target.is_tmp is False


def test_target_from_uri_of_other_urls() -> None:
    """URLs are not claimed by the local resolver: s3:// goes to S3, unknown schemes to none."""
    from luigi_repro.targets import HashableS3Target

    assert isinstance(target_from_uri("s3://x/y"), HashableS3Target)
    assert target_from_uri("gs://x/y") is None
    assert target_from_uri("relative/path") is None
