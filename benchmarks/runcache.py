"""What the run cache costs and saves: restoring a big output, storing it, and many small tasks.

1. *Restore*: a project whose task ``RcBig(p)`` writes one file of S MiB (made from ``p``) is
   built with ``p=1``, then ``p=2``, then ``p=1`` again: the third build restores the output
   from a local run cache. Each such build is a fresh ``luigi`` process, timed whole and, inside
   it, ``RunCache.restore`` (the copy and its verification) and the protocol's restore (that plus
   the record). They are compared with ``cp`` of a cached file (and ``cp`` + ``sync FILE`` when
   ``fsync = true``) and with rerunning the task without a cache (``run()`` writes the S MiB).
2. *Store*: the same ``p=1`` build with an empty cache minus the build without a cache, against
   ``cp``; also with ``run_cache_links = true`` (a hard link instead of a copy).
3. *Many small tasks*: the two-layer DAG of ``benchmarks/dag.py`` (N checked tasks) built in this
   process from scratch with the cache on and off (the cost of storing), then rebuilt after every
   record is removed, with the cache warm (every task restored) and off (every task runs):
   ``benchmarks/runcachetasks.py``.

Every step is preceded by an untimed setup (the state it starts from, and ``sync`` so no earlier
write is still being flushed); the contenders alternate and each figure is a median. Two sizes
of each; the log-log slope between them says how a cost grows (1 = linearly).
"""

from __future__ import annotations

import functools
import glob
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks.common import Results
from benchmarks.fsync import file_system_of

NAME = "runcache"

#: Output sizes in MiB and numbers of small tasks: normal, then --quick.
SIZES_MIB = {False: (256, 1024), True: (64, 256)}
TASK_COUNTS = {False: (200, 800), True: (50, 200)}
REPEATS = {False: 5, True: 3}
#: Each build of part 3 already sums hundreds of tasks: fewer repeats.
TASK_REPEATS = {False: 3, True: 1}

PIPELINE = '''
import hashlib
import os

import luigi
from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash


class RcBig(TaskWithCheckingInputHash):
    """One output of ``mib`` MiB, the same bytes for the same ``seed``."""

    seed = luigi.IntParameter()
    mib = luigi.IntParameter()

    def output(self):
        return HashableLocalTarget("out/big.bin")

    def run(self):
        block = hashlib.shake_256(str(self.seed).encode()).digest(1 << 20)
        with self.output().temporary_path() as temporary:
            with open(temporary, "wb") as sink:
                for _ in range(self.mib):
                    sink.write(block)
'''

#: Runs ``luigi`` with the run cache's steps timed; the spans go to the file $RC_BENCH_SPANS.
TIMED_LUIGI = """
import json, os, sys, time
from luigi_repro import protocol, runcache, runcachestore
from luigi_repro.targets import local

spans = []

def timed(owner, name, span=None):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spans.append([span or name, time.perf_counter() - started])
    setattr(owner, name, wrapper)

timed(runcache.RunCache, "restore")
timed(runcache.RunCache, "keep")
timed(protocol.RunProtocol, "_restore")
timed(runcachestore, "copy_verified", "copy")  # into or out of the cache, fingerprinted
timed(local, "atomic_replace", "replace")  # the new output moved over the old one
import luigi.cmdline
try:
    luigi.cmdline.luigi_run(sys.argv[1:])
finally:
    with open(os.environ["RC_BENCH_SPANS"], "w") as stream:
        json.dump(spans, stream)
"""

LUIGI_CFG = """
[retcode]
already_running = 10
missing_data = 20
not_run = 25
task_failed = 30
scheduling_error = 35
unhandled_exception = 40
"""

RESTORED = "restored from run cache"

#: One contender: an untimed setup, then the timed step (which returns in-process spans).
Spans = Dict[str, float]
Step = Tuple[Callable[[], None], Callable[[], Spans]]


def interleaved(contenders: Dict[str, Step], repeats: int) -> Dict[str, Dict[str, float]]:
    """Median seconds of each contender's step (and of each span it reports), alternating."""
    samples: Dict[str, Dict[str, List[float]]] = {name: {} for name in contenders}
    for _ in range(repeats):
        for name, (setup, step) in contenders.items():
            setup()
            os.sync()
            started = time.perf_counter()
            spans = step()
            spans["whole"] = time.perf_counter() - started
            for span, seconds in spans.items():
                samples[name].setdefault(span, []).append(seconds)
    return {
        name: {span: statistics.median(values) for span, values in by_span.items()}
        for name, by_span in samples.items()
    }


def slope(small: float, large: float, small_size: float, large_size: float) -> float:
    """The log-log slope of a cost between two sizes."""
    return math.log(large / small) / math.log(large_size / small_size)


class Project:
    """A generated project of one big task, built by fresh ``luigi`` processes."""

    def __init__(self, folder: str, mib: int) -> None:
        self.folder, self.mib = folder, mib
        self.cache = os.path.join(folder, "cache")
        self.empty_cache = os.path.join(folder, "cache-new")
        self.output = os.path.join(folder, "out", "big.bin")
        for name, text in (("pipeline.py", PIPELINE), ("timed_luigi.py", TIMED_LUIGI)):
            with open(os.path.join(folder, name), "w") as stream:
                stream.write(text)
        with open(os.path.join(folder, "luigi.cfg"), "w") as stream:
            stream.write(LUIGI_CFG)

    def build(
        self, p: int, cache: Optional[str], fsync: bool = True, links: bool = False
    ) -> Tuple[Spans, bool]:
        """Build ``RcBig(p)``: the in-process spans, and whether it was restored."""
        env = {name: value for name, value in os.environ.items() if not name.startswith("LUIGI_")}
        paths = [self.folder, os.environ.get("PYTHONPATH", "")]
        env.update(
            PYTHONPATH=os.pathsep.join(p for p in paths if p),
            LUIGI_CONFIG_PATH=os.path.join(self.folder, "luigi.cfg"),
            LUIGI_REPRO_STAT_CACHE=os.path.join(self.folder, "stat-cache.sqlite3"),
            LUIGI_REPRO_FSYNC=str(fsync).lower(),
            LUIGI_REPRO_RUN_CACHE_LINKS=str(links).lower(),
            RC_BENCH_SPANS=os.path.join(self.folder, "spans.json"),
        )
        if cache is not None:
            env["LUIGI_REPRO_RUN_CACHE"] = cache
        task = ["--module", "pipeline", "RcBig", "--seed", str(p), "--mib", str(self.mib)]
        done = subprocess.run(
            [sys.executable, "timed_luigi.py", *task, "--local-scheduler"],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"RcBig(p={p}) exited {done.returncode}: {done.stderr[-2000:]}")
        with open(env["RC_BENCH_SPANS"]) as stream:
            spans: Dict[str, float] = {}
            for name, seconds in json.load(stream):
                spans[name] = spans.get(name, 0.0) + seconds
        return spans, RESTORED in done.stderr

    def expect(
        self, p: int, restored: bool, cache: Optional[str], fsync: bool = True, links: bool = False
    ) -> Spans:
        """Build ``RcBig(p)``, which must be restored (or must run): its spans."""
        spans, was_restored = self.build(p, cache, fsync, links)
        if was_restored != restored:
            raise RuntimeError(f"RcBig(p={p}) was {'' if was_restored else 'not '}restored")
        return spans

    def a_blob(self) -> str:
        return sorted(glob.glob(os.path.join(self.cache, "blobs", "*", "*", "*")))[0]

    def copy(self, fsync: bool, over_output: bool = False) -> Spans:
        """``cp`` a cached file (then ``sync`` it); with ``over_output``, ``mv`` it over the
        output, as any atomic replacement of an existing output must (freeing the old one)."""
        copy = os.path.join(self.folder, "out", "copy.bin")
        subprocess.run(["cp", self.a_blob(), copy], check=True)
        if fsync:
            subprocess.run(["sync", copy], check=True)
        if over_output:
            subprocess.run(["mv", copy, self.output], check=True)
            if fsync:
                subprocess.run(["sync", os.path.dirname(self.output)], check=True)
        return {}

    def contenders(self) -> Dict[str, Step]:
        """Every timed step of parts 1 and 2, each from the output of ``RcBig(p=2)``."""

        def at_p2(clear_new_cache: bool = False) -> Callable[[], None]:
            def setup() -> None:
                self.build(2, self.cache)
                for path in (os.path.join(self.folder, "out", "copy.bin"),):
                    if os.path.exists(path):
                        os.unlink(path)
                if clear_new_cache:
                    shutil.rmtree(self.empty_cache, ignore_errors=True)

            return setup

        def build(restored: bool, cache: Optional[str], **flags: bool) -> Callable[[], Spans]:
            return lambda: self.expect(1, restored, cache=cache, **flags)

        new = self.empty_cache
        return {
            "restore, fsync off": (at_p2(), build(True, self.cache, fsync=False)),
            "cp": (at_p2(), lambda: self.copy(False)),
            "restore, fsync on": (at_p2(), build(True, self.cache)),
            "cp + sync FILE": (at_p2(), lambda: self.copy(True)),
            "cp + mv over the output": (at_p2(), lambda: self.copy(False, True)),
            "cp + sync FILE + mv over the output": (at_p2(), lambda: self.copy(True, True)),
            "rerun, no cache, fsync off": (at_p2(), build(False, None, fsync=False)),
            "rerun, no cache, fsync on": (at_p2(), build(False, None)),
            "run + store, fsync off": (at_p2(True), build(False, new, fsync=False)),
            "run + store, fsync on": (at_p2(True), build(False, new)),
            "run + store, links, fsync off": (
                at_p2(True),
                build(False, new, fsync=False, links=True),
            ),
        }


def big_output(results: Results, sizes_mib: Sequence[int], repeats: int) -> None:
    """Parts 1 and 2 at each size, then the slopes between the first two sizes."""
    medians: Dict[int, Dict[str, Dict[str, float]]] = {}
    for mib in sizes_mib:
        with tempfile.TemporaryDirectory(prefix="luigi-repro-runcache-") as folder:
            project = Project(folder, mib)
            print(f"runcache: one output of {mib} MiB, on {file_system_of(folder)}")
            project.expect(1, False, cache=project.cache)  # both entries, then p=2's output
            project.expect(2, False, cache=project.cache)
            medians[mib] = interleaved(project.contenders(), repeats)
        _big_rows(results, mib, medians[mib])
    small, large = sizes_mib[0], sizes_mib[-1]
    if small == large:
        return
    for label, name, span in (
        ("restore, whole luigi process", "restore, fsync off", "whole"),
        ("restore step (RunCache.restore)", "restore, fsync off", "restore"),
        ("cp", "cp", "whole"),
        ("rerun, whole luigi process", "rerun, no cache, fsync off", "whole"),
        ("store step (RunCache.keep)", "run + store, fsync off", "keep"),
    ):
        value = slope(medians[small][name][span], medians[large][name][span], small, large)
        results.add(NAME, f"{label}, {small} -> {large} MiB, log-log slope", value, "")


def _big_rows(results: Results, mib: int, m: Dict[str, Dict[str, float]]) -> None:
    size = f"{mib} MiB"
    for fsync, cp in (("off", "cp"), ("on", "cp + sync FILE")):
        restore = m[f"restore, fsync {fsync}"]
        rerun = m[f"rerun, no cache, fsync {fsync}"]
        stored = m[f"run + store, fsync {fsync}"]
        copy, replacing = m[cp]["whole"], m[f"{cp} + mv over the output"]["whole"]
        tag = f"{size}, fsync {fsync}"
        add = functools.partial(results.add, NAME)
        add(f"restore, whole luigi process, {tag}", restore["whole"], "s")
        add(f"restore step (RunCache.restore), {tag}", restore["restore"], "s")
        add(f"… of which copy and fingerprint, {tag}", restore["copy"], "s")
        add(f"… of which moving it over the old output, {tag}", restore["replace"], "s")
        add(f"restore + record (protocol), {tag}", restore["_restore"], "s")
        add(f"{cp}, {size}", copy, "s")
        add(f"{cp} + mv over the output, {size}", replacing, "s")
        add(f"rerun without cache, whole luigi process, {tag}", rerun["whole"], "s")
        add(f"… of which moving it over the old output, rerun, {tag}", rerun["replace"], "s")
        for label, value in (("process", restore["whole"]), ("step", restore["restore"])):
            ratio = value / copy
            add(f"restore {label} / {cp}, {tag}", ratio, "x", "<= 1.2", ratio <= 1.2)
            ratio = value / replacing
            add(f"restore {label} / ({cp} + mv), {tag}", ratio, "x", "<= 1.2", ratio <= 1.2)
        add(f"restore process / rerun, {tag}", restore["whole"] / rerun["whole"], "x")
        cost = stored["whole"] - rerun["whole"]
        add(f"store cost (cache on - off), {tag}", cost, "s")
        add(f"store step (RunCache.keep), {tag}", stored["keep"], "s")
        ratio = cost / copy
        add(f"store cost / {cp}, {tag}", ratio, "x", "<= 1.2", ratio <= 1.2)
        ratio = stored["keep"] / copy
        add(f"store step / {cp}, {tag}", ratio, "x", "<= 1.2", ratio <= 1.2)
    linked = m["run + store, links, fsync off"]
    cost = linked["whole"] - m["rerun, no cache, fsync off"]["whole"]
    results.add(NAME, f"store cost with run_cache_links, {size}", cost, "s")
    results.add(
        NAME, f"store step with run_cache_links (RunCache.keep), {size}", linked["keep"], "s"
    )
    ratio = cost / m["cp"]["whole"]
    results.add(NAME, f"store cost with run_cache_links / cp, {size}", ratio, "x", "~0")


def run(results: Results, quick: bool, sizes: Optional[Sequence[int]] = None) -> None:
    """All three parts; ``sizes`` are the big output's sizes in MiB."""
    big_output(results, sizes or SIZES_MIB[quick], REPEATS[quick])
    from benchmarks.runcachetasks import many_tasks

    many_tasks(results, TASK_COUNTS[quick], TASK_REPEATS[quick])
