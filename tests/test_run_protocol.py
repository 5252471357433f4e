"""The run protocol around run(): locks, early cutoff, failures, dynamic dependencies, shapes."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import attrs
import luigi
import portalocker
import pytest
from pipelines import (
    Clean,
    build,
    edit_record_inputs,
    failure_of,
    families,
    log_run,
    make_raw,
    runs,
    status_of,
    write_raw,
)

from luigi_repro import (
    CheckingInputHashMixin,
    HashableExternalFile,
    HashableLocalTarget,
    InputChangedDuringRun,
    LockTimeout,
    OutputNotWritten,
    ParameterError,
    ReasonKind,
    RunProtocolError,
    Status,
    TaskWithCheckingInputHash,
    UnsupportedTarget,
)
from luigi_repro.locking import lock_file_for
from luigi_repro.log import LOGGER_NAME
from luigi_repro.record import parse_record
from luigi_repro.report import verify


class Tamper(TaskWithCheckingInputHash):
    """Reads its input, then (like a concurrent writer) modifies it before finishing."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/tamper.txt")

    def run(self) -> None:
        log_run(self)
        text = self.input().open("r").read()
        with self.output().open("w") as sink:
            sink.write(text)
        with open("raw/a.txt", "a") as source:
            source.write("sneaky edit\n")


def test_input_modified_during_run_fails_naming_it() -> None:
    """The run fails with InputChangedDuringRun naming the input, and no record is written."""
    make_raw()
    error = failure_of(Tamper())
    assert isinstance(error, InputChangedDuringRun)
    assert error.input_uri == os.path.abspath("raw/a.txt")
    assert "raw/a.txt" in str(error)
    assert Path("out/tamper.txt").exists()
    assert not Path("out/tamper.txt.repro.json").exists()
    assert not Tamper().complete()
    assert build(Tamper()) is False


class Forgetful(TaskWithCheckingInputHash):
    """Returns from run() without writing its output."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/forgotten.txt")

    def run(self) -> None:
        log_run(self)


class AfterForgetful(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return Forgetful()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/after.txt")

    def run(self) -> None:
        log_run(self)
        self.output().open("w").close()


def test_output_not_written_fails_the_task_not_its_downstream() -> None:
    """Luigi would mark such a task done; the protocol fails it with a clear error instead."""
    error = failure_of(Forgetful())
    assert isinstance(error, OutputNotWritten)
    assert "out/forgotten.txt" in str(error)
    assert build(AfterForgetful()) is False
    assert families(runs()) == ["Forgetful", "Forgetful"]


class Flaky(TaskWithCheckingInputHash):
    """Writes through temporary_path(), then fails when raw/b.txt says so."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/b.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/flaky.txt")

    def run(self) -> None:
        log_run(self)
        text = self.input().open("r").read()
        with self.output().temporary_path() as tmp:
            Path(tmp).write_text(text)
            if "fail" in text:
                raise RuntimeError("refusing to finish")


def test_failed_run_leaves_previous_output_without_record() -> None:
    """A failing rerun keeps the old output but removes the record that vouched for it."""
    write_raw("b", "first\n")
    assert build(Flaky())
    assert Flaky().complete()
    write_raw("b", "fail now\n")
    assert build(Flaky()) is False
    assert Path("out/flaky.txt").read_text() == "first\n"
    assert not Path("out/flaky.txt.repro.json").exists()
    assert status_of(Flaky()).status is Status.NO_RECORD
    assert sorted(os.listdir("out")) == [".flaky.txt.repro.lock", "flaky.txt"]
    write_raw("b", "second\n")
    assert build(Flaky())
    assert Path("out/flaky.txt").read_text() == "second\n"
    assert Flaky().complete()


def test_rerun_replaces_output_written_with_temporary_path() -> None:
    """temporary_path() may replace an existing output, unlike Luigi's own."""
    write_raw("b", "one\n")
    assert build(Flaky())
    write_raw("b", "two\n")
    assert build(Flaky())
    assert Path("out/flaky.txt").read_text() == "two\n"


def test_early_cutoff_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A run() skipped by early cutoff says so in the log."""
    make_raw()
    assert build(Clean("a"))
    runs()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        Clean("a").run()
    assert runs() == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("Clean(name=a) is already up to date" in m and "early cutoff" in m for m in messages)


def test_a_run_says_why_with_the_reasons_verify_gives(caplog: pytest.LogCaptureFixture) -> None:
    """Before a checked task runs, one INFO line names it readably and gives every reason."""
    make_raw()
    assert build(Clean("a"))
    runs()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        assert build(Clean("a"))  # up to date: nothing runs, nothing is said about running
    assert not [r for r in caplog.records if " runs: " in r.getMessage()]
    write_raw("a", "Changed\n")
    said = [
        f"{reason.kind.value} {reason.message}"
        for node in verify(Clean("a")).tasks.values()
        for reason in node.reasons
    ]
    assert said
    assert said[0].startswith("INPUT_CHANGED input ")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        assert build(Clean("a"))
    lines = [r.getMessage() for r in caplog.records if " runs: " in r.getMessage()]
    assert lines == ["luigi_repro: Clean(name=a) runs: " + "; ".join(said)]
    assert "raw/a.txt" in lines[0]
    assert " -> " in lines[0]


def test_lock_timeout_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """While another holder has the run lock, the task fails with LockTimeout after the timeout."""
    make_raw()
    monkeypatch.setenv("LUIGI_REPRO_LOCK_TIMEOUT", "0.3")
    Path("out").mkdir()
    with portalocker.Lock(lock_file_for("out/clean_a.txt"), timeout=1):
        error_box: List[BaseException] = []
        worker = threading.Thread(target=lambda: error_box.append(failure_of(Clean("a"))))
        worker.start()
        worker.join(10)
    (error,) = error_box
    assert isinstance(error, LockTimeout)
    assert isinstance(error, TimeoutError)
    assert "clean_a.txt" in str(error)
    assert runs() == []


class Fan(TaskWithCheckingInputHash):
    """Requires a nested structure and writes several outputs (a dict holding a list)."""

    def requires(self) -> Dict[str, Any]:
        return {"first": Clean("a"), "rest": [Clean("b"), (HashableExternalFile("raw/c.txt"),)]}

    def output(self) -> Dict[str, Any]:
        return {
            "joined": HashableLocalTarget("out/fan/joined.txt"),
            "parts": [HashableLocalTarget("out/fan/p0.txt"), HashableLocalTarget("out/fan/p1.txt")],
        }

    def run(self) -> None:
        log_run(self)
        inputs = self.input()
        texts = [
            inputs["first"].open().read(),
            inputs["rest"][0].open().read(),
            inputs["rest"][1][0].open().read(),
        ]
        outputs = self.output()
        for index, target in enumerate(outputs["parts"]):
            with target.open("w") as sink:
                sink.write(texts[index])
        with outputs["joined"].open("w") as sink:
            sink.write("".join(texts))


def test_nested_requires_and_outputs_are_recorded_by_key() -> None:
    """Every input and output keeps its place in the nested structures; all records agree but
    for the output each sits beside."""
    make_raw()
    write_raw("c", "third\n")
    assert build(Fan())
    records = [
        parse_record(Path(p + ".repro.json").read_bytes(), p)
        for p in ("out/fan/joined.txt", "out/fan/p0.txt", "out/fan/p1.txt")
    ]
    assert [record.beside for record in records] == [("joined",), ("parts", 0), ("parts", 1)]
    shared = [attrs.evolve(record, beside=None) for record in records]
    assert shared[0] == shared[1] == shared[2]
    keys = sorted((e.key, e.output_key) for e in records[0].inputs)
    assert keys == [(("first",), ()), (("rest", 0), ()), (("rest", 1, 0), ())]
    assert sorted(e.key for e in records[0].outputs) == [("joined",), ("parts", 0), ("parts", 1)]
    write_raw("c", "changed third\n")
    verdict = status_of(Fan())
    assert [r.kind for r in verdict.reasons] == [ReasonKind.INPUT_CHANGED]
    assert verdict.reasons[0].evidence["input"] == "requires()['rest'][1][0]"
    runs()
    assert build(Fan())
    assert families(runs()) == ["Fan"]


def test_one_output_without_record_makes_the_task_incomplete() -> None:
    """If one of several outputs lost its record (a crash while recording), the task reruns."""
    make_raw()
    write_raw("c", "third\n")
    assert build(Fan())
    Path("out/fan/p1.txt.repro.json").unlink()
    assert status_of(Fan()).status is Status.NO_RECORD


def test_records_from_different_runs_are_bad() -> None:
    """Outputs whose records come from two different runs cannot vouch for one result."""
    make_raw()
    write_raw("c", "third\n")
    assert build(Fan())
    old = Path("out/fan/p0.txt.repro.json").read_bytes()
    write_raw("c", "changed\n")
    assert build(Fan())
    Path("out/fan/p0.txt.repro.json").write_bytes(old)
    verdict = status_of(Fan())
    assert verdict.status is Status.BAD_RECORD
    assert any("different runs" in r.message for r in verdict.reasons)


class Dynamic(TaskWithCheckingInputHash):
    """Decides in run() which tasks it needs (dynamic dependencies)."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/dynamic.txt")

    def run(self) -> Iterator[Any]:
        log_run(self)
        names = Path("raw/names.txt").read_text().split()
        cleaned = yield [Clean(name) for name in names]
        with self.output().open("w") as sink:
            for target in cleaned:
                sink.write(target.open().read())


def test_dynamic_dependencies_are_recorded_and_checked() -> None:
    """Inputs yielded by run() are recorded; editing one makes the task stale."""
    make_raw()
    Path("raw/names.txt").write_text("a b")
    assert build(Dynamic())
    record = parse_record(Path("out/dynamic.txt.repro.json").read_bytes(), "dynamic")
    dynamic = [e for e in record.inputs if e.dynamic]
    assert [(e.key, e.task_family) for e in dynamic] == [((0, 0), "Clean"), ((0, 1), "Clean")]
    assert Path("out/dynamic.txt").read_text() == "hello\nworld\n"
    runs()
    assert Dynamic().complete()
    assert build(Dynamic())
    assert runs() == []
    write_raw("b", "Planet\n")
    verdict = status_of(Dynamic())
    assert [r.kind for r in verdict.reasons] == [ReasonKind.UPSTREAM_NOT_UP_TO_DATE]
    assert build(Dynamic())
    assert families(runs()) == ["Clean", "Dynamic", "Dynamic"]
    assert Path("out/dynamic.txt").read_text() == "hello\nplanet\n"


def test_a_dynamic_dependency_that_no_longer_rebuilds_is_not_up_to_date() -> None:
    """A recorded dynamic dependency whose task cannot be rebuilt the same (its parameters
    changed: another task id) makes the task DYNAMIC_DEPENDENCY_UNRESOLVED, not up to date."""
    import attrs

    make_raw()
    Path("raw/names.txt").write_text("a")
    assert build(Dynamic())
    edit_record_inputs(
        "out/dynamic.txt",
        lambda e: attrs.evolve(e, task_id="Clean_b_0000000000") if e.dynamic else e,
    )
    verdict = status_of(Dynamic())
    assert [r.kind for r in verdict.reasons] == [ReasonKind.DYNAMIC_DEPENDENCY_UNRESOLVED]
    assert "Clean(name=a)" in verdict.reasons[0].message
    assert not Dynamic().complete()
    runs()
    assert build(Dynamic())
    assert families(runs()) == ["Dynamic"]
    assert Dynamic().complete()


def test_dynamic_input_edited_directly_is_an_input_change() -> None:
    """An edited output of a dynamic dependency is seen in the dependent's own record."""
    make_raw()
    Path("raw/names.txt").write_text("a")
    assert build(Dynamic())
    Path("out/clean_a.txt").write_text("forged\n")
    verdict = status_of(Dynamic())
    kinds = {r.kind for r in verdict.reasons}
    assert ReasonKind.INPUT_CHANGED in kinds
    assert ReasonKind.UPSTREAM_NOT_UP_TO_DATE in kinds


class Base(luigi.Task):
    """A user's own Luigi base class with a helper."""

    def header(self) -> str:
        return "# made by Base\n"


class Mixed(CheckingInputHashMixin, Base):
    """The mixin form on top of another Luigi task class."""

    def requires(self) -> luigi.Task:
        return Clean("a")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/mixed.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(self.header() + self.input().open().read())


def test_mixin_form_works_on_other_luigi_bases() -> None:
    """CheckingInputHashMixin first in the bases gives the full behaviour."""
    make_raw()
    assert build(Mixed())
    runs()
    assert Mixed().complete()
    write_raw("a", "other\n")
    assert not Mixed().complete()


def test_mixin_after_a_base_with_complete_is_refused() -> None:
    """Putting the mixin after a class that defines complete() would hide the check: TypeError."""

    class Existing(luigi.Task):
        def complete(self) -> bool:
            return True

    with pytest.raises(TypeError, match="put CheckingInputHashMixin before Existing"):

        class Wrong(Existing, CheckingInputHashMixin):  # type: ignore[misc]
            pass


class Child(Clean):
    """Extends a checked task and calls super().run()."""

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/child_{self.name}.txt")

    def run(self) -> None:
        super().run()


def test_super_run_does_not_nest_the_protocol() -> None:
    """A subclass calling super().run() runs the protocol once and records once."""
    make_raw()
    assert build(Child("a"))
    assert families(runs()) == ["Child"]
    assert Child("a").complete()


class Listy(TaskWithCheckingInputHash):
    items = luigi.ListParameter()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/listy.txt")


def test_set_parameter_is_refused_with_a_clear_error() -> None:
    """A set has no stable order across processes, so it is refused at instantiation."""
    with pytest.raises(ParameterError, match="'items' of Listy was given a set"):
        Listy(items={"b", "a"})
    assert Listy(items=["a", "b"]).items == ("a", "b")


class Opaque(luigi.Target):
    """A target that luigi_repro cannot fingerprint."""

    def exists(self) -> bool:
        return True


class WritesOpaque(TaskWithCheckingInputHash):
    def output(self) -> Opaque:
        return Opaque()

    def run(self) -> None:
        log_run(self)


def test_output_that_cannot_carry_a_record_fails_clearly() -> None:
    """An output of an unknown kind is not complete and its run fails with UnsupportedTarget."""
    assert WritesOpaque().complete() is False
    error = failure_of(WritesOpaque())
    assert isinstance(error, UnsupportedTarget)
    assert "Opaque" in str(error)


def test_forked_workers_build_and_record() -> None:
    """With --workers 2 each task runs in a forked child; records are still written and valid."""
    make_raw()
    from pipelines import Report

    assert build(Report(), workers=2)
    assert families(runs()) == ["Clean", "Clean", "Merge", "Report"]
    assert Report().complete()
    write_raw("b", "again\n")
    assert build(Report(), workers=2)
    assert families(runs()) == ["Clean", "Merge", "Report"]


class Pieces(TaskWithCheckingInputHash):
    """requires() written as a generator, a common Luigi idiom."""

    def requires(self) -> Iterator[luigi.Task]:
        for name in ("a", "b"):
            yield Clean(name)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/pieces.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("".join(t.open().read() for t in self.input()))


def test_generator_requires_is_complete_after_a_build() -> None:
    """A requires() that yields its tasks is read once per check: complete after a build."""
    make_raw()
    assert build(Pieces())
    runs()
    assert Pieces().complete()
    assert build(Pieces())
    assert runs() == []


class Lazy(TaskWithCheckingInputHash):
    """Writes its summary output only when it does not exist yet: the stale-output trap."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> Dict[str, HashableLocalTarget]:
        return {
            "main": HashableLocalTarget("out/lazy_main.txt"),
            "summary": HashableLocalTarget("out/lazy_summary.txt"),
        }

    def run(self) -> None:
        log_run(self)
        text = self.input().open().read()
        with self.output()["main"].open("w") as sink:
            sink.write(text)
        if not self.output()["summary"].exists():
            with self.output()["summary"].open("w") as sink:
                sink.write(f"summary of {text}")


def test_output_left_from_an_earlier_run_is_not_vouched_for() -> None:
    """A rerun that does not rewrite an output fails, instead of recording the stale file."""
    write_raw("a", "1\n")
    assert build(Lazy())
    write_raw("a", "2\n")
    error = failure_of(Lazy())
    assert isinstance(error, OutputNotWritten)
    assert error.stale == (os.path.abspath("out/lazy_summary.txt"),)
    assert "left from an earlier run" in str(error)
    assert not Lazy().complete()


def test_record_pointing_back_at_its_task_is_not_complete_and_does_not_raise() -> None:
    """A (hand-edited) dynamic input naming the task itself: a cycle, judged not complete."""
    import attrs

    from luigi_repro.record import dump_record

    make_raw()
    Path("raw/names.txt").write_text("a")
    assert build(Dynamic())
    path = Path("out/dynamic.txt.repro.json")
    record = parse_record(path.read_bytes(), str(path))
    me = Dynamic()
    loop = attrs.evolve(
        record.inputs[0],
        task_id=me.task_id,
        task_family="Dynamic",
        task_params={},
        output_key=(),
        uri=os.path.abspath("out/dynamic.txt"),
    )
    path.write_bytes(dump_record(attrs.evolve(record, inputs=(*record.inputs, loop))))
    assert me.complete() is False
    verdict = status_of(me)
    assert any("cycle" in r.message for r in verdict.reasons)


def test_abandoned_generator_does_not_disable_the_protocol_for_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A generator run() left suspended does not mark the task as running: a second run()
    still goes through the protocol (here: waits for the first one's run lock)."""
    make_raw()
    Path("raw/names.txt").write_text("a")
    assert build(Clean("a"))
    monkeypatch.setenv("LUIGI_REPRO_LOCK_TIMEOUT", "0.3")
    task = Dynamic()
    first = task.run()
    next(first)  # yields [Clean("a")] and stays suspended, holding the run lock
    with pytest.raises(LockTimeout):
        next(task.run())
    first.close()
    second = task.run()
    batch = next(second)
    with pytest.raises(StopIteration):
        second.send([t.output() for t in batch])
    assert task.complete()


def test_early_cutoff_works_through_dynamic_dependencies() -> None:
    """A dynamic dependency rerun with identical output: the dependent task is cut off."""
    make_raw()
    Path("raw/names.txt").write_text("a")
    assert build(Dynamic())
    before = parse_record(Path("out/dynamic.txt.repro.json").read_bytes(), "d").run.run_id
    runs()
    write_raw("a", "  HELLO \n")  # Clean("a") reruns and writes the same bytes
    assert build(Dynamic())
    # Dynamic's body starts once (then Luigi schedules Clean first); after it: cut off.
    assert families(runs()) == ["Clean", "Dynamic"]
    after = parse_record(Path("out/dynamic.txt.repro.json").read_bytes(), "d").run.run_id
    assert after == before
    assert Dynamic().complete()


class Clash(TaskWithCheckingInputHash):
    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/clash.txt.repro.json")

    def run(self) -> None:
        self.output().open("w").close()


def test_output_named_like_a_record_is_refused() -> None:
    """An output ending with the record suffix would be overwritten by records: refused."""
    error = failure_of(Clash())
    assert isinstance(error, UnsupportedTarget)
    assert "record suffix" in str(error)


class ClaimsDone(luigi.Task):
    """A dependency that says it is complete although its output is not there."""

    def complete(self) -> bool:
        return True

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget("out/never-written.txt")


class TrustsClaim(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return ClaimsDone()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/trusts.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("made from nothing\n")


@pytest.mark.parametrize("recheck", ["true", "false"])
def test_a_missing_input_stops_the_run_even_without_luigis_dependency_check(recheck: str) -> None:
    """With ``[worker] check_unfulfilled_deps = false`` (advised for deep DAGs) the protocol
    itself refuses to run a task whose input is missing: no run, no output, no record."""
    config = luigi.configuration.get_config()
    config.set("worker", "check_unfulfilled_deps", recheck)
    try:
        assert not build(TrustsClaim())
    finally:
        config.remove_option("worker", "check_unfulfilled_deps")
    assert runs() == []
    assert not Path("out/trusts.txt").exists()
    assert not Path("out/trusts.txt.repro.json").exists()
    error = failure_of(TrustsClaim())
    assert isinstance(error, RunProtocolError)
    assert "never-written.txt" in str(error)
    assert "must exist before the task runs" in str(error)


class Fetch(TaskWithCheckingInputHash):
    """Has a significant PRIVATE parameter (with a default) and an insignificant one without."""

    name = luigi.Parameter()
    token = luigi.Parameter(
        visibility=luigi.parameter.ParameterVisibility.PRIVATE, default="default-token"
    )
    api_key = luigi.Parameter(significant=False)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/fetch-{self.name}.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(f"data for {self.name}\n")


class Gather(TaskWithCheckingInputHash):
    """Yields Fetch tasks; ``token`` is passed on when set."""

    token = luigi.Parameter(default="")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/gather.txt")

    def run(self) -> Iterator[Any]:
        log_run(self)
        extra = {"token": self.token} if self.token else {}
        fetched = yield Fetch(name="a", api_key="k-123", **extra)
        with self.output().open("w") as sink:
            sink.write(fetched.open().read())


def test_yielding_a_task_whose_private_value_luigi_would_drop_fails_clearly() -> None:
    """Luigi rebuilds yielded tasks from public parameters (a PRIVATE value becomes the
    default), so the task asked for could never complete: the run fails at once, naming it,
    instead of being rescheduled forever."""
    error = failure_of(Gather(token="real-token"))
    assert isinstance(error, RunProtocolError)
    assert "yields Fetch(name=a" in str(error)
    assert "PRIVATE parameter token" in str(error)
    assert not Path("out/fetch-a.txt").exists()


def test_a_yielded_task_with_an_insignificant_parameter_is_rebuilt_from_its_record() -> None:
    """An insignificant parameter without a default is recorded (it is public), so the
    dynamic dependency is rebuilt and judged: complete after the build, nothing reruns."""
    assert build(Gather())
    assert families(runs()) == ["Fetch", "Gather", "Gather"]
    assert status_of(Gather()).reasons == ()
    assert build(Gather())
    assert runs() == []
