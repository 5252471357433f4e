"""What does checking a built pipeline cost, next to a stat of its files and next to DVC?

A wide pipeline (:mod:`benchmarks.chain_pipeline`) is built once with ``luigi.build`` (local
scheduler) in a temporary folder under /tmp: ``Root`` wraps 1000 independent ``Produce`` tasks
(200 with ``--quick``), each reading a small raw seed file and writing a 1 MiB output of
pseudo-random bytes. Then, all measured side by side in one run (medians of interleaved samples):

1. **In-process, warm**: ``Root.complete()`` and ``luigi_repro.verify(root)`` (the exhaustive
   audit), per task. Each outermost call opens a new judge: whatever earlier calls left behind
   (the persistent stat cache, parsed records, remembered verdicts) is reused only once a stat
   shows its evidence unchanged. The floor is what any check must pay: ``os.stat`` of every
   output and of every record file. For reference, what plain Luigi's existence check of the
   same tasks costs (``requires()`` and ``output().exists()`` of every task, with Luigi's task
   instantiation) is shown too.
2. **In-process, cold**: the same two with ``LUIGI_REPRO_STAT_CACHE`` pointing at a fresh file for
   every sample, so every output and raw input is hashed again. The page cache stays warm (the
   data are read from memory, not disk); the floor shown is xxh3-128 of the same bytes.
3. **Whole process**: ``python -m luigi_repro verify --module benchmarks.chain_pipeline Root``
   (the task form) and ``verify PATH...`` on every output (the record-only form), warm and cold,
   against ``dvc status`` on the same files. DVC is installed with pip into a throw-away
   virtualenv (``~/.cache/luigi_repro_benchmarks/dvc-venv``, reused when present); when that
   fails the comparison is skipped with a message. The DVC project lives in the same data folder
   (``dvc init --no-scm``) and is a *pipeline*: a ``dvc.yaml`` with one stage per ``Produce``
   (the raw seed as its dependency, the output as its ``outs`` with ``cache: false``), committed
   with ``dvc commit --force``. ``dvc status`` of a pipeline compares the dependencies and outputs
   with ``dvc.lock``: the closest analogue of ``luigi-repro verify``. ``cache: false`` keeps
   ``dvc status`` to exactly that comparison (with cached outputs it also checks every cache
   object), so DVC is given its leanest form. Warm ``dvc status`` runs after another ``dvc
   status``; cold removes DVC's state first: its site cache folder (``DVC_SITE_CACHE_DIR``, here
   inside the temporary folder), which holds the hash database (``hashes/local/cache.db``) and
   the link database; ``.dvc/tmp`` only keeps locks. Every run must report everything up to date
   (exit status 0, and DVC's "Data and pipelines are up to date."), or the benchmark fails.
   DVC runs with analytics and update checks off, with its own empty global and system config
   folders, and with proxies pointing at a closed local port so that nothing reaches the network.
4. **The diamond**: 20 layers of two tasks, each requiring both tasks of the layer below, under
   one top task, built once; one ``complete()`` of the top with a fresh stat cache, inside
   ``luigi_repro.judging`` with a :class:`~luigi_repro.fingerprint.Counters`: how many tasks are
   judged, how many targets observed (``Judge.targets_observed``: fingerprints computed or
   revalidated) and how many files hashed (``Counters.files_hashed``), per task and per target.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import luigi
import luigi.task
import xxhash

import luigi_repro
from benchmarks import chain_pipeline
from benchmarks.common import Results, environment, median_times
from luigi_repro.fingerprint import Counters

NAME = "pipeline"

#: Where the repository is: the child processes import ``benchmarks.chain_pipeline`` from here.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The throw-away virtualenv holding DVC (created on first use, reused afterwards).
DVC_VENV = os.path.join(os.path.expanduser("~"), ".cache", "luigi_repro_benchmarks", "dvc-venv")

#: What ``dvc status`` prints when every stage is up to date.
DVC_UP_TO_DATE = "Data and pipelines are up to date."

#: A closed local port: any attempt of DVC to reach the network fails at once.
NO_NETWORK = "http://127.0.0.1:9"

#: Seconds beyond the racy window before the first (caching) check: see :func:`_past_racy_window`.
RACY_MARGIN = 0.5


def _past_racy_window(paths: Sequence[str]) -> None:
    """Wait until the newest of ``paths`` is older than the racy window.

    A fingerprint taken within ``racy_window`` of a file's last change is used once but never
    cached, so the warm-up check must come later, or the "warm" checks would hash again.
    """
    window = luigi_repro.load_settings().racy_window_ns / 1e9
    newest = max(max(st.st_mtime, st.st_ctime) for st in map(os.stat, paths))
    delay = newest + window + RACY_MARGIN - time.time()
    if delay > 0:
        time.sleep(delay)


def _run(command: Sequence[str], env: Mapping[str, str], cwd: str) -> Tuple[int, str]:
    """Run ``command``; its exit status and what it printed (stdout and stderr)."""
    done = subprocess.run(
        list(command), cwd=cwd, env=dict(env), capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _checked(command: Sequence[str], env: Mapping[str, str], cwd: str, expect: str = "") -> None:
    """Run ``command``; fail unless it exits 0 and prints ``expect``."""
    status, printed = _run(command, env, cwd)
    if status != 0 or expect not in printed:
        tail = "\n".join(printed.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command[:6])} ... exited {status}:\n{tail}")


# --- DVC ----------------------------------------------------------------------------------------


def _dvc_executable() -> Optional[str]:
    """The ``dvc`` of the throw-away virtualenv, installed on first use; None if it cannot be."""
    dvc = os.path.join(DVC_VENV, "bin", "dvc")
    if os.path.exists(dvc):
        return dvc
    print(f"pipeline: installing dvc into {DVC_VENV} (once)", flush=True)
    python = os.path.join(DVC_VENV, "bin", "python")
    steps = [
        [sys.executable, "-m", "venv", "--clear", DVC_VENV],
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "dvc"],
    ]
    for step in steps:
        try:
            status, printed = _run(step, os.environ, REPO)
        except OSError as exc:
            status, printed = -1, str(exc)
        if status != 0:
            last = (printed.strip().splitlines() or ["no output"])[-1]
            print(f"pipeline: skipped: the DVC comparison (installing dvc failed: {last})")
            shutil.rmtree(DVC_VENV, ignore_errors=True)
            return None
    return dvc if os.path.exists(dvc) else None


def _dvc_environment(folder: str, project: str = "") -> Dict[str, str]:
    """DVC's environment: no analytics, no updater, own config and state folders (one state
    per ``project``), no network."""
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        env.pop(name, None)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env[name] = NO_NETWORK
    env.update(
        DVC_NO_ANALYTICS="1",
        DVC_ANALYTICS_ENDPOINT=NO_NETWORK,
        DVC_UPDATER_ENDPOINT=NO_NETWORK,
        DVC_STUDIO_OFFLINE="1",
        DVC_GLOBAL_CONFIG_DIR=os.path.join(folder, "dvc-config", "global"),
        DVC_SYSTEM_CONFIG_DIR=os.path.join(folder, "dvc-config", "system"),
        DVC_SITE_CACHE_DIR=os.path.join(
            folder, "dvc-site-cache" + (f"-{project}" if project else "")
        ),
        PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
    )
    return env


def _dvc_yaml(count: int) -> str:
    """One stage per ``Produce``: the raw seed in, the output out (not copied to DVC's cache)."""
    lines = ["stages:"]
    for index in range(count):
        lines += [
            f"  produce_{index:04d}:",
            "    cmd: luigi --module benchmarks.chain_pipeline Produce"
            f" --index {index} --local-scheduler",
            "    deps:",
            f"    - raw/{index:04d}.txt",
            "    outs:",
            f"    - out/{index:04d}.bin:",
            "        cache: false",
        ]
    return "\n".join(lines) + "\n"


#: DVC's leanest layout for the same files: one stage over the folders.
ONE_STAGE_YAML = """stages:
  produce_all:
    cmd: luigi --module benchmarks.chain_pipeline Root --local-scheduler
    deps:
    - raw
    outs:
    - out:
        cache: false
"""


def _set_up_dvc(
    dvc: str, data: str, env: Mapping[str, str], count: int, yaml: Optional[str] = None
) -> None:
    """Make ``data`` a DVC project whose pipeline describes the outputs already built."""
    _checked([dvc, "init", "--no-scm", "-q"], env, data)
    _checked([dvc, "config", "core.analytics", "false"], env, data)
    _checked([dvc, "config", "core.check_update", "false"], env, data)
    with open(os.path.join(data, "dvc.yaml"), "w") as stream:
        stream.write(_dvc_yaml(count) if yaml is None else yaml)
    _checked([dvc, "commit", "--force", "-q"], env, data)


def _one_stage_copy(dvc: str, data: str, folder: str) -> str:
    """The same files (hard links) in a second DVC project made of one stage over the folders.

    Made after the in-process measurements: a file with two names is not watched, and those
    measure the watched case."""
    copy = os.path.join(folder, "data-one-stage")
    os.makedirs(copy)
    for part in ("raw", "out"):
        shutil.copytree(os.path.join(data, part), os.path.join(copy, part), copy_function=os.link)
    env = _dvc_environment(folder, "one-stage")
    _set_up_dvc(dvc, copy, env, 0, ONE_STAGE_YAML)
    return copy


# --- the measurements ---------------------------------------------------------------------------


def _per_task_us(seconds: float, count: int) -> float:
    return seconds / count * 1e6


def _in_process(
    results: Results, count: int, root: chain_pipeline.Root, folder: str, quick: bool
) -> None:
    """Sections 1 and 2: warm and cold ``complete()`` and ``verify()`` against their floors."""
    warm_cache = os.environ["LUIGI_REPRO_STAT_CACHE"]
    outputs = [chain_pipeline.output_path(i) for i in range(count)]
    records = [path + luigi_repro.load_settings().record_suffix for path in outputs]
    raws = [chain_pipeline.raw_path(i) for i in range(count)]
    statted = outputs + records
    cold_runs = iter(range(1_000_000))
    last: Dict[str, Counters] = {}

    def stat_floor() -> None:
        for path in statted:
            os.stat(path)

    def luigi_walk() -> None:
        # What plain Luigi's own complete() looks at: every task's requires() and whether its
        # outputs exist (the tasks are Luigi objects either way: instantiation is paid here too).
        for task in root.requires():
            luigi.Task.complete(task)
            for upstream in luigi.task.flatten(task.requires()):
                upstream.complete()

    def hash_floor() -> None:
        buffer = bytearray(1 << 20)
        for path in outputs + raws:
            hasher = xxhash.xxh3_128()
            with open(path, "rb", buffering=0) as stream:
                while True:
                    size = stream.readinto(buffer)
                    if not size:
                        break
                    hasher.update(memoryview(buffer)[:size])
            hasher.hexdigest()

    def cache(cold: bool) -> str:
        if cold:
            return os.path.join(folder, "cold-caches", f"stat-{next(cold_runs)}.sqlite3")
        return warm_cache

    def complete(cold: bool) -> Callable[[], None]:
        def action() -> None:
            with environment(LUIGI_REPRO_STAT_CACHE=cache(cold)):
                if not root.complete():
                    raise RuntimeError("the benchmark pipeline is not complete")

        return action

    def verify(cold: bool) -> Callable[[], None]:
        def action() -> None:
            counters = Counters()
            with environment(LUIGI_REPRO_STAT_CACHE=cache(cold)):
                report = luigi_repro.verify(root, counters=counters)
            if not report.ok:
                raise RuntimeError("verify() found the benchmark pipeline not up to date")
            last["cold" if cold else "warm"] = counters

        return action

    times = median_times(
        [
            ("stat floor", stat_floor),
            ("luigi walk", luigi_walk),
            ("complete warm", complete(cold=False)),
            ("verify warm", verify(cold=False)),
            ("hash floor", hash_floor),
            ("complete cold", complete(cold=True)),
            ("verify cold", verify(cold=True)),
        ],
        repeats=5 if quick else 7,
    )
    shutil.rmtree(os.path.join(folder, "cold-caches"), ignore_errors=True)
    stat_us = _per_task_us(times["stat floor"], count)
    hash_us = _per_task_us(times["hash floor"], count)
    walk_us = _per_task_us(times["luigi walk"], count)
    print(f"  in-process, {count} tasks (page cache warm; cold = fresh stat cache every sample)")
    results.add(NAME, "os.stat floor: output + record, per task", stat_us, "us")
    results.add(NAME, "plain Luigi existence walk per task (reference)", walk_us, "us")
    for kind in ("complete", "verify"):
        label = "complete()" if kind == "complete" else "verify()"
        value = _per_task_us(times[f"{kind} warm"], count)
        results.add(NAME, f"warm {label} per task", value, "us")
        ratio = value / stat_us
        results.add(NAME, f"warm {label} / os.stat floor", ratio, "x", "<= 10x", ratio <= 10)
        results.add(NAME, f"warm {label} / plain Luigi walk", value / walk_us, "x")
    _counted(results, "warm", last["warm"], count)
    results.add(NAME, "xxh3 floor: output + raw input read and hashed, per task", hash_us, "us")
    for kind in ("complete", "verify"):
        label = "complete()" if kind == "complete" else "verify()"
        value = _per_task_us(times[f"{kind} cold"], count)
        results.add(NAME, f"cold {label} per task", value, "us")
        results.add(NAME, f"cold {label} / os.stat floor", value / stat_us, "x")
        results.add(NAME, f"cold {label} / xxh3 floor", value / hash_us, "x")
    _counted(results, "cold", last["cold"], count)


def _counted(results: Results, state: str, counters: Counters, count: int) -> None:
    """What one ``verify()`` counted (``Counters`` counts the stats made to fingerprint)."""
    statted, hashed = counters.files_statted / count, counters.files_hashed / count
    results.add(NAME, f"{state} verify(): files statted (Counters) per task", statted, "")
    results.add(NAME, f"{state} verify(): files hashed per task", hashed, "")


def _whole_process(results: Results, count: int, folder: str, dvc: Optional[str]) -> None:
    """Section 3: ``luigi-repro verify`` in a new process, warm and cold, against ``dvc status``."""
    data = chain_pipeline.data_folder()
    env = dict(os.environ)
    cold_runs = iter(range(1_000_000))
    verify = [sys.executable, "-m", "luigi_repro", "verify"]
    task_form = [*verify, "--module", "benchmarks.chain_pipeline", "Root", "--count", str(count)]
    path_form = [*verify, *(chain_pipeline.output_path(i) for i in range(count))]

    def repro(command: List[str], cold: bool) -> Callable[[], None]:
        def action() -> None:
            cache = os.environ["LUIGI_REPRO_STAT_CACHE"]
            if cold:
                cache = os.path.join(folder, "cold-caches", f"stat-{next(cold_runs)}.sqlite3")
            _checked(command, {**env, "LUIGI_REPRO_STAT_CACHE": cache}, REPO)

        return action

    contenders: List[Tuple[str, Callable[[], None]]] = [
        ("verify task form warm", repro(task_form, cold=False)),
        ("verify task form cold", repro(task_form, cold=True)),
        ("verify path form warm", repro(path_form, cold=False)),
        ("verify path form cold", repro(path_form, cold=True)),
    ]
    if dvc is not None:
        one_stage = _one_stage_copy(dvc, data, folder)
        for layout, project, dvc_env in (
            ("", data, _dvc_environment(folder)),
            (" one stage", one_stage, _dvc_environment(folder, "one-stage")),
        ):
            status = functools.partial(_dvc_status, dvc, dvc_env, project)
            status(cold=False)  # warm: this run fills the state; the measured ones reuse it
            # Cold runs before warm in each round, so a warm run always follows a full run.
            contenders += [(f"dvc status{layout} cold", functools.partial(status, cold=True))]
            contenders += [(f"dvc status{layout} warm", functools.partial(status, cold=False))]
    repro(task_form, cold=False)()  # the child's first import compiles nothing later ones would
    times = median_times(contenders, repeats=3)
    shutil.rmtree(os.path.join(folder, "cold-caches"), ignore_errors=True)
    print(f"  whole process, {count} tasks (cold = no stat cache / no DVC state; page cache warm)")
    for name, label in (
        ("verify task form", "luigi-repro verify --module M Root"),
        ("verify path form", f"luigi-repro verify PATH x{count}"),
    ):
        for state_name in ("warm", "cold"):
            results.add(NAME, f"{label}, {state_name}", times[f"{name} {state_name}"], "s")
    if dvc is None:
        return
    for state_name in ("warm", "cold"):
        results.add(
            NAME,
            f"dvc status ({count}-stage dvc.yaml), {state_name}",
            times[f"dvc status {state_name}"],
            "s",
        )
    for state_name in ("warm", "cold"):
        results.add(
            NAME,
            f"dvc status (one stage over the folders), {state_name}",
            times[f"dvc status one stage {state_name}"],
            "s",
        )
    for name, label in (
        ("verify task form", "verify --module"),
        ("verify path form", "verify PATH"),
    ):
        for state_name in ("warm", "cold"):
            ratio = times[f"{name} {state_name}"] / times[f"dvc status {state_name}"]
            results.add(
                NAME,
                f"{label} / dvc status ({count} stages), {state_name}",
                ratio,
                "x",
                "<= 0.3",
                ratio <= 0.3,
            )
            ratio = times[f"{name} {state_name}"] / times[f"dvc status one stage {state_name}"]
            results.add(
                NAME,
                f"{label} / dvc status (one stage), {state_name}",
                ratio,
                "x",
                "<= 0.7",
                ratio <= 0.7,
            )


def _dvc_status(dvc: str, env: Mapping[str, str], project: str, cold: bool) -> None:
    """``dvc status`` in ``project``, which must report everything up to date; ``cold``
    removes DVC's state (its site cache) first."""
    if cold:
        shutil.rmtree(env["DVC_SITE_CACHE_DIR"], ignore_errors=True)
    _checked([dvc, "status"], env, project, DVC_UP_TO_DATE)


def _complete_once(top: luigi.Task, counters: Counters) -> luigi_repro.Judge:
    """``top.complete()`` inside a judge that counts into ``counters``; that judge."""
    with luigi_repro.judging(counters=counters) as judge:
        if not top.complete():
            raise RuntimeError("the diamond is not complete")
    return judge


def _diamond(results: Results, folder: str) -> None:
    """Section 4: one ``complete()`` of the diamond's top, counting judgements and hashes."""
    layers = chain_pipeline.DIAMOND_LAYERS
    os.makedirs(chain_pipeline.diamond_path(""), exist_ok=True)
    with open(chain_pipeline.diamond_path("seed.txt"), "w") as stream:
        stream.write("seed\n")
    top = chain_pipeline.DiamondTop()
    if not luigi.build([top], local_scheduler=True, workers=1, log_level="WARNING"):
        raise RuntimeError("building the diamond failed")
    tasks = 2 * layers + 1
    targets = tasks + 1  # every output and the raw seed
    fresh = os.path.join(folder, "diamond-stat.sqlite3")
    counters = Counters()
    with environment(LUIGI_REPRO_STAT_CACHE=fresh):
        judge = _complete_once(top, counters)
    print(f"  diamond: {layers} layers x 2, {tasks} tasks, {targets} files; one complete(), cold")
    results.add(NAME, "diamond: tasks judged per task", judge.tasks_judged / tasks, "")
    per_target = judge.targets_observed / targets
    results.add(NAME, "diamond: fingerprints per target", per_target, "", "<= 1", per_target <= 1)
    hashed = counters.files_hashed / targets
    results.add(NAME, "diamond: file hashes per target", hashed, "", "<= 1", hashed <= 1)
    results.add(NAME, "diamond: stats per target", counters.files_statted / targets, "")


def run(results: Results, quick: bool) -> None:
    count = 200 if quick else 1000
    with tempfile.TemporaryDirectory(prefix="luigi_repro_pipeline_", dir="/tmp") as folder:
        data = os.path.join(folder, "data")
        warm_cache = os.path.join(folder, "stat-cache.sqlite3")
        with environment(**{chain_pipeline.DATA_ENV: data, "LUIGI_REPRO_STAT_CACHE": warm_cache}):
            chain_pipeline.write_raw_inputs(count)
            root = chain_pipeline.Root(count=count)  # type: ignore[no-untyped-call]
            started = time.perf_counter()
            if not luigi.build([root], local_scheduler=True, workers=1, log_level="WARNING"):
                raise RuntimeError("building the benchmark pipeline failed")
            built = time.perf_counter() - started
            print(f"pipeline: {count} tasks x 1 MiB outputs, built in {built:.1f} s in {folder}")
            dvc = _dvc_executable()
            if dvc is not None:
                started = time.perf_counter()
                try:
                    _set_up_dvc(dvc, data, _dvc_environment(folder), count)
                except (RuntimeError, OSError) as exc:
                    print(f"pipeline: skipped: the DVC comparison (setting DVC up failed: {exc})")
                    dvc = None
                else:
                    elapsed = time.perf_counter() - started
                    print(f"  DVC pipeline ({count} stages) committed in {elapsed:.1f} s")
            outputs = [chain_pipeline.output_path(i) for i in range(count)]
            _past_racy_window(outputs + [chain_pipeline.raw_path(i) for i in range(count)])
            if not root.complete():  # the warm-up: fills the stat cache
                raise RuntimeError("the benchmark pipeline is not complete after its build")
            _in_process(results, count, root, folder, quick)
            _whole_process(results, count, folder, dvc)
            _diamond(results, folder)
