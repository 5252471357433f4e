"""The benchmark scripts keep working (their figures are printed, never asserted here)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def test_every_listed_benchmark_has_a_run_function() -> None:
    from benchmarks.__main__ import BENCHMARKS

    for name in BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        assert callable(module.run), name


def test_an_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-part"])
    assert exit_info.value.code == 2
    assert "unknown benchmark 'no-such-part'" in capsys.readouterr().err


def test_the_build_comparison_runs_on_a_tiny_dag(tmp_path: Path) -> None:
    """Both flavours build the same DAG; every row of the comparison is filled in."""
    from benchmarks import build
    from benchmarks.common import Results

    results = Results()
    build._run_shape(results, "tiny", layers=2, width=3, repeats=1)
    measures = {row["measure"]: row for row in results.rows}
    for label in ("everything built", "nothing built"):
        plain = measures[f"plain luigi.Task, tiny 6, {label}"]["value"]
        checked = measures[f"TaskWithCheckingInputHash, tiny 6, {label}"]["value"]
        ratio = measures[f"checked / plain, tiny 6, {label}"]["value"]
        assert ratio == pytest.approx(checked / plain)
    assert measures["tiny: extra files per checked task (record, lock)"]["value"] == 2


def test_the_audit_hook_benchmark_runs_small() -> None:
    """Per-open costs in fresh processes and the two build sizes are all measured."""
    from benchmarks import auditreads
    from benchmarks.common import Results

    results = Results()
    auditreads.per_open(results, count=50, repeats=1)
    auditreads.build_growth(results, small=4, large=8, repeats=1)
    measures = {row["measure"]: row["value"] for row in results.rows}
    for mode in auditreads.MODES:
        assert measures[f"the same file, {mode}"] > 0
        assert measures[f"different files, {mode}"] > 0
    ratio = measures["build 8 tasks, warn / ignore"]
    warn = measures["build 8 tasks, undeclared_reads = warn"]
    assert ratio == pytest.approx(warn / measures["build 8 tasks, undeclared_reads = ignore"])
    assert "build time growth with tasks, warn (log-log slope)" in measures


@pytest.mark.filterwarnings('ignore:Parameter "param_name":UserWarning')
def test_the_range_tools_benchmark_runs_small() -> None:
    """Plain and checked Range checks are measured at two sizes, with the growth slope."""
    from benchmarks import rangetools
    from benchmarks.common import Results

    results = Results()
    rangetools.growth(results, small=3, large=6, repeats=1)
    measures = {row["measure"]: row["value"] for row in results.rows}
    assert measures["RangeDaily over 6 days, checked (bulk_complete)"] > 0
    assert measures["RangeDaily over 3 days, plain (file listing)"] > 0
    assert "growth of the checked cost (log-log slope)" in measures


def test_the_code_closure_benchmark_runs_in_quick_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generated tree's closure reaches every function and constant; quick mode fills in
    every row, at both sizes."""
    from benchmarks import codeclosure
    from benchmarks.common import Results

    monkeypatch.syspath_prepend(str(tmp_path))
    packages = {40: codeclosure.write_tree(str(tmp_path), 40)}
    assert codeclosure.parts_of(packages[40]) == 2 * 40 + 1  # functions, constants, the task
    first = codeclosure.first_calls(packages, repeats=1)[40]
    assert first > codeclosure.cached_calls(packages, repeats=1, calls=10)[40] > 0
    results = Results()
    codeclosure.run(results, quick=True)
    measures = {row["measure"] for row in results.rows}
    for size in (100, 200):
        assert f"first code_fingerprint, N={size}" in measures
        assert f"cached code_fingerprint, N={size}" in measures
    assert "growth of the cached call, N 100 -> 200 (log-log slope)" in measures


def test_the_fsync_benchmark_runs_small() -> None:
    """Both modes are timed per task and the cost of fsync is their difference."""
    from benchmarks import fsync
    from benchmarks.common import Results

    results = Results()
    per_task = fsync.measure(results, count=4, repeats=1)
    measures = {row["measure"]: row["value"] for row in results.rows}
    assert measures["4 tasks: cost of fsync per task"] == pytest.approx(
        per_task["fsync on"] - per_task["fsync off"]
    )
    assert fsync.file_system_of("/") != "unknown"


def test_the_records_benchmark_parses_each_shape_unrefused() -> None:
    """Every shape under a 1 MiB cap is parsed (not refused by the budget) and costs memory
    within the budget's multiple of the cap."""
    from benchmarks import records

    for make in records.SHAPES.values():
        data = make(1 << 20)
        multiple, seconds = records._parse_cost(data, 1 << 20)
        assert 1 < multiple <= records.PARSE_MEMORY_MULTIPLE
        assert seconds > 0


def test_the_startup_benchmark_runs_once() -> None:
    """Every fresh-process contender is timed, with the package import's target and the ratios."""
    from benchmarks import startup
    from benchmarks.common import Results

    results = Results()
    medians = startup.measure(results, repeats=1)
    rows = {row["measure"]: row for row in results.rows}
    assert set(medians) == {name for name, _ in startup.CONTENDERS}
    assert rows["import luigi_repro"]["target"] == "<= 0.3 s"
    assert isinstance(rows["import luigi_repro"]["ok"], bool)
    ratio = rows["import luigi_repro / python -c pass"]["value"]
    assert ratio == pytest.approx(medians["import luigi_repro"] / medians["python -c pass"])


def test_the_scaling_benchmark_runs_small(tmp_path: Path) -> None:
    """Both shapes at two tiny sizes: every row, counts and slopes included, is filled in."""
    from benchmarks import scaling
    from benchmarks.common import Results

    results = Results()
    scaling._dag_rows(results, str(tmp_path), ((2, 3), (4, 3)), repeats=1)
    scaling._chain_rows(results, str(tmp_path), (3, 6), repeats=1)
    measures = {row["measure"]: row["value"] for row in results.rows}
    assert measures["no-op rebuild, 6 tasks in 2 layers: own verdicts decided per build"] == 0
    assert measures["daily chain of 6 days, built from scratch: own verdicts decided per build"]
    assert "daily chain build growth, checked minus plain (slope)" in measures


def test_the_dataframe_memory_rows_are_measured_small() -> None:
    """Streamed and whole-table fingerprints agree; every memory and speed row is filled in."""
    from benchmarks import dataframe
    from benchmarks.common import Results

    results = Results()
    dataframe._memory(results, [1 << 20, 2 << 20], "tiny")
    measures = {row["measure"] for row in results.rows}
    assert "peak RSS growth, streamed, 2 MiB table" in measures
    assert "streamed / whole-table throughput, 1 MiB table" in measures
    assert "peak RSS growth vs table size (log-log slope)" in measures
    assert "peak RSS growth, tiny table <= 256 MiB" in measures


def test_the_build_cost_breakdown_times_each_part_and_unwraps_them(tmp_path: Path) -> None:
    """Every part of a checked build is timed (Luigi asks complete() of plain and checked tasks
    alike), and the timers are gone afterwards."""
    import luigi

    from benchmarks import buildcost
    from benchmarks.common import Results
    from luigi_repro.protocol import RunProtocol

    complete, begin = luigi.Task.complete, RunProtocol.begin
    results = Results()
    buildcost.measure(results, layers=2, width=3)
    rows = {row["measure"]: row["value"] for row in results.rows}
    plain, checked = "plain: complete(), calls per task", "checked: complete(), calls per task"
    assert rows[plain] == rows[checked]
    assert rows["checked: fsync, calls per task"] >= 2  # the output and its record
    assert rows["checked: protocol: lock, fingerprint inputs, judge, calls per task"] == 1
    assert "plain: fsync, calls per task" not in rows
    assert luigi.Task.complete is complete
    assert RunProtocol.begin is begin


@pytest.mark.slow
def test_the_everyday_commands_benchmark_runs_small() -> None:
    """Every command is timed at both sizes, as a fresh process, with its slope."""
    from benchmarks import everyday
    from benchmarks.common import Results

    results = Results()
    everyday.measure(results, sizes=(3, 6), repeats=1)
    measures = {row["measure"]: row["value"] for row in results.rows}
    for label in everyday._commands(3, has_dag=True):
        assert measures[f"{label}, 8 tasks"] > 0
        assert measures[f"{label}, 14 tasks"] > 0
        assert f"{label}, log-log slope" in measures


@pytest.mark.slow
def test_the_run_cache_benchmark_runs_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m benchmarks runcache --sizes 1 4`` restores, stores and rebuilds for real
    (each step checks it restored or ran as it should) and writes every figure to its JSON."""
    import json

    from benchmarks import runcache
    from benchmarks.__main__ import main

    monkeypatch.setitem(runcache.TASK_COUNTS, True, (4, 8))
    monkeypatch.setitem(runcache.REPEATS, True, 1)
    monkeypatch.setitem(runcache.TASK_REPEATS, True, 1)
    results = tmp_path / "runcache.json"
    assert main(["runcache", "--quick", "--sizes", "1", "4", "--json", str(results)]) == 0
    document = json.loads(results.read_text())
    assert document["machine"]["cpus"]
    rows = {row["measure"]: row for row in document["results"]}
    assert {row["benchmark"] for row in document["results"]} == {"runcache"}
    for mib in (1, 4):
        for fsync, cp in (("off", "cp"), ("on", "cp + sync FILE")):
            tag = f"{mib} MiB, fsync {fsync}"
            for measure in (
                f"restore, whole luigi process, {tag}",
                f"restore step (RunCache.restore), {tag}",
                f"rerun without cache, whole luigi process, {tag}",
                f"store step (RunCache.keep), {tag}",
            ):
                assert rows[measure]["value"] > 0, measure
            step = rows[f"restore step / {cp}, {tag}"]
            assert step["target"] == "<= 1.2"
            assert step["ok"] == (step["value"] <= 1.2)
            assert f"store cost / {cp}, {tag}" in rows
        assert f"store cost with run_cache_links / cp, {mib} MiB" in rows
    assert "restore step (RunCache.restore), 1 -> 4 MiB, log-log slope" in rows
    for count in (4, 8):
        assert (
            rows[f"{count} small tasks, records removed, cache warm (restores), per task"]["value"]
            > 0
        )
        assert f"{count} small tasks, cost of storing per task" in rows
    assert "small tasks 4 -> 8, from scratch, cache on (stores), log-log slope" in rows


def test_sizes_are_for_the_run_cache_benchmark_alone(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["fsync", "--sizes", "4"])
    assert exit_info.value.code == 2
    assert "--sizes (whole MiB, at least 1) applies to runcache alone" in capsys.readouterr().err
