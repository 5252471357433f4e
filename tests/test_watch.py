"""File-change notifications: every change to a watched path is reported, whoever makes it, and
paths whose changes could come without an event are refused rather than trusted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from luigi_repro.watch import ChangeWatch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


@pytest.fixture
def watch() -> ChangeWatch:
    found = ChangeWatch()
    yield found  # type: ignore[misc]
    found.forget()


def test_a_write_by_another_process_is_reported(watch: ChangeWatch, tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("one\n")
    assert watch.watch([str(path)])
    assert not watch.changes()
    subprocess.run([sys.executable, "-c", f"open({str(path)!r}, 'a').write('two')"], check=True)
    assert str(path) in watch.changes().paths
    assert not watch.changes()  # drained


def test_a_file_that_does_not_exist_yet_is_reported_when_made(
    watch: ChangeWatch, tmp_path: Path
) -> None:
    path = tmp_path / "later" / "data.txt"
    assert watch.watch([str(path)])
    path.parent.mkdir()
    path.write_text("made\n")
    changes = watch.changes()
    assert str(path.parent) in changes.trees  # the folder appeared: everything under it


def test_a_replaced_parent_folder_is_reported(watch: ChangeWatch, tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    assert watch.watch([str(folder / "a.txt")])
    os.rename(folder, tmp_path / "raw-old")
    folder.mkdir()
    (folder / "a.txt").write_text("other\n")
    assert str(folder) in watch.changes().trees


def test_paths_that_could_change_without_an_event_are_refused(
    watch: ChangeWatch, tmp_path: Path
) -> None:
    target = tmp_path / "target.txt"
    target.write_text("x\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    second = tmp_path / "second-name.txt"
    os.link(target, second)
    folder = tmp_path / "folder"
    folder.mkdir()
    assert not watch.watch([str(link)])  # a write through the link's target raises elsewhere
    assert not watch.watch([str(second)])  # a write through the other name, likewise
    assert not watch.watch([str(folder)])  # files deeper down would each need a watch
    assert not watch.watch(["relative.txt"])


def test_a_forked_child_is_told_everything_may_have_changed(
    watch: ChangeWatch, tmp_path: Path
) -> None:
    path = tmp_path / "data.txt"
    path.write_text("one\n")
    assert watch.watch([str(path)])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through the pipe
        watch.after_fork()
        os.write(write, b"1" if watch.changes().everything else b"0")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    path.write_text("two\n")
    assert str(path) in watch.changes().paths  # the parent's queue is still its own


def test_a_hard_link_made_later_and_written_through_is_reported(
    watch: ChangeWatch, tmp_path: Path
) -> None:
    """No event reaches the file's folder for either step; the file's own watch sees both."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = tmp_path / "a" / "data.txt"
    path.write_text("one\n")
    assert watch.watch([str(path)])
    other = tmp_path / "b" / "other-name.txt"
    os.link(path, other)
    assert str(path) in watch.changes().paths  # the link count changed
    with open(other, "a") as sink:
        sink.write("two\n")
    assert str(path) in watch.changes().paths
    assert not watch.watch([str(path)])  # two names now: revalidated by stat from here on


def test_the_watch_budget_is_half_of_what_the_kernel_allows_the_user(tmp_path: Path) -> None:
    """A fixed budget of 20,000 ran out at about 7,000 tasks (two files each), and every check
    after that replayed what it could no longer watch: a no-op rebuild of 10,000 tasks took 65
    times plain Luigi's time."""
    from luigi_repro.watch import watch_budget

    limit = tmp_path / "max_user_watches"
    limit.write_text("192530\n")
    assert watch_budget(str(limit)) == 96265
    limit.write_text("8192\n")
    assert watch_budget(str(limit)) == 4096
    limit.write_text("not a number\n")
    assert watch_budget(str(limit)) == 8192
    assert watch_budget(str(tmp_path / "absent")) == 8192
