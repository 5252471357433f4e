"""A port of a public project's shape, used with a run cache as its users would: classifier
grids over feature matrices (tests/projects/riskmodels), built from batch configuration files
that the user switches between, ``luigi`` and ``luigi-repro`` in fresh processes from the
project's folder, ``LUIGI_REPRO_RUN_CACHE`` naming a cache folder shared by every checkout.

What its user expects: switching back to a configuration built before computes nothing (each
task whose outputs were overwritten is restored, the others are up to date); a teammate's
checkout with the same cache computes nothing; an edited export, or an edited helper, computes
exactly the tasks it reaches, and editing it back restores them.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from pathlib import Path
from typing import Dict, List, Set

import attrs
import pytest
from sales import run

PROJECT = Path(__file__).resolve().parent / "projects" / "riskmodels"
OUTPUTS = ("models", "data_matricies")
ROOT = ["--module", "TrainModels", "RunAllBatches"]


@attrs.frozen
class Build:
    """What one build did, task by task: from the run marker and from luigi_repro's log."""

    computed: List[str]
    restored: List[str]
    cut_off: List[str]
    seconds: float


def checkout(tmp_path: Path, name: str = "riskmodels") -> Path:
    """A fresh copy of the project, as a clone would give it."""
    target = tmp_path / name
    shutil.copytree(PROJECT, target, ignore=shutil.ignore_patterns("__pycache__", *OUTPUTS))
    return target


def build(project: Path, cache: Path, config: str = "Batch_A.cfg", workers: int = 1) -> Build:
    """``LUIGI_CONFIG_PATH=<config> luigi --module TrainModels RunAllBatches``, which must
    succeed."""
    started = time.monotonic()
    status, log = run(
        project,
        "luigi",
        *ROOT,
        "--local-scheduler",
        "--workers",
        str(workers),
        LUIGI_CONFIG_PATH=config,
        LUIGI_REPRO_RUN_CACHE=str(cache),
        LUIGI_REPRO_STAT_CACHE=str(project / "stat-cache.sqlite3"),
    )
    seconds = time.monotonic() - started
    assert status == 0, log[-3000:]
    assert "This progress looks :)" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "WARNING" not in log, log[-3000:]
    runs = project / "runs.log"
    computed = sorted(runs.read_text().splitlines()) if runs.exists() else []
    runs.unlink(missing_ok=True)
    restored = sorted(re.findall(r"luigi_repro: (\w+\(.*\)) restored from run cache", log))
    cut_off = sorted(re.findall(r"luigi_repro: (\w+\(.*\)) is already up to date", log))
    return Build(computed, restored, cut_off, seconds)


def luigi_repro(project: Path, *args: str, config: str = "Batch_A.cfg") -> tuple[int, str]:
    return run(
        project,
        "luigi_repro",
        *args,
        LUIGI_CONFIG_PATH=config,
        LUIGI_REPRO_STAT_CACHE=str(project / "stat-cache.sqlite3"),
    )


def outputs(project: Path) -> Dict[str, bytes]:
    """Every output file's bytes (records left out: they name runs), by relative path."""
    found = {}
    for folder in OUTPUTS:
        for path in sorted((project / folder).rglob("*")):
            if path.is_file() and not path.name.endswith(".repro.json"):
                found[str(path.relative_to(project))] = path.read_bytes()
    return found


FAMILIES = ("Generate_merged_models", "NewClassifier", "RunAllBatches")


def family(tasks: List[str]) -> List[str]:
    """Tasks (``NewClassifier(train_set=train1, ...)``) as their families."""
    return sorted(next(f for f in FAMILIES if task.startswith(f)) for task in tasks)


def names(task_ids: List[str]) -> Set[str]:
    return {re.sub(r"\s+", "", task_id) for task_id in task_ids}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


#: Per training set: one merge, four LR and three RF grid points; one leaderboard in all.
EVERYTHING = ["Generate_merged_models"] * 2 + ["NewClassifier"] * 14 + ["RunAllBatches"]


def test_switching_configurations_back_restores_from_the_run_cache(tmp_path: Path) -> None:
    project, cache = checkout(tmp_path), tmp_path / "run-cache"
    first = build(project, cache)
    assert family(first.computed) == EVERYTHING
    assert first.restored == []
    built_with_a = outputs(project)

    # Configuration B: another feature scaling (the matrices, at the same paths, change, so
    # every classifier computes again) and an RF grid of depths 2-4 instead of 1-3.
    second = build(project, cache, "Batch_B.cfg")
    assert family(second.computed) == EVERYTHING
    assert second.restored == []

    # Back to A: nothing computes. Every task whose output B overwrote is restored; the RF
    # grid points of depth 1, which B never wrote, are up to date once their matrices are back.
    third = build(project, cache)
    assert third.computed == []
    assert family(third.restored) == [
        "Generate_merged_models",
        "Generate_merged_models",
        *["NewClassifier"] * 12,
        "RunAllBatches",
    ]
    assert all('"max_depth":1' not in task for task in names(third.restored))
    assert family(third.cut_off) == ["NewClassifier", "NewClassifier"]
    assert all('"max_depth":1' in task for task in names(third.cut_off))
    assert {k: v for k, v in outputs(project).items() if "max_depth-4" not in k} == built_with_a

    status, log = luigi_repro(project, "verify", *ROOT)
    assert status == 0, log
    status, log = luigi_repro(project, "show", "models/logs.parquet")
    assert status == 0, log
    assert "restored from run cache" in log, log
    status, log = luigi_repro(project, "show", "data_matricies/train1/Xy_both.parquet")
    assert "restored from run cache" in log, log

    # The run marker agrees with the records: a build of A again computes nothing at all.
    assert build(project, cache).computed == []


def test_a_teammate_with_the_same_cache_computes_nothing(tmp_path: Path) -> None:
    mine, cache = checkout(tmp_path, "mine"), tmp_path / "run-cache"
    assert family(build(mine, cache).computed) == EVERYTHING

    # A second checkout elsewhere: the first one copied, its outputs and caches removed.
    theirs = tmp_path / "elsewhere" / "theirs"
    shutil.copytree(mine, theirs)
    for name in (*OUTPUTS, "stat-cache.sqlite3"):
        target = theirs / name
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    teammate = build(theirs, cache)
    assert teammate.computed == []
    assert family(teammate.restored) == EVERYTHING
    assert outputs(theirs) == outputs(mine)
    assert luigi_repro(theirs, "verify", *ROOT)[0] == 0

    # Two workers on a fresh output folder, the cache warm: everything restored, no failure.
    fresh = checkout(tmp_path, "fresh")
    parallel = build(fresh, cache, workers=2)
    assert parallel.computed == []
    assert family(parallel.restored) == EVERYTHING
    assert outputs(fresh) == outputs(mine)
    assert luigi_repro(fresh, "verify", *ROOT)[0] == 0


@pytest.mark.slow
def test_edits_compute_what_they_reach_and_reverting_them_restores(tmp_path: Path) -> None:
    project, cache = checkout(tmp_path), tmp_path / "run-cache"
    build(project, cache)
    built = outputs(project)

    # One raw export of train2 corrected: its merge, its classifiers (they read its matrices)
    # and the leaderboard compute; nothing of train1 does.
    topics = project / "raw_data" / "train2-topics.tsv"
    original = topics.read_text()
    edit(topics, "0.19", "0.29")
    edited = build(project, cache)
    assert family(edited.computed) == [
        "Generate_merged_models",
        *["NewClassifier"] * 7,
        "RunAllBatches",
    ]
    assert all("train_set=train2" in task for task in edited.computed[:-1])
    assert edited.restored == []

    # Corrected back: exactly those tasks are restored.
    topics.write_text(original)
    reverted = build(project, cache)
    assert reverted.computed == []
    assert family(reverted.restored) == family(edited.computed)
    assert outputs(project) == built

    # A helper of the classifier's report rewritten, same results: every classifier computes
    # (new code fingerprint), the merges stay up to date, the leaderboard is cut off early.
    plots = project / "ml" / "plots.py"
    before = plots.read_text()
    edit(
        plots,
        "    rates = [float(y[deciles == d].mean()) if (deciles == d).any() else 0.0 "
        "for d in range(10)]\n",
        "    rates = []\n"
        "    for d in range(10):\n"
        "        rates.append(float(y[deciles == d].mean()) if (deciles == d).any() else 0.0)\n",
    )
    helper = build(project, cache)
    assert family(helper.computed) == ["NewClassifier"] * 14
    assert helper.restored == []
    assert family(helper.cut_off) == ["RunAllBatches"]
    assert outputs(project) == built

    # And back: the classifiers' code is the one the cache knows again.
    plots.write_text(before)
    back = build(project, cache)
    assert back.computed == []
    assert family(back.restored) == ["NewClassifier"] * 14
    assert luigi_repro(project, "verify", *ROOT)[0] == 0


def _scaled(project: Path, variants: int) -> str:
    """A configuration with ``variants`` LR grid points on one training set."""
    spaces = {
        "C": {"param_type": "logspace", "min_val": -3, "max_val": 2, "steps": variants},
        "max_iter": {"param_type": "defined_list", "vals": [60]},
    }
    batch = {"model_type": "LR", "data_set": "both", "parameter_spaces": spaces}
    (project / f"Batch_{variants}.cfg").write_text(
        "[Generate_merged_models]\nscaling = standard\n\n[RunAllBatches]\n"
        f'train_sets = ["train1"]\nbatch_list = {json.dumps([batch])}\n'
    )
    return f"Batch_{variants}.cfg"


@pytest.mark.slow
def test_cold_and_warm_builds_at_two_sizes(tmp_path: Path) -> None:
    """Cold cache (everything computed and kept) against warm cache (everything restored, on a
    fresh output folder), at 30 and 120 grid points; the figures go to the notes."""
    timings = {}
    for variants in (30, 120):
        cache = tmp_path / f"cache-{variants}"
        cold_project = checkout(tmp_path, f"cold-{variants}")
        cold = build(cold_project, cache, _scaled(cold_project, variants))
        assert len(cold.computed) == variants + 2
        warm_project = checkout(tmp_path, f"warm-{variants}")
        warm = build(warm_project, cache, _scaled(warm_project, variants))
        assert (warm.computed, len(warm.restored)) == ([], variants + 2)
        assert outputs(warm_project) == outputs(cold_project)
        timings[variants] = (cold.seconds, warm.seconds)
    slopes = [math.log(timings[120][i] / timings[30][i]) / math.log(4) for i in (0, 1)]
    print(f"\nrun cache: {timings} slopes cold/warm {slopes[0]:.2f}/{slopes[1]:.2f}")
    assert timings[120][1] < timings[120][0] * 1.5  # restoring is never much slower
