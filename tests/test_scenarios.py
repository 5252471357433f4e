"""What a Luigi user lives through: edit an input, change a parameter, touch an output, rebuild."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any, List

import luigi
import pytest
from pipelines import (
    Clean,
    Merge,
    Report,
    build,
    families,
    from_scratch,
    make_raw,
    runs,
    status_of,
    write_raw,
)

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    ReasonKind,
    Status,
    TaskWithCheckingInputHash,
    judging,
)
from luigi_repro.log import LOGGER_NAME
from luigi_repro.record import parse_record
from luigi_repro.targets import bookkeeping


@pytest.fixture
def built() -> None:
    """The example pipeline, built once."""
    make_raw()
    assert build(Report())
    assert families(runs()) == ["Clean", "Clean", "Merge", "Report"]


def test_first_build_records_every_output(built: None) -> None:
    """Each output gets a parseable record naming its task, inputs and output fingerprint."""
    for path, family in [
        ("out/clean_a.txt", "Clean"),
        ("out/merged.txt", "Merge"),
        ("out/report.txt", "Report"),
    ]:
        record = parse_record(Path(path + ".repro.json").read_bytes(), path)
        assert record.task.family == family
        assert record.outputs[0].uri == os.path.abspath(path)
        assert record.outputs[0].fingerprint.startswith("xxh3_128:")
        assert record.inputs, "every task here reads something"
    merged = parse_record(Path("out/merged.txt.repro.json").read_bytes(), "merged")
    assert sorted(entry.key for entry in merged.inputs) == [("a",), ("b",)]


def test_noop_rebuild_runs_nothing(built: None) -> None:
    """Building again without changes runs no task and the top task is complete."""
    assert Report().complete()
    assert build(Report())
    assert runs() == []


def test_raw_edit_reruns_exactly_the_downstream_chain(built: None) -> None:
    """Editing raw/a.txt reruns Clean(a), Merge and Report, but not Clean(b)."""
    write_raw("a", "Hello again\n")
    assert not Report().complete()
    assert Clean("b").complete()
    assert build(Report())
    assert families(runs()) == ["Clean", "Merge", "Report"]
    assert Path("out/report.txt").read_text() == "hello again\nworld\n"
    assert build(Report())
    assert runs() == []


def test_verdict_names_the_changed_input(built: None) -> None:
    """The stale task's reason carries the input's old and new fingerprints."""
    write_raw("a", "Hello again\n")
    verdict = status_of(Clean("a"))
    assert verdict.status is Status.STALE
    (reason,) = verdict.reasons
    assert reason.kind is ReasonKind.INPUT_CHANGED
    assert reason.evidence["uri"] == os.path.abspath("raw/a.txt")
    assert reason.evidence["old"] != reason.evidence["new"]
    top = status_of(Report())
    assert [r.kind for r in top.reasons] == [ReasonKind.UPSTREAM_NOT_UP_TO_DATE]


def test_early_cutoff_skips_downstream_when_content_is_identical(built: None) -> None:
    """An upstream rerun that writes identical bytes does not rerun its downstream tasks."""
    write_raw("a", "  HELLO  \n")  # cleans to the same "hello\n"
    assert not Report().complete()
    assert build(Report())
    assert families(runs()) == ["Clean"]
    assert Report().complete()


def test_same_content_under_another_parameter_is_not_complete(built: None) -> None:
    """Report(scale=2) does not accept the record of Report(scale=1), though the file exists."""
    verdict = status_of(Report(scale=2))
    assert verdict.status is Status.STALE
    assert verdict.reasons[0].kind is ReasonKind.PARAMS_CHANGED
    assert verdict.reasons[0].evidence["params"] == {"scale": {"old": "1", "new": "2"}}
    assert build(Report(scale=2))
    assert families(runs()) == ["Report"]


def test_insignificant_parameter_change_keeps_task_complete(built: None) -> None:
    """An insignificant parameter is not part of what the record vouches for."""
    assert Report(verbose=True).complete()


@pytest.mark.parametrize("racy_window", ["0", "2"])
def test_output_edited_by_hand_with_mtime_restored_is_caught(
    built: None, racy_window: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same-size edit + restored mtime is still OUTPUT_MODIFIED (ctime or re-hash catches it)."""
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", racy_window)
    path = Path("out/merged.txt")
    before = os.stat(path)
    path.write_text(path.read_text().upper())
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    verdict = status_of(Merge())
    assert verdict.status is Status.OUTPUT_MODIFIED
    assert not Report().complete()
    assert build(Report())
    assert families(runs()) == ["Merge"]  # Report's inputs match the repaired merged.txt again
    assert path.read_text() == "hello\nworld\n"
    assert Report().complete()


def test_deleted_output_is_missing_and_rebuilt(built: None) -> None:
    """A deleted output makes its task MISSING_OUTPUT and a rebuild recreates just it."""
    Path("out/clean_b.txt").unlink()
    assert status_of(Clean("b")).status is Status.MISSING_OUTPUT
    assert build(Report())
    assert families(runs()) == ["Clean"]


def test_deleted_record_is_no_record(built: None) -> None:
    """An output without its record is NO_RECORD: nothing vouches for it."""
    Path("out/merged.txt.repro.json").unlink()
    assert status_of(Merge()).status is Status.NO_RECORD
    assert build(Report())
    assert families(runs()) == ["Merge"]


class _Boom:
    """Unpickling this would create a marker file; a record reader must never do it."""

    def __reduce__(self) -> Any:
        return (open, ("UNPICKLED", "w"))


BAD_RECORDS = {
    "empty": b"",
    "truncated": b'{"schema": 1, "task": {"family": "Merge"',
    "not-json": b"this is not json\n",
    "wrong-shape": b'{"schema": 1, "task": [], "inputs": {}, "outputs": 3, "run": null}',
    "future-schema": b'{"schema": 99, "task": {}, "inputs": [], "outputs": [], "run": {}}',
    "pickled": pickle.dumps({"payload": _Boom()}),
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_bad_record_is_not_complete_warns_once_and_is_repaired(
    built: None, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken record: complete() is False, one warning, nothing executed; a rebuild fixes it."""
    Path("out/merged.txt.repro.json").write_bytes(BAD_RECORDS[kind])
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        assert Merge().complete() is False
        assert Merge().complete() is False
        assert Report().complete() is False
    warnings = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "merged.txt.repro.json" in warnings[0].getMessage()
    assert status_of(Merge()).status is Status.BAD_RECORD
    assert not Path("UNPICKLED").exists()
    assert build(Report())
    assert families(runs()) == ["Merge"]
    assert Report().complete()


def test_complete_never_raises_on_unreadable_record(built: None) -> None:
    """A record that is a directory (unreadable as a file) gives BAD_RECORD, not an exception."""
    record = Path("out/merged.txt.repro.json")
    record.unlink()
    record.mkdir()
    assert Merge().complete() is False
    assert status_of(Merge()).status is Status.BAD_RECORD


def test_exhaustive_status_lists_every_reason(built: None) -> None:
    """verify-style checks report all reasons: output modified and input changed together."""
    write_raw("a", "Different\n")
    Path("out/clean_a.txt").write_text("tampered\n")
    verdict = status_of(Clean("a"))
    kinds = {reason.kind for reason in verdict.reasons}
    assert kinds == {ReasonKind.OUTPUT_MODIFIED, ReasonKind.INPUT_CHANGED}
    assert verdict.status is Status.OUTPUT_MODIFIED


def test_changing_hash_algorithm_keeps_pipeline_complete(
    built: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records made with xxh3 are re-checked with xxh3 after switching to sha256, not rerun."""
    monkeypatch.setenv("LUIGI_REPRO_HASH_ALGORITHM", "sha256")
    assert Report().complete()
    write_raw("a", "new\n")
    assert build(Report())
    assert families(runs()) == ["Clean", "Merge", "Report"]
    record = parse_record(Path("out/report.txt.repro.json").read_bytes(), "report")
    assert record.outputs[0].fingerprint.startswith("sha256:")
    assert Report().complete()


def _record_with_old_luigi(path: str) -> None:
    """Rewrite a record as if it had been made with another Luigi version."""
    import attrs

    from luigi_repro.record import dump_record

    record = parse_record(Path(path).read_bytes(), path)
    run = attrs.evolve(record.run, versions={**record.run.versions, "luigi": "2.0.0"})
    Path(path).write_bytes(dump_record(attrs.evolve(record, run=run)))


@pytest.mark.parametrize(
    ("policy", "complete", "reasons", "notes"),
    [
        ("rerun", False, [ReasonKind.ENV_CHANGED], []),
        ("warn", True, [], [ReasonKind.ENV_CHANGED]),
        ("ignore", True, [], []),
    ],
)
def test_environment_drift_follows_the_policy(
    built: None,
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
    complete: bool,
    reasons: Any,
    notes: Any,
) -> None:
    """A record made under another Luigi version: stale, noted or ignored per on_env_change."""
    _record_with_old_luigi("out/merged.txt.repro.json")
    monkeypatch.setenv("LUIGI_REPRO_ON_ENV_CHANGE", policy)
    assert Merge().complete() is complete
    verdict = status_of(Merge())
    assert [r.kind for r in verdict.reasons] == reasons
    assert [n.kind for n in verdict.notes] == notes
    if reasons:
        assert verdict.reasons[0].evidence["packages"]["luigi"]["old"] == "2.0.0"


def _rewrite_record(path: str, change: Any) -> None:
    import attrs

    from luigi_repro.record import dump_record

    record = parse_record(Path(path).read_bytes(), path)
    Path(path).write_bytes(dump_record(change(record, attrs)))


def test_record_with_an_unusable_hash_algorithm_is_bad_not_an_exception(built: None) -> None:
    """A fingerprint made with an algorithm this machine lacks (blake3 uninstalled): BAD_RECORD."""

    def swap(record: Any, attrs: Any) -> Any:
        output = attrs.evolve(record.outputs[0], fingerprint="blake9:" + "0" * 32)
        return attrs.evolve(record, outputs=(output,))

    _rewrite_record("out/merged.txt.repro.json", swap)
    assert Merge().complete() is False
    verdict = status_of(Merge())
    assert verdict.status is Status.BAD_RECORD
    assert "'blake9'" in verdict.reasons[0].message


def test_record_with_a_nul_byte_in_an_input_location_does_not_raise(built: None) -> None:
    """A hostile record naming a path with a NUL byte: not complete, no exception."""

    def poison(record: Any, attrs: Any) -> Any:
        entry = attrs.evolve(
            record.inputs[0], dynamic=True, task_family=None, uri="/tmp/evil\0name"
        )
        return attrs.evolve(record, inputs=(*record.inputs, entry))

    _rewrite_record("out/merged.txt.repro.json", poison)
    assert Merge().complete() is False


class Secretive(TaskWithCheckingInputHash):
    token = luigi.Parameter(visibility=luigi.parameter.ParameterVisibility.HIDDEN)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/secretive.txt")

    def run(self) -> None:
        self.output().open("w").close()


def test_hidden_parameter_values_never_reach_the_record() -> None:
    """A HIDDEN parameter is recorded as a digest: changes are seen, the value is not stored."""
    assert build(Secretive(token="s3cr3t-value"))
    text = Path("out/secretive.txt.repro.json").read_text()
    assert "s3cr3t-value" not in text
    assert Secretive(token="s3cr3t-value").complete()
    verdict = status_of(Secretive(token="another"))
    assert [r.kind for r in verdict.reasons] == [ReasonKind.PARAMS_CHANGED]


class Confidential(TaskWithCheckingInputHash):
    """Its PRIVATE parameter changes what it writes: Luigi's to_str_params() drops it."""

    salt = luigi.Parameter(visibility=luigi.parameter.ParameterVisibility.PRIVATE)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/confidential.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(str(len(self.salt)))


def test_private_parameters_are_compared_as_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """A significant PRIVATE parameter changed makes the task stale; only a digest is stored."""
    assert build(Confidential(salt="pepper-one"))
    text = Path("out/confidential.txt.repro.json").read_text()
    assert "pepper-one" not in text
    assert Confidential(salt="pepper-one").complete()
    verdict = status_of(Confidential(salt="pepper-two"))
    assert [r.kind for r in verdict.reasons] == [ReasonKind.PARAMS_CHANGED]
    assert "salt" in verdict.reasons[0].message
    assert "pepper" not in verdict.reasons[0].message


def test_secret_digests_are_keyed_when_a_signing_key_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a signing key, hidden values are HMACs: a dictionary of plain SHA-256 misses them."""
    import hashlib

    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "team-secret")
    assert build(Secretive(token="guessable"))
    record = parse_record(
        Path("out/secretive.txt.repro.json").read_bytes(), "record", b"team-secret"
    )
    stored = record.task.params["token"]
    assert isinstance(stored, str)
    assert stored.startswith("hidden:hmac-sha256:")
    assert hashlib.sha256(b"token=guessable").hexdigest() not in stored
    assert Secretive(token="guessable").complete()
    assert not Secretive(token="other").complete()


class Shout(TaskWithCheckingInputHash):
    """Upper-cases one raw file into ``out/<name>``."""

    source = luigi.Parameter()
    name = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return HashableExternalFile(self.source)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/{self.name}")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read().upper())


def test_two_spellings_through_a_symlink_are_two_files() -> None:
    """``link/../data.txt`` and ``data.txt`` are different files (link -> real/deep): editing
    one makes exactly its reader stale, even when both are judged in one check."""
    os.makedirs("real/deep")
    os.symlink("real/deep", "link")
    Path("data.txt").write_text("top\n")
    Path("real/data.txt").write_text("inside\n")
    tasks = [Shout("link/../data.txt", "via_link.txt"), Shout("data.txt", "top.txt")]
    assert build(*tasks)
    assert Path("out/via_link.txt").read_text() == "INSIDE\n"
    Path("real/data.txt").write_text("edited\n")
    for order in (tasks, tasks[::-1]):
        with judging(exhaustive=True, fresh=True) as judge:
            verdicts = {task.name: judge.status(task) for task in order}
        assert verdicts["top.txt"].ok
        assert [r.kind for r in verdicts["via_link.txt"].reasons] == [ReasonKind.INPUT_CHANGED]


class CountFiles(TaskWithCheckingInputHash):
    """Lists the files of a raw input folder."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("dataset")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/listing.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write("\n".join(sorted(os.listdir(self.input().path))))


def test_a_data_file_named_like_a_record_in_a_folder_input_is_data() -> None:
    """Editing ``a.csv.repro.json`` (a user's file, not a luigi_repro record) inside a folder
    input makes its reader stale."""
    os.makedirs("dataset")
    Path("dataset/a.csv").write_text("1\n")
    Path("dataset/a.csv.repro.json").write_text('{"reviewed": false}')
    assert build(CountFiles())
    assert CountFiles().complete()
    Path("dataset/a.csv.repro.json").write_text('{"reviewed": true}')
    verdict = status_of(CountFiles())
    assert [r.kind for r in verdict.reasons] == [ReasonKind.INPUT_CHANGED]
    assert verdict.reasons[0].evidence["changed"] == ["a.csv.repro.json"]


class TrainModel(TaskWithCheckingInputHash):
    """Writes one fixed path whatever its date: two dates share (and overwrite) one output."""

    date = luigi.DateParameter()

    def output(self) -> Any:
        return {"model": HashableLocalTarget("out/model.txt")}

    def run(self) -> None:
        with self.output()["model"].open("w") as sink:
            sink.write(str(self.date))


class Evaluate(TaskWithCheckingInputHash):
    """Writes its own score and, by mistake, the same model path as TrainModel."""

    def output(self) -> Any:
        return {
            "score": HashableLocalTarget("out/score.txt"),
            "model": HashableLocalTarget("out/model.txt"),
        }

    def run(self) -> None:
        for target in self.output().values():
            with target.open("w") as sink:
                sink.write("evaluated")


def test_two_tasks_writing_one_path_are_named() -> None:
    """When another task recorded an output's path, the reason names that task readably."""
    import datetime

    first, second = datetime.date(2024, 3, 2), datetime.date(2024, 3, 3)
    assert build(TrainModel(first))
    verdict = status_of(TrainModel(second))
    assert [r.kind for r in verdict.reasons] == [ReasonKind.PARAMS_CHANGED]
    assert "recorded by TrainModel(date=2024-03-02)" in verdict.reasons[0].message
    assert build(Evaluate())
    assert build(TrainModel(first))  # rewrites out/model.txt and its record, not score's
    verdict = status_of(Evaluate())
    assert verdict.status is Status.BAD_RECORD
    message = verdict.reasons[0].message
    assert "come from different runs" in message
    assert "model.txt recorded by TrainModel(date=2024-03-02)" in message
    assert "score.txt recorded by Evaluate()" in message


class ScenarioDay(TaskWithCheckingInputHash):
    """Writes one file (and so its record and lock) into the shared data folder."""

    n = luigi.IntParameter()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"data/day-{self.n}.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(f"day {self.n}\n")


class Aggregate(TaskWithCheckingInputHash):
    """Reads the whole data folder, where ScenarioDay tasks keep their outputs and records."""

    folder = luigi.Parameter(default="data")

    def requires(self) -> List[luigi.Task]:
        return [HashableExternalFile(self.folder), ScenarioDay(1), ScenarioDay(2)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/aggregate-{self.folder}.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(str(sorted(os.listdir(self.input()[0].path))))


def test_records_inside_a_folder_input_stay_bookkeeping_when_the_project_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ScenarioDay records in data/ describe the files beside them by name: after the project is
    moved, or when the folder is read through a symlink, they are still not data."""
    assert build(ScenarioDay(1), ScenarioDay(2))
    os.symlink("data", "data_link")
    assert build(Aggregate(), Aggregate("data_link"))
    moved = tmp_path / "moved"
    os.rename(os.getcwd(), moved)
    monkeypatch.chdir(moved)
    bookkeeping._recognitions.clear()  # as in a new process
    assert from_scratch(Aggregate())
    assert from_scratch(Aggregate("data_link"))
    assert build(ScenarioDay(1))  # nothing to do: no new record or lock appears either
    assert from_scratch(Aggregate())
