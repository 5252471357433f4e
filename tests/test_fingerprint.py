"""Fingerprints of bytes, streams, files and directory manifests."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import random
import re
import shutil
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import pytest
import xxhash
from files import write
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import fingerprints

from luigi_repro.fingerprint import (
    ALGORITHMS,
    CHUNK_SIZE,
    DEFAULT_ALGORITHM,
    Counters,
    algorithm_of,
    check_algorithm,
    diff_manifests,
    hash_bytes,
    hash_file,
    hash_stream,
    iter_directory,
    manifest_fingerprint,
    short,
)
from luigi_repro.folderprint import fingerprint_directory

HAVE_BLAKE3 = importlib.util.find_spec("blake3") is not None


def _blake3_hex(data: bytes) -> str:
    import blake3

    return str(blake3.blake3(data).hexdigest())


#: The digest each algorithm must give, computed by calling its library directly.
REFERENCE: Dict[str, Callable[[bytes], str]] = {
    "xxh3_128": lambda data: xxhash.xxh3_128(data).hexdigest(),
    "xxh3_64": lambda data: xxhash.xxh3_64(data).hexdigest(),
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
    "blake2b": lambda data: hashlib.blake2b(data).hexdigest(),
    "blake3": _blake3_hex,
}

#: Algorithms usable here (blake3 is an optional dependency).
USABLE = sorted(name for name in ALGORITHMS if name != "blake3" or HAVE_BLAKE3)
algorithms = st.sampled_from(USABLE)

#: Sizes on either side of the read buffer's boundaries.
BOUNDARY_SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7]

#: Relative paths as they appear in manifests: no NUL, no lone surrogates.
path_segments = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\0/"),
    min_size=1,
    max_size=8,
)
rel_paths = st.lists(path_segments, min_size=1, max_size=3).map("/".join)
manifests = st.dictionaries(rel_paths, fingerprints, max_size=6)


def expected(data: bytes, algorithm: str) -> str:
    """The fingerprint string ``data`` must have under ``algorithm``."""
    return f"{algorithm}:{REFERENCE[algorithm](data)}"


class ShortReads(io.RawIOBase):
    """A raw binary stream whose ``readinto`` returns at most ``step`` bytes per call."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data[self._pos : self._pos + min(self._step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class ReadOnly:
    """A stream-like object with nothing but ``read(size)``, returning at most ``step`` bytes."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def read(self, size: int = -1) -> bytes:
        size = self._step if size < 0 else min(size, self._step)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk


def walk(root: str, exclude: Optional[Callable[[str, Any], bool]] = None) -> Dict[str, bool]:
    """``{relative path: is special}`` for everything ``iter_directory`` yields under ``root``."""
    found: Dict[str, bool] = {}
    for rel, path, special in iter_directory(root, exclude):
        assert rel not in found, f"{rel} yielded twice"
        assert os.path.normpath(path) == os.path.normpath(os.path.join(root, *rel.split("/")))
        found[rel] = special
    return found


# --- digests --------------------------------------------------------------------------------------


def test_reference_covers_every_algorithm() -> None:
    """Every algorithm luigi_repro offers has a reference digest in these tests."""
    assert set(ALGORITHMS) == set(REFERENCE)
    assert DEFAULT_ALGORITHM == "xxh3_128"


@given(data=st.binary(max_size=4096), algorithm=algorithms)
def test_hash_bytes_matches_reference(data: bytes, algorithm: str) -> None:
    """``hash_bytes`` gives the library's own digest, prefixed with the algorithm."""
    assert hash_bytes(data, algorithm) == expected(data, algorithm)


@given(data=st.binary(max_size=4096), algorithm=algorithms)
def test_hash_stream_matches_reference(data: bytes, algorithm: str) -> None:
    """``hash_stream`` on a BytesIO gives the reference digest and the number of bytes read."""
    assert hash_stream(io.BytesIO(data), algorithm) == (expected(data, algorithm), len(data))


@given(data=st.binary(max_size=4096), algorithm=algorithms)
@settings(max_examples=50)
def test_hash_file_matches_reference(data: bytes, algorithm: str) -> None:
    """``hash_file`` gives the reference digest of the file's bytes and its size."""
    path = write("blob.bin", data)
    assert hash_file(path, algorithm) == (expected(data, algorithm), len(data))


@pytest.mark.parametrize("algorithm", USABLE)
@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_chunk_boundaries_match_reference(size: int, algorithm: str) -> None:
    """Files, streams (with or without readinto) and bytes near CHUNK_SIZE match the reference."""
    data = random.Random(size).randbytes(size)
    want = expected(data, algorithm)
    path = write("big.bin", data)
    assert hash_file(path, algorithm) == (want, size)
    with open(path, "rb") as buffered:
        assert hash_stream(buffered, algorithm) == (want, size)
    assert hash_stream(io.BytesIO(data), algorithm) == (want, size)
    assert hash_stream(ReadOnly(data, CHUNK_SIZE), algorithm) == (want, size)  # type: ignore[arg-type]
    assert hash_bytes(data, algorithm) == want


@given(data=st.binary(max_size=4096), step=st.integers(1, 97), algorithm=algorithms)
def test_short_readinto_reads_are_all_hashed(data: bytes, step: int, algorithm: str) -> None:
    """A stream whose readinto returns short reads is hashed in full, not up to a short read."""
    stream = ShortReads(data, step)
    assert hash_stream(stream, algorithm) == (expected(data, algorithm), len(data))  # type: ignore[arg-type]


@given(data=st.binary(max_size=4096), step=st.integers(1, 97), algorithm=algorithms)
def test_streams_without_readinto_are_hashed(data: bytes, step: int, algorithm: str) -> None:
    """An object offering only ``read()`` (no readinto) is hashed with the reference digest."""
    stream = ReadOnly(data, step)
    assert not hasattr(stream, "readinto")
    assert hash_stream(stream, algorithm) == (expected(data, algorithm), len(data))  # type: ignore[arg-type]


@given(data=st.binary(max_size=2048), cut=st.integers(0, 2048), algorithm=algorithms)
def test_hash_stream_hashes_what_is_left(data: bytes, cut: int, algorithm: str) -> None:
    """A partly consumed stream is fingerprinted from its current position to the end."""
    stream = io.BytesIO(data)
    stream.read(cut)
    rest = data[cut:]
    assert hash_stream(stream, algorithm) == (expected(rest, algorithm), len(rest))


@given(text=st.text(min_size=1, max_size=200))
def test_text_streams_are_refused(text: str) -> None:
    """A text stream with content raises TypeError instead of being hashed."""
    with pytest.raises(TypeError, match="binary"):
        hash_stream(io.StringIO(text))


def test_text_file_is_refused() -> None:
    """A file opened in text mode raises TypeError instead of being hashed."""
    write("notes.txt", b"some words\n")
    with open("notes.txt", encoding="utf-8") as stream, pytest.raises(TypeError):
        hash_stream(stream)


def test_empty_text_stream_is_refused() -> None:
    """An empty text stream is refused like any other text stream, whatever its content."""
    with pytest.raises(TypeError):
        hash_stream(io.StringIO(""))


# --- the fingerprint string -----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", USABLE)
def test_fingerprint_format_names_its_algorithm(algorithm: str) -> None:
    """A fingerprint is "algorithm:lowercase hex" of the full digest; algorithm_of reads it."""
    fingerprint = hash_bytes(b"luigi", algorithm)
    digest_length = len(REFERENCE[algorithm](b""))
    assert re.fullmatch(rf"{algorithm}:[0-9a-f]{{{digest_length}}}", fingerprint)
    assert algorithm_of(fingerprint) == algorithm


def test_algorithms_never_share_a_fingerprint() -> None:
    """The same bytes give a different fingerprint string under every algorithm."""
    prints = [hash_bytes(b"same bytes", algorithm) for algorithm in USABLE]
    assert len(set(prints)) == len(prints)


@given(
    algorithm=st.text(min_size=1, max_size=12).filter(lambda s: ":" not in s),
    digest=st.text(min_size=1, max_size=40),
)
def test_algorithm_of_returns_the_prefix(algorithm: str, digest: str) -> None:
    """``algorithm_of`` returns whatever precedes the first colon."""
    assert algorithm_of(f"{algorithm}:{digest}") == algorithm


@pytest.mark.parametrize("bad", ["", "xxh3_128", "abc123", "sha256:", ":00ff", ":"])
def test_algorithm_of_rejects_malformed_fingerprints(bad: str) -> None:
    """A string without an algorithm, a colon and a digest raises ValueError."""
    with pytest.raises(ValueError, match="algorithm:hex"):
        algorithm_of(bad)


@pytest.mark.parametrize("name", ["md5", "SHA256", "", "xxh3"])
def test_unknown_algorithms_are_refused(name: str) -> None:
    """Names outside ALGORITHMS raise ValueError when checked or used for hashing."""
    write("a.bin", b"a")
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        check_algorithm(name)
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        hash_bytes(b"a", name)
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        hash_file("a.bin", name)


def test_short_abbreviates_for_people() -> None:
    """``short`` keeps the algorithm and the first digits, and says "none" for no fingerprint."""
    fingerprint = hash_bytes(b"x", "sha256")
    assert short(fingerprint, 8) == fingerprint[: len("sha256:") + 8]
    assert short(None) == "none"


# --- counters and memory --------------------------------------------------------------------------


@given(blobs=st.lists(st.binary(max_size=3000), max_size=5))
@settings(max_examples=30)
def test_counters_count_files_and_bytes(blobs: List[bytes]) -> None:
    """Each hash_file and hash_stream call adds one file and its byte count to the counters."""
    counters = Counters()
    for index, blob in enumerate(blobs):
        if index % 2:
            hash_stream(io.BytesIO(blob), counters=counters)
        else:
            hash_file(write(f"c{index}.bin", blob), counters=counters)
    assert counters.files_hashed == len(blobs)
    assert counters.bytes_hashed == sum(len(blob) for blob in blobs)
    assert counters.files_statted == 0


def test_large_file_is_hashed_in_constant_memory() -> None:
    """Hashing a 64 MiB (sparse) file allocates far less than its size: it is read in chunks."""
    size = 64 << 20
    with open("sparse.bin", "wb") as stream:
        stream.truncate(size)
    reference = xxhash.xxh3_128()
    zeros = bytes(CHUNK_SIZE)
    for _ in range(size // CHUNK_SIZE):
        reference.update(zeros)
    del zeros
    tracemalloc.start()
    try:
        result = hash_file("sparse.bin", "xxh3_128")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result == (f"xxh3_128:{reference.hexdigest()}", size)
    assert peak < 8 << 20, f"peak {peak} bytes while hashing a {size}-byte file"


# --- manifests ------------------------------------------------------------------------------------


@given(manifest=manifests, order=st.randoms(use_true_random=False), algorithm=algorithms)
def test_manifest_fingerprint_ignores_order(
    manifest: Dict[str, str], order: random.Random, algorithm: str
) -> None:
    """The same manifest built in any insertion order has the same fingerprint."""
    items = list(manifest.items())
    order.shuffle(items)
    assert manifest_fingerprint(dict(items), algorithm) == manifest_fingerprint(manifest, algorithm)
    assert algorithm_of(manifest_fingerprint(manifest, algorithm)) == algorithm


@given(manifest=manifests.filter(bool), data=st.data())
def test_manifest_fingerprint_changes_on_rename(
    manifest: Dict[str, str], data: st.DataObject
) -> None:
    """Renaming one file (same content) changes the manifest fingerprint."""
    old_name = data.draw(st.sampled_from(sorted(manifest)))
    new_name = data.draw(rel_paths.filter(lambda p: p not in manifest))
    renamed = dict(manifest)
    renamed[new_name] = renamed.pop(old_name)
    assert manifest_fingerprint(renamed) != manifest_fingerprint(manifest)


@given(manifest=manifests, data=st.data())
def test_manifest_fingerprint_changes_on_addition(
    manifest: Dict[str, str], data: st.DataObject
) -> None:
    """Adding one file changes the manifest fingerprint."""
    name = data.draw(rel_paths.filter(lambda p: p not in manifest))
    grown = {**manifest, name: data.draw(fingerprints)}
    assert manifest_fingerprint(grown) != manifest_fingerprint(manifest)


@given(manifest=manifests.filter(bool), data=st.data())
def test_manifest_fingerprint_changes_on_deletion(
    manifest: Dict[str, str], data: st.DataObject
) -> None:
    """Deleting one file changes the manifest fingerprint."""
    name = data.draw(st.sampled_from(sorted(manifest)))
    shrunk = {path: fp for path, fp in manifest.items() if path != name}
    assert manifest_fingerprint(shrunk) != manifest_fingerprint(manifest)


@given(manifest=manifests.filter(bool), data=st.data())
def test_manifest_fingerprint_changes_on_content_change(
    manifest: Dict[str, str], data: st.DataObject
) -> None:
    """Changing one file's fingerprint changes the manifest fingerprint."""
    name = data.draw(st.sampled_from(sorted(manifest)))
    new_print = data.draw(fingerprints.filter(lambda fp: fp != manifest[name]))
    assert manifest_fingerprint({**manifest, name: new_print}) != manifest_fingerprint(manifest)


@given(old=manifests, data=st.data())
def test_diff_manifests_names_each_change(old: Dict[str, str], data: st.DataObject) -> None:
    """Removing, editing and adding files shows up exactly as removed, changed and added paths."""
    names = sorted(old)
    removed = data.draw(st.sets(st.sampled_from(names)) if names else st.just(set()))
    kept = [name for name in names if name not in removed]
    changed = data.draw(st.sets(st.sampled_from(kept)) if kept else st.just(set()))
    added = data.draw(st.sets(rel_paths.filter(lambda p: p not in old), max_size=3))
    new = {name: fp for name, fp in old.items() if name not in removed}
    for name in changed:
        new[name] = data.draw(fingerprints.filter(old[name].__ne__))
    for name in added:
        new[name] = data.draw(fingerprints)
    diff = diff_manifests(old, new)
    assert diff.removed == tuple(sorted(removed))
    assert diff.changed == tuple(sorted(changed))
    assert diff.added == tuple(sorted(added))
    assert bool(diff) == (old != new)


# --- walking directories --------------------------------------------------------------------------


@given(
    files=st.sets(
        st.lists(
            st.text(alphabet="abé _-", min_size=1, max_size=4).filter(
                lambda s: s not in {".", ".."}
            ),
            min_size=1,
            max_size=3,
        ).map("/".join),
        max_size=8,
    )
)
@settings(max_examples=40)
def test_iter_directory_finds_every_nested_file(files: Set[str]) -> None:
    """Every regular file below the root is yielded once, as a relative posix path, not special."""
    # A path cannot be both a file and a folder holding another file.
    files = {f for f in files if not any(g.startswith(f + "/") for g in files)}
    root = tempfile.mkdtemp(dir=".")
    for rel in files:
        write(os.path.join(root, *rel.split("/")), rel.encode())
    assert walk(root) == dict.fromkeys(files, False)


def test_iter_directory_skips_excluded_names_at_any_depth() -> None:
    """``exclude`` sees each entry (and its siblings' names); excluded files are dropped,
    excluded folders with their subtrees."""
    for rel in ["keep.txt", "skip.tmp", "sub/keep.txt", "sub/skip.tmp", "cache/inside.txt"]:
        write(os.path.join("root", rel), b"x")
    seen: List[str] = []

    def exclude(entry: Any, siblings: Any = frozenset()) -> bool:
        seen.append(entry.name)
        assert os.path.basename(entry.path) == entry.name
        return bool(entry.name.endswith(".tmp") or entry.name == "cache")

    assert walk("root", exclude) == {"keep.txt": False, "sub/keep.txt": False}
    assert seen
    assert all("/" not in name and os.sep not in name for name in seen)


def test_symlink_to_file_is_hashed_by_content() -> None:
    """A symlink to a file is an ordinary manifest entry with the target's content fingerprint."""
    write("target.txt", b"the content")
    write("root/real.txt", b"other")
    os.symlink(os.path.abspath("target.txt"), "root/link.txt")
    assert walk("root") == {"real.txt": False, "link.txt": False}
    result = fingerprint_directory("root", "sha256")
    assert result.files["link.txt"] == hash_bytes(b"the content", "sha256")


def test_symlinked_folders_are_followed_but_loops_and_dangling_links_are_not() -> None:
    """A link to a folder is walked into; a link back into the walk (a loop) and a dangling
    link are described instead of entered."""
    write("outside/secret.txt", b"s")
    write("root/sub/file.txt", b"f")
    os.symlink(os.path.abspath("outside"), "root/to_outside")
    os.symlink("..", "root/sub/loop")
    os.symlink("nowhere", "root/dangling")
    assert walk("root") == {
        "sub/file.txt": False,
        "to_outside/secret.txt": False,
        "sub/loop": True,
        "dangling": True,
    }
    result = fingerprint_directory("root", "sha256")
    assert sorted(result.files) == [
        "dangling",
        "sub/file.txt",
        "sub/loop",
        "to_outside/secret.txt",
    ]
    assert "dangling" not in result.stamps  # described, not sized
    before = result.fingerprint
    write("outside/secret.txt", b"changed")
    assert fingerprint_directory("root", "sha256").fingerprint != before


def test_retargeting_a_symlink_changes_the_directory_fingerprint() -> None:
    """Pointing a link at another folder changes what the walk finds: a change."""
    write("a/x.txt", b"a")
    write("b/x.txt", b"b")
    write("root/file.txt", b"f")
    os.symlink(os.path.abspath("a"), "root/link")
    before = fingerprint_directory("root", "sha256")
    os.remove("root/link")
    os.symlink(os.path.abspath("b"), "root/link")
    after = fingerprint_directory("root", "sha256")
    assert diff_manifests(before.manifest(), after.manifest()).changed == ("link/x.txt",)
    assert after.fingerprint != before.fingerprint


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_is_special_and_never_opened() -> None:
    """A named pipe with no writer is described, not read: walking and fingerprinting return."""
    write("root/file.txt", b"f")
    os.mkfifo("root/pipe")
    assert walk("root") == {"file.txt": False, "pipe": True}
    result = fingerprint_directory("root", "sha256")
    assert sorted(result.files) == ["file.txt", "pipe"]
    assert "pipe" not in result.stamps  # described, not sized


def _rename(root: Path) -> None:
    (root / "sub" / "b.txt").rename(root / "sub" / "c.txt")


def _add(root: Path) -> None:
    (root / "new.txt").write_bytes(b"new")


def _delete(root: Path) -> None:
    (root / "a.txt").unlink()


def _edit(root: Path) -> None:
    (root / "sub" / "b.txt").write_bytes(b"B")


def _move_between_folders(root: Path) -> None:
    (root / "a.txt").rename(root / "sub" / "a.txt")


@pytest.mark.parametrize(
    ("change", "diff"),
    [
        (_rename, ((("sub/c.txt",), ("sub/b.txt",), ()))),
        (_add, ((("new.txt",), (), ()))),
        (_delete, (((), ("a.txt",), ()))),
        (_edit, (((), (), ("sub/b.txt",)))),
        (_move_between_folders, ((("sub/a.txt",), ("a.txt",), ()))),
    ],
)
def test_directory_fingerprint_sees_every_kind_of_change(
    change: Callable[[Path], None], diff: Tuple[Tuple[str, ...], ...]
) -> None:
    """Renames, additions, deletions, edits and moves change a real folder's fingerprint."""
    root = Path("root")
    write("root/a.txt", b"a")
    write("root/sub/b.txt", b"b")
    before = fingerprint_directory(str(root), DEFAULT_ALGORITHM)
    change(root)
    after = fingerprint_directory(str(root), DEFAULT_ALGORITHM)
    assert after.fingerprint != before.fingerprint
    found = diff_manifests(before.manifest(), after.manifest())
    assert (found.added, found.removed, found.changed) == diff
    assert after.fingerprint == manifest_fingerprint(after.manifest(), DEFAULT_ALGORITHM)


def test_a_folder_reached_by_many_symlinks_is_walked_once() -> None:
    """Symlinks forming a DAG (two links per level to the next level, 16 levels: 65536 paths)
    are walked once per real folder, each further way in described; every copy of the tree
    makes the same choice."""
    levels = 16
    for level in range(levels):
        os.makedirs(f"root/l{level}")
        write(f"root/l{level}/data.txt", str(level).encode())
    for level in range(levels - 1):
        for name in ("a", "b"):
            os.symlink(os.path.abspath(f"root/l{level + 1}"), f"root/l{level}/{name}")
    first = walk("root/l0")
    assert sum(1 for rel in first if rel.endswith("data.txt")) == levels
    assert len(first) < 4 * levels
    shutil.copytree("root", "copy", symlinks=True)
    for level in range(levels - 1):  # the copy's links point into the copy
        for name in ("a", "b"):
            os.remove(f"copy/l{level}/{name}")
            os.symlink(os.path.abspath(f"copy/l{level + 1}"), f"copy/l{level}/{name}")
    assert walk("copy/l0") == first


def test_a_forked_process_hashing_never_touches_its_parents_buffer(tmp_path: Path) -> None:
    """Luigi's ``--workers N`` forks a process per task: each hashes into its own memory. A
    buffer shared with the parent (and so with every sibling) let one worker record another
    output's content as its own."""
    from luigi_repro import fingerprint as fingerprint_module

    mine, theirs = tmp_path / "mine.txt", tmp_path / "theirs.txt"
    mine.write_bytes(b"3 0")
    theirs.write_bytes(b"0 0")
    assert hash_file(str(mine))[0] == "xxh3_128:" + xxhash.xxh3_128_hexdigest(b"3 0")
    buffer = fingerprint_module._buffer()  # this thread's, filled with "3 0" just now
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only hashes and leaves
        try:
            hash_file(str(theirs))
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    assert buffer[:3] == b"3 0"
