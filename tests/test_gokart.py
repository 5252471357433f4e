"""gokart tasks under luigi_repro: ``class T(CheckingInputHashMixin, gokart.TaskOnKart)``.

The pipeline is :mod:`kartpipeline`; what ran is read from ``runs.log``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import luigi
import pytest
from luigi.task_register import Register

pytest.importorskip("gokart")

import gokart
import kartpipeline
from kartpipeline import K12Format, K12Join, K12Large, K12Load, K12Model, K12Select, K12Total
from pipelines import families, log_run, runs

from luigi_repro import CheckingInputHashMixin

RAW = "a,b\n1,10\n2,20\n3,30\n"


@pytest.fixture(autouse=True)
def _names_looked_up_unambiguously(monkeypatch: pytest.MonkeyPatch) -> None:
    """gokart's ``dump()`` looks up every registered task name (to find its pandas type
    checks), and Luigi refuses the lookup of a name two classes share; the suite's process
    holds classes that test modules made at run time under the same names. A gokart project
    with two task classes of one name fails the same way, with or without luigi_repro: here
    gokart is shown only the names that are not ambiguous."""
    import gokart.pandas_type_config as pandas_type_config
    from luigi.task_register import Register

    class Unambiguous:
        get_task_cls = staticmethod(Register.get_task_cls)

        @staticmethod
        def task_names() -> List[str]:
            registered = Register._get_reg()  # type: ignore[no-untyped-call]
            return sorted(n for n, c in registered.items() if c is not Register.AMBIGUOUS_CLASS)

    monkeypatch.setattr(pandas_type_config, "Register", Unambiguous)


@pytest.fixture
def raw() -> Path:
    path = Path("raw.csv").resolve()
    path.write_text(RAW)
    return path


def build(*tasks: luigi.Task, workers: int = 1) -> None:
    assert luigi.build(list(tasks), local_scheduler=True, workers=workers, log_level="WARNING")


def verify(*args: str) -> Dict[str, Any]:
    """``luigi-repro verify --format json`` through the console script; exit code checked."""
    command = ["luigi-repro", "verify", "--format", "json", "--module", "kartpipeline", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode in (0, 1), result.stderr
    document: Dict[str, Any] = json.loads(result.stdout)
    document["exit"] = result.returncode
    return document


def stale_families(document: Dict[str, Any]) -> List[str]:
    """Families of the stale tasks (gokart labels a task ``Family[unique id](params)``)."""
    stale = [t["label"] for t in document["tasks"] if t["status"] == "STALE"]
    return sorted(re.split(r"[\[(]", label)[0] for label in stale)


def records(root: str = "resources") -> List[str]:
    return sorted(p.name for p in Path(root).rglob("*.repro.json"))


def test_pipeline_builds_reruns_exactly_and_cuts_off(raw: Path) -> None:
    """Edit the raw CSV: the right tasks rerun; equal bytes from dump() stop the rerun."""
    total = K12Total(source=str(raw))
    build(total)
    assert families(runs()) == ["K12Load", "K12Select", "K12Total"]
    names = records()
    assert len(names) == 3
    # gokart's parameter-hashed paths, each with its record beside it.
    assert any(re.fullmatch(r"K12Load_[0-9a-f]{32}\.pkl\.repro\.json", n) for n in names)
    assert any(re.fullmatch(r"select_[0-9a-f]{32}\.csv\.repro\.json", n) for n in names)
    assert verify("K12Total", "--source", str(raw))["exit"] == 0

    build(total)
    assert runs() == []

    raw.write_text(RAW.replace("20", "99"))  # column b only: the selection is the same
    assert total.complete() is False
    document = verify("K12Total", "--source", str(raw))
    assert document["exit"] == 1
    assert stale_families(document) == ["K12Load", "K12Select", "K12Total"]
    build(K12Total(source=str(raw)))
    assert families(runs()) == ["K12Load", "K12Select"]  # early cutoff: K12Total kept

    raw.write_text(RAW.replace("3,", "7,"))  # column a: everything downstream
    build(K12Total(source=str(raw)))
    assert families(runs()) == ["K12Load", "K12Select", "K12Total"]
    assert verify("K12Total", "--source", str(raw))["exit"] == 0
    total_again = K12Total(source=str(raw))
    assert int(total_again.output().load()["total"][0]) == 1 + 2 + 7


def test_two_workers(raw: Path) -> None:
    """``--workers 2`` (forked worker processes) builds and rebuilds the same way."""
    build(K12Total(source=str(raw)), K12Model(source=str(raw)), workers=2)
    assert families(runs()) == ["K12Load", "K12Model", "K12Select", "K12Total"]
    raw.write_text(RAW.replace("1,", "5,"))
    build(K12Total(source=str(raw)), K12Model(source=str(raw)), workers=2)
    assert families(runs()) == ["K12Load", "K12Model", "K12Select", "K12Total"]
    build(K12Total(source=str(raw)), K12Model(source=str(raw)), workers=2)
    assert runs() == []


def test_luigi_command_line(raw: Path) -> None:
    """``luigi --module kartpipeline K12Total --workers 2``, then verify, in fresh processes."""
    command = ["luigi", "--module", "kartpipeline", "K12Total", "--source", str(raw)]
    command += ["--local-scheduler", "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert families(runs()) == ["K12Load", "K12Select", "K12Total"]
    assert verify("K12Total", "--source", str(raw))["exit"] == 0


def test_self_load_and_dump_are_gokarts(raw: Path) -> None:
    """dump() and load() are unchanged: the files are gokart's, readable by plain gokart."""
    build(K12Select(source=str(raw)))
    select = K12Select(source=str(raw))
    assert list(select.output().load()["a"]) == [1, 2, 3]
    path = Path(select.output().path())
    assert path.read_text().splitlines()[0] == "a"  # gokart's CSV, index not written
    assert Path(str(path) + ".repro.json").exists()


@pytest.mark.parametrize(
    "extension",
    ["pkl", "txt", "ini", "csv", "tsv", "gz", "json", "npz", "parquet", "feather", "png"],
)
def test_every_gokart_format_is_fingerprinted(extension: str) -> None:
    """Each file format gokart writes carries a record; editing the file makes it stale."""
    task = K12Format(extension=extension)
    build(task)
    assert families(runs()) == ["K12Format"]
    path = Path(task.output().path())
    record = json.loads(Path(str(path) + ".repro.json").read_text())
    assert record["outputs"][0]["uri"] == str(path.resolve())
    assert K12Format(extension=extension).complete() is True
    with path.open("ab") as stream:
        stream.write(b"\0")
    assert K12Format(extension=extension).complete() is False
    build(K12Format(extension=extension))
    assert families(runs()) == ["K12Format"]
    assert K12Format(extension=extension).complete() is True


def test_model_and_large_dataframe_archives(raw: Path, caplog: pytest.LogCaptureFixture) -> None:
    """make_model_target / make_large_data_frame_target: the zip archive is fingerprinted, and
    the files gokart stages in its temporary folder are not taken for undeclared reads."""
    build(K12Model(source=str(raw)), K12Large(source=str(raw)))
    assert "does not declare" not in caplog.text
    assert families(runs()) == ["K12Large", "K12Load", "K12Model"]
    model = K12Model(source=str(raw))
    assert model.output().load() == {"mean_a": 2.0}
    assert len(K12Large(source=str(raw)).output().load()) == 3
    assert Path(model.output().path() + ".repro.json").exists()
    raw.write_text(RAW.replace("1,", "4,"))
    build(K12Model(source=str(raw)), K12Large(source=str(raw)))
    assert families(runs()) == ["K12Large", "K12Load", "K12Model"]
    assert K12Model(source=str(raw)).output().load() == {"mean_a": 3.0}


def test_rerun_forces_one_run_and_rewrites_the_record(raw: Path) -> None:
    """gokart's rerun=True runs the task (no early cutoff), rewrites its record, keeps
    upstream as it is, and leaves the task up to date."""
    build(K12Total(source=str(raw)))
    runs()
    record = Path(K12Total(source=str(raw)).output().path() + ".repro.json")
    before = json.loads(record.read_text())
    build(K12Total(source=str(raw), rerun=True))
    assert families(runs()) == ["K12Total"]
    after = json.loads(record.read_text())
    assert after["run"] != before["run"]
    assert after["outputs"][0]["fingerprint"] == before["outputs"][0]["fingerprint"]
    assert verify("K12Total", "--source", str(raw))["exit"] == 0
    build(K12Total(source=str(raw)))
    assert runs() == []


class FK12Doubled(CheckingInputHashMixin, gokart.TaskOnKart):
    """Downstream of a ``rerun=True`` task: Luigi checks that dependency again at run time."""

    source = luigi.Parameter()

    def requires(self) -> Any:
        return K12Select(source=self.source, rerun=True)

    def output(self) -> Any:
        return self.make_target("fk12/doubled.pkl")

    def run(self) -> None:
        log_run(self)
        self.dump(self.load() * 2)


def new_instances() -> None:
    """What a new build process starts with: no task instances, so new ``rerun`` requests."""
    Register.clear_instance_cache()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("workers", [1, 2])
def test_rerun_runs_once_per_build_and_then_counts_as_done(raw: Path, workers: int) -> None:
    """rerun=True forces exactly one run per build, with one worker or several (the run then
    happens in a forked child): the task downstream, checking its dependency at run time, sees
    it complete once it ran, and the next build reruns it once again. As in gokart, a task
    instance answers its request once, and Luigi reaches a task only when the tasks that
    need it are not complete."""
    select = Path(K12Select(source=str(raw)).output().path() + ".repro.json")
    doubled = Path(FK12Doubled(source=str(raw)).output().path() + ".repro.json")
    new_instances()
    build(FK12Doubled(source=str(raw)), workers=workers)
    assert families(runs()) == ["FK12Doubled", "K12Load", "K12Select"]
    assert K12Select(source=str(raw), rerun=True).complete() is True
    assert FK12Doubled(source=str(raw)).output().load()["a"].tolist() == [2, 4, 6]
    first = json.loads(select.read_text())["run"]

    doubled.unlink()  # the downstream task must run again, after the rerun
    new_instances()
    build(FK12Doubled(source=str(raw)), workers=workers)
    assert families(runs()) == ["FK12Doubled", "K12Select"]
    second = json.loads(select.read_text())["run"]
    assert second != first
    build(K12Select(source=str(raw), rerun=True), workers=workers)  # same instance: answered
    assert runs() == []

    new_instances()
    build(K12Select(source=str(raw), rerun=True), FK12Doubled(source=str(raw)), workers=workers)
    assert families(runs()) == ["K12Select"]  # the same bytes again: nothing below reruns
    assert json.loads(select.read_text())["run"] != second
    assert FK12Doubled(source=str(raw)).complete() is True
    assert verify("K12Select", "--source", str(raw))["exit"] == 0


def test_gokart_time_checks_do_not_overrule_the_records(raw: Path) -> None:
    """strict_check / modification_time_check are gokart's weaker checks: an edit that keeps
    the old modification time is still seen."""
    build(K12Load(source=str(raw)))
    runs()
    stat = raw.stat()
    raw.write_text(RAW.replace("2,", "8,"))
    os.utime(raw, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    task = K12Load(source=str(raw), strict_check=True, modification_time_check=True)
    assert task.complete() is False
    build(task)
    assert families(runs()) == ["K12Load"]
    assert K12Load(source=str(raw), modification_time_check=True).complete() is True


def test_s3_workspace(raw: Path, s3_bucket: str) -> None:
    """workspace_directory on S3: gokart writes with its own client, records sit beside."""
    import boto3

    workspace = f"s3://{s3_bucket}/kart/"
    total = K12Total(source=str(raw), workspace_directory=workspace)
    build(total)
    assert families(runs()) == ["K12Load", "K12Select", "K12Total"]
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    outputs = [k for k in keys if not k.startswith("kart/log/") and not k.endswith(".json")]
    assert len(outputs) == 3
    assert sorted(k for k in keys if k.endswith(".repro.json")) == sorted(
        k + ".repro.json" for k in outputs
    )
    build(K12Total(source=str(raw), workspace_directory=workspace))
    assert runs() == []
    raw.write_text(RAW.replace("20", "21"))
    build(K12Total(source=str(raw), workspace_directory=workspace))
    assert families(runs()) == ["K12Load", "K12Select"]
    raw.write_text(RAW.replace("3,", "9,"))
    build(K12Total(source=str(raw), workspace_directory=workspace))
    assert families(runs()) == ["K12Load", "K12Select", "K12Total"]
    model = K12Model(source=str(raw), workspace_directory=workspace)  # a zip via S3ZipClient
    build(model)
    assert families(runs()) == ["K12Model"]
    assert model.output().path() + ".repro.json" in [
        f"s3://{s3_bucket}/{o['Key']}"
        for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]
    ]
    assert K12Model(source=str(raw), workspace_directory=workspace).complete() is True


@pytest.mark.parametrize("lock_run", [False, True], ids=["dump-lock", "run-lock"])
def test_gokart_redis_locks_with_luigi_repro_redis_locks(
    raw: Path, redis_url: str, redis_server: Any, monkeypatch: pytest.MonkeyPatch, lock_run: bool
) -> None:
    """gokart's redis locks and luigi_repro's run lock together: no deadlock, and a rerun
    replaces its output (gokart's dump lock would skip writing over an existing file)."""
    monkeypatch.setenv("LUIGI_REPRO_LOCK", redis_url)
    host, port = redis_url.split("//")[1].split("/")[0].rsplit(":", 1)

    def pipeline() -> List[luigi.Task]:
        options = {"redis_host": host, "redis_port": int(port), "should_lock_run": lock_run}
        return [K12Total(source=str(raw), **options), K12Model(source=str(raw), **options)]

    build(*pipeline(), workers=2)
    assert families(runs()) == ["K12Load", "K12Model", "K12Select", "K12Total"]
    raw.write_text(RAW.replace("3,", "6,"))
    build(*pipeline(), workers=2)
    assert families(runs()) == ["K12Load", "K12Model", "K12Select", "K12Total"]
    assert int(pipeline()[0].output().load()["total"][0]) == 1 + 2 + 6
    assert verify("K12Total", "--source", str(raw))["exit"] == 0


def test_task_instance_parameters(raw: Path) -> None:
    """Upstream tasks given as gokart TaskInstanceParameters are inputs like requires()."""

    def join() -> luigi.Task:
        return K12Join(left=K12Load(source=str(raw)), right=K12Select(source=str(raw)))

    build(join())
    assert families(runs()) == ["K12Join", "K12Load", "K12Select"]
    assert join().output().load() == 6
    raw.write_text(RAW.replace("30", "31"))
    assert join().complete() is False
    build(join())
    assert families(runs()) == ["K12Join", "K12Load", "K12Select"]
    assert join().complete() is True


def test_mixin_after_task_on_kart_is_refused() -> None:
    """gokart's complete() would hide the check: the class statement itself fails, saying so."""
    import gokart

    from luigi_repro import CheckingInputHashMixin

    with pytest.raises(TypeError, match="put CheckingInputHashMixin before TaskOnKart"):

        class K12WrongOrder(gokart.TaskOnKart, CheckingInputHashMixin):  # type: ignore[misc]
            pass


def test_pipeline_module_is_importable_by_name() -> None:
    """The console script imports the same module the tests use (no stale copy)."""
    assert Path(kartpipeline.__file__).parent == Path(__file__).parent
    assert sys.modules["kartpipeline"] is kartpipeline
