"""Checking a big folder: the warm check next to a plain ``os.scandir`` + ``stat`` walk.

Folders of N small files in 100 subfolders (N = 20,000 and 100,000; ``--quick``: 2,000 and
10,000) are written under /tmp and left to settle past the racy window. Measured side by side in
one run (medians of interleaved samples):

- the floor: a Python walk with ``os.scandir`` and one ``DirEntry.stat()`` per file;
- the warm check of an output folder: ``HashableDirectoryTarget.observe`` given the previous
  observation as a record holds it (its state round-tripped through JSON), as ``complete()`` and
  ``verify`` call it, with the persistent stat cache warm;
- the warm check of an input folder (no record): the same, with the stat cache alone (the
  process remembers what it last saw of the folder, as a record would);
- the same input check as the first one of a new process: the folder memory emptied, so the
  persistent cache's rows vouch for the files (shown, no target);
- memory: the tracemalloc peak of one warm check of the output folder, per file;
- one file changed in place (same size, mtime put back with ``os.utime``): found and named.

The log-log slope of the warm check between the two sizes says whether its cost is linear.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import tracemalloc
from typing import Dict, Tuple

from benchmarks.common import Results, median_times
from luigi_repro.fingerprint import Counters, diff_manifests
from luigi_repro.foldermemory import FolderMemory
from luigi_repro.statcache import PersistentStatCache
from luigi_repro.targets.base import FingerprintContext, Observation
from luigi_repro.targets.directory import HashableDirectoryTarget

WINDOW_NS = 2_000_000_000
SUBFOLDERS = 100


def build(folder: str, count: int) -> None:
    """``count`` small files spread over ``SUBFOLDERS`` subfolders."""
    for index in range(count):
        sub = os.path.join(folder, f"part-{index % SUBFOLDERS:03d}")
        if index < SUBFOLDERS:
            os.makedirs(sub)
        with open(os.path.join(sub, f"file-{index:07d}.txt"), "w") as stream:
            stream.write(f"row {index}\n")


def walk(folder: str) -> int:
    """The floor: every entry listed and every file statted once."""
    count = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                count += walk(entry.path)
            else:
                entry.stat()
                count += 1
    return count


def _as_recorded(observation: Observation) -> Observation:
    """The observation as the next check reads it back from the record (plain JSON types)."""
    state = json.loads(json.dumps(dict(observation.state)))
    manifest = json.loads(json.dumps(dict(observation.manifest or {}), sort_keys=True))
    return Observation(observation.fingerprint, observation.size, state, manifest)


def _context(cache: PersistentStatCache) -> FingerprintContext:
    return FingerprintContext("xxh3_128", WINDOW_NS, ".repro.json", cache, Counters())


def measure(results: Results, count: int, repeats: int) -> Tuple[float, float]:
    """Figures for one size; returns (warm check seconds, walk seconds)."""
    base = tempfile.mkdtemp(prefix="bench-folders-")
    try:
        folder = os.path.join(base, "data")
        build(folder, count)
        time.sleep(WINDOW_NS / 1e9 + 0.2)  # settled: fingerprints taken now are trusted later
        cache = PersistentStatCache(os.path.join(base, "stat.sqlite3"))
        target = HashableDirectoryTarget(folder)
        previous = _as_recorded(target.observe(_context(cache), None))
        cache.flush()

        def output_check() -> None:
            now = target.observe(_context(cache), previous)
            if now.fingerprint != previous.fingerprint:
                raise RuntimeError("an unchanged folder got another fingerprint")

        def input_check() -> None:
            target.observe(_context(cache), None)

        def first_input_check() -> None:
            cache.folders = FolderMemory()  # as in a process that has not seen the folder
            target.observe(_context(cache), None)

        times = median_times(
            [
                ("walk", lambda: walk(folder)),
                ("output", output_check),
                ("input", input_check),
                ("first input", first_input_check),
            ],
            repeats,
        )
        label = f"{count:,} files"
        results.add("folders", f"{label}: scandir + stat walk", times["walk"], "s")
        results.add("folders", f"{label}: warm check, output folder", times["output"], "s")
        results.add(
            "folders", f"{label}: warm check, input folder (stat cache)", times["input"], "s"
        )
        results.add(
            "folders",
            f"{label}: first input check of a process",
            times["first input"],
            "s",
        )
        results.add(
            "folders",
            f"{label}: first input check / scandir walk",
            times["first input"] / times["walk"],
            "x",
        )
        for kind in ("output", "input"):
            ratio = times[kind] / times["walk"]
            results.add(
                "folders",
                f"{label}: warm check / scandir walk, {kind} folder",
                ratio,
                "x",
                "<= 2",
                ratio <= 2,
            )
        tracemalloc.start()
        try:
            output_check()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        per_file = peak / count
        results.add(
            "folders",
            f"{label}: bytes per file (warm check peak)",
            per_file,
            "B",
            "<= 200",
            per_file <= 200,
        )
        results.add(
            "folders",
            f"{label}: changed file found and named",
            _finds_change(target, cache, folder, previous, count),
            "",
            "= 1",
            None,
        )
        return times["output"], times["walk"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _finds_change(
    target: HashableDirectoryTarget,
    cache: PersistentStatCache,
    folder: str,
    previous: Observation,
    count: int,
) -> float:
    """1.0 when a file rewritten in place (same size, mtime put back) is the one change named."""
    index = count // 2
    path = os.path.join(folder, f"part-{index % SUBFOLDERS:03d}", f"file-{index:07d}.txt")
    before = os.stat(path)
    with open(path, "r+") as stream:
        data = stream.read()
        stream.seek(0)
        stream.write(data.upper())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    now = target.observe(_context(cache), previous)
    diff = diff_manifests(previous.manifest or {}, now.manifest or {})
    expected = os.path.relpath(path, folder).replace(os.sep, "/")
    return 1.0 if diff.changed == (expected,) and not diff.added and not diff.removed else 0.0


def run(results: Results, quick: bool) -> None:
    small, large = (2_000, 10_000) if quick else (20_000, 100_000)
    repeats = 3 if quick else 5
    figures: Dict[int, Tuple[float, float]] = {}
    for count in (small, large):
        figures[count] = measure(results, count, repeats)
    growth = math.log(large / small)
    check = math.log(figures[large][0] / figures[small][0]) / growth
    floor = math.log(figures[large][1] / figures[small][1]) / growth
    results.add("folders", "warm check growth with files (log-log slope)", check, "")
    results.add("folders", "scandir walk growth with files (log-log slope)", floor, "")
