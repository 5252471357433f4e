"""A folder checked against its baseline: what matched stays, what differs is named.

The warm check keeps nothing for a file whose stamp matches the baseline, so these tests make
sure the result is the same as a cold fingerprint whatever changed, and that the walk lists
every folder once yet still tells an empty folder from one reached by another path. An input
folder (no record) is compared with what the process last saw of it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from luigi_repro.fingerprint import Counters, diff_manifests
from luigi_repro.foldermemory import FolderMemory
from luigi_repro.folderprint import (
    Baseline,
    DirectoryFingerprint,
    baseline_from_state,
    fingerprint_directory,
    stamp_state,
)
from luigi_repro.statcache import PersistentStatCache
from luigi_repro.targets.base import FingerprintContext, Observation
from luigi_repro.targets.directory import HashableDirectoryTarget

ALGO = "sha256"
WINDOW_NS = 50_000_000


def _settled_tree(folder: Path) -> Path:
    root = folder / "tree"
    for index in range(40):
        sub = root / f"part-{index % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file-{index:03d}.txt").write_text(f"row {index}\n")
    (root / "empty").mkdir()  # described, not read: it may stand unchanged too
    time.sleep(WINDOW_NS / 1e9 * 2)
    return root


def _baseline(result: DirectoryFingerprint) -> Baseline:
    """The baseline the next check reads from the record of ``result``."""
    state = stamp_state(result, WINDOW_NS)
    found = baseline_from_state(result.fingerprint, state, result.manifest(), ALGO, WINDOW_NS)
    assert found is not None
    return found


def test_an_unchanged_folder_is_vouched_for_by_its_baseline(tmp_path: Path) -> None:
    """Every stamp matches: the baseline's own manifest is the answer, with the same value."""
    tmp_path = _settled_tree(tmp_path)
    first = fingerprint_directory(str(tmp_path), ALGO, racy_window_ns=WINDOW_NS)
    again = fingerprint_directory(
        str(tmp_path), ALGO, baseline=_baseline(first), racy_window_ns=WINDOW_NS
    )
    assert again.unchanged
    assert again.fingerprint == first.fingerprint
    assert dict(again.manifest()) == dict(first.manifest())
    assert again.size == first.size


def test_files_added_removed_and_changed_in_place_are_each_named(tmp_path: Path) -> None:
    """The result against a baseline equals a cold fingerprint, and the diff names each file."""
    tmp_path = _settled_tree(tmp_path)
    first = fingerprint_directory(str(tmp_path), ALGO, racy_window_ns=WINDOW_NS)
    (tmp_path / "part-1" / "file-005.txt").unlink()
    (tmp_path / "part-2" / "new.txt").write_text("new\n")
    edited = tmp_path / "part-3" / "file-007.txt"
    before = os.stat(edited)
    edited.write_text(edited.read_text().upper())
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    warm = fingerprint_directory(
        str(tmp_path), ALGO, baseline=_baseline(first), racy_window_ns=WINDOW_NS
    )
    cold = fingerprint_directory(str(tmp_path), ALGO, racy_window_ns=WINDOW_NS)
    assert not warm.unchanged
    assert warm.fingerprint == cold.fingerprint != first.fingerprint
    assert dict(warm.manifest()) == dict(cold.manifest())
    diff = diff_manifests(first.manifest(), warm.manifest())
    assert diff.added == ("part-2/new.txt",)
    assert diff.removed == ("part-1/file-005.txt",)
    assert diff.changed == ("part-3/file-007.txt",)


def test_a_touched_file_keeps_the_value_and_refreshes_its_stamp(tmp_path: Path) -> None:
    """Same bytes, new mtime: the folder's value stands, and the new stamp is kept."""
    tmp_path = _settled_tree(tmp_path)
    first = fingerprint_directory(str(tmp_path), ALGO, racy_window_ns=WINDOW_NS)
    touched = tmp_path / "part-0" / "file-000.txt"
    os.utime(touched, ns=(0, 1_000_000_000))
    time.sleep(WINDOW_NS / 1e9 * 2)
    warm = fingerprint_directory(
        str(tmp_path), ALGO, baseline=_baseline(first), racy_window_ns=WINDOW_NS
    )
    assert warm.fingerprint == first.fingerprint
    assert not warm.unchanged
    assert warm.stamps["part-0/file-000.txt"][3] == 1_000_000_000


def test_empty_folders_are_content_whichever_path_reaches_them(tmp_path: Path) -> None:
    """An empty folder and a link to it are both listed as empty folders; a second way into a
    folder with files is described, its files counted once."""
    tmp_path = tmp_path / "tree"
    (tmp_path / "a" / "empty").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "data.txt").write_text("x\n")
    (tmp_path / "a" / "to-empty").symlink_to(tmp_path / "a" / "empty")
    (tmp_path / "z-to-b").symlink_to(tmp_path / "b")
    result = fingerprint_directory(str(tmp_path), ALGO)
    assert sorted(result.manifest()) == ["a/empty/", "a/to-empty/", "b/data.txt", "z-to-b"]


def _input_check(folder: Path, cache: PersistentStatCache, counters: Counters) -> Observation:
    context = FingerprintContext(ALGO, WINDOW_NS, ".repro.json", cache, counters)
    return HashableDirectoryTarget(str(folder)).observe(context, None)


def test_an_input_folder_is_compared_with_what_this_process_last_saw(tmp_path: Path) -> None:
    """Without a record, the second check reads nothing and builds no manifest of its own; a
    file edited in place (same size, mtime put back) is still the one change named."""
    root = _settled_tree(tmp_path)
    cache = PersistentStatCache(str(tmp_path / "stat.sqlite3"))
    first = _input_check(root, cache, Counters())
    counters = Counters()
    again = _input_check(root, cache, counters)
    assert again.fingerprint == first.fingerprint
    assert again.manifest is first.manifest  # the remembered one: nothing rebuilt
    assert counters.files_hashed == 0
    edited = root / "part-2" / "file-010.txt"
    before = os.stat(edited)
    edited.write_text(edited.read_text().upper())
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = _input_check(root, cache, Counters())
    diff = diff_manifests(first.manifest or {}, after.manifest or {})
    assert diff.changed == ("part-2/file-010.txt",)
    assert not diff.added
    assert not diff.removed


def test_folder_memory_drops_the_oldest_folders_beyond_its_bound() -> None:
    """Bounded by files held: the folder stored first goes first; a folder too big is not kept."""
    memory = FolderMemory(max_files=3)
    memory.remember("/a", ALGO, "fa", {"x": "1", "y": "2"}, {})
    memory.remember("/b", ALGO, "fb", {"z": "3"}, {})
    assert memory.recall("/a", ALGO) is not None
    memory.remember("/c", ALGO, "fc", {"w": "4"}, {})
    assert memory.recall("/a", ALGO) is None
    assert memory.recall("/b", ALGO) is not None
    assert memory.recall("/c", ALGO) is not None
    memory.remember("/d", ALGO, "fd", {str(n): "5" for n in range(4)}, {})
    assert memory.recall("/d", ALGO) is None


def test_a_stamp_edited_by_hand_into_a_record_is_dropped_not_written_back() -> None:
    """A recorded stamp that is not five integers cannot vouch for anything: a file it stood
    for is read again, and the value never reaches the next record."""
    from luigi_repro.folderprint import Baseline, _merged

    baseline = Baseline({"a.txt": "xxh3_128:1", "b.txt": "xxh3_128:2"}, [5, [1, 2, 3, 4, 5]])
    files, stamps = _merged(baseline, {}, {}, {})
    assert files == {"a.txt": "xxh3_128:1", "b.txt": "xxh3_128:2"}
    assert stamps == {"b.txt": [1, 2, 3, 4, 5]}


def test_forgetting_the_folder_memory_forgets_every_folder() -> None:
    memory = FolderMemory()
    memory.remember("/a", ALGO, "fa", {"x": "1"}, {})
    memory.forget()
    assert memory.recall("/a", ALGO) is None
