"""A pipeline whose outputs are JSON and pickle objects: the right tasks rerun after an edit,
an equal object stops the rebuild there (early cutoff), ``luigi-repro verify`` agrees, and
``fingerprint()`` gives the values the records store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Tuple

import luigi
import pytest
from pipelines import build, families, log_run, runs, write_raw

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    JsonTarget,
    PickleTarget,
    TargetMissing,
    TaskWithCheckingInputHash,
)
from luigi_repro.fingerprint import Counters
from luigi_repro.record import Record, parse_record


class O12Totals(TaskWithCheckingInputHash):
    """Sales per region, as JSON; the dictionary is filled in the order of the input's lines."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/sales.txt")

    def output(self) -> JsonTarget:
        return JsonTarget("out/totals.json")

    def run(self) -> None:
        log_run(self)
        totals: Dict[str, int] = {}
        for line in self.input().open().read().splitlines():
            region, amount = line.split()
            totals[region] = totals.get(region, 0) + int(amount)
        self.output().dump(totals)


class O12Labels(TaskWithCheckingInputHash):
    """Display names of the regions, as JSON."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/labels.txt")

    def output(self) -> JsonTarget:
        return JsonTarget("out/labels.json")

    def run(self) -> None:
        log_run(self)
        pairs = [line.split("=") for line in self.input().open().read().splitlines()]
        self.output().dump(dict(pairs))


class O12Model(TaskWithCheckingInputHash):
    """A "model" pickled from the totals: how many regions, and the grand total."""

    def requires(self) -> luigi.Task:
        return O12Totals()

    def output(self) -> PickleTarget:
        return PickleTarget("out/model.pkl")

    def run(self) -> None:
        log_run(self)
        totals = self.input().load()
        self.output().dump({"regions": len(totals), "total": sum(totals.values())})


class O12Report(TaskWithCheckingInputHash):
    """Text from the model and the labels."""

    def requires(self) -> Dict[str, luigi.Task]:
        return {"model": O12Model(), "labels": O12Labels()}

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/report.txt")

    def run(self) -> None:
        log_run(self)
        model = self.input()["model"].load()
        labels = self.input()["labels"].load()
        with self.output().open("w") as stream:
            stream.write(f"{', '.join(sorted(labels.values()))}: {model['total']}\n")


def make_inputs() -> None:
    write_raw("sales", "north 10\nsouth 5\nnorth 2\n")
    write_raw("labels", "north=North\nsouth=South\n")


def ran() -> List[str]:
    return families(runs())


@pytest.fixture
def built() -> None:
    make_inputs()
    assert build(O12Report())
    assert ran() == ["O12Labels", "O12Model", "O12Report", "O12Totals"]
    assert Path("out/report.txt").read_text() == "North, South: 17\n"


def verify() -> Tuple[int, Dict[str, Any]]:
    """``luigi-repro verify --format json`` on the report, through the installed script."""
    script = shutil.which("luigi-repro")
    assert script is not None
    command = [script, "verify", "--format", "json", "--module", "test_object_targets"]
    result = subprocess.run(
        [*command, "O12Report"], capture_output=True, text=True, env=dict(os.environ)
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def record_of(path: str) -> Record:
    location = Path(path + ".repro.json")
    return parse_record(location.read_bytes(), str(location))


def test_an_edited_input_reruns_only_the_tasks_downstream_of_it(built: None) -> None:
    """Labels changed: their task and the report rerun, the sales branch does not."""
    write_raw("labels", "north=Nord\nsouth=Sud\n")
    assert build(O12Report())
    assert ran() == ["O12Labels", "O12Report"]
    assert Path("out/report.txt").read_text() == "Nord, Sud: 17\n"
    write_raw("sales", "north 10\nsouth 6\nnorth 2\n")
    assert build(O12Report())
    assert ran() == ["O12Model", "O12Report", "O12Totals"]
    assert Path("out/report.txt").read_text() == "Nord, Sud: 18\n"
    code, document = verify()
    assert code == 0
    statuses = {task["label"]: task["status"] for task in document["tasks"]}
    assert statuses == {
        "O12Report()": "UP_TO_DATE",
        "O12Model()": "UP_TO_DATE",
        "O12Totals()": "UP_TO_DATE",
        "O12Labels()": "UP_TO_DATE",
        "HashableExternalFile(path=raw/sales.txt)": "COMPLETE",
        "HashableExternalFile(path=raw/labels.txt)": "COMPLETE",
    }


def test_an_equal_json_object_in_another_order_stops_the_rebuild(built: None) -> None:
    """Lines reordered: the totals are rebuilt in another dictionary order, to the same bytes
    and fingerprint, so the model and the report are not run again."""
    before = JsonTarget("out/totals.json").fingerprint()
    write_raw("sales", "south 5\nnorth 2\nnorth 10\n")
    assert build(O12Report())
    assert ran() == ["O12Totals"]
    assert JsonTarget("out/totals.json").load() == {"north": 12, "south": 5}
    assert JsonTarget("out/totals.json").fingerprint() == before
    code, _ = verify()
    assert code == 0


def test_an_equal_pickled_object_stops_the_rebuild(built: None) -> None:
    """Sales moved between regions: totals and model rerun, the model's pickle is the same
    bytes, so the report is not run again."""
    write_raw("sales", "north 9\nsouth 6\nnorth 2\n")
    assert build(O12Report())
    assert ran() == ["O12Model", "O12Totals"]
    assert PickleTarget("out/model.pkl").load() == {"regions": 2, "total": 17}
    code, document = verify()
    assert code == 0, document


def test_an_edited_object_output_is_caught_by_verify(built: None) -> None:
    """A hand edit of the JSON output: verify exits 1 and the rebuild puts it right."""
    Path("out/totals.json").write_text('{"north":100,"south":5}\n')
    code, document = verify()
    assert code == 1
    statuses = {task["label"]: task["status"] for task in document["tasks"]}
    assert statuses["O12Totals()"] != "UP_TO_DATE"
    assert build(O12Report())
    assert ran() == ["O12Totals"]  # rewritten equal to what it was: early cutoff again
    assert verify()[0] == 0


def test_fingerprints_match_what_the_records_store(
    built: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fingerprint() of each output equals its record's output entry and the input entry of
    the task downstream; asked again, it reads no content."""
    totals, labels = JsonTarget("out/totals.json"), JsonTarget("out/labels.json")
    model, report = PickleTarget("out/model.pkl"), HashableLocalTarget("out/report.txt")
    for target in (totals, labels, model, report):
        (entry,) = record_of(target.path).outputs
        assert entry.uri == target.uri
        assert target.fingerprint() == entry.fingerprint
        assert entry.fingerprint.startswith("xxh3_128:")
    inputs = {entry.uri: entry.fingerprint for entry in record_of(report.path).inputs}
    assert inputs == {model.uri: model.fingerprint(), labels.uri: labels.fingerprint()}
    (from_totals,) = record_of(model.path).inputs
    assert from_totals.fingerprint == totals.fingerprint()
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", "0")  # a file just written is trusted at once
    first = totals.fingerprint()
    again = Counters()
    assert totals.fingerprint(counters=again) == first
    assert (again.files_hashed, again.bytes_hashed) == (0, 0)


def test_the_configured_algorithm_names_the_fingerprint(
    built: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With [luigi_repro] hash_algorithm = sha256, fingerprint() and the records agree on it."""
    monkeypatch.setenv("LUIGI_REPRO_HASH_ALGORITHM", "sha256")
    assert build(O12Report())
    assert families(runs()) == []  # a new algorithm: fingerprinted again, nothing rebuilt
    totals = JsonTarget("out/totals.json")
    fingerprint = totals.fingerprint()
    assert fingerprint.startswith("sha256:")
    assert len(fingerprint.partition(":")[2]) == 64


def test_a_missing_output_says_so_in_one_sentence() -> None:
    """No output yet: TargetMissing (a FileNotFoundError) naming the file."""
    target = JsonTarget("out/never.json")
    with pytest.raises(TargetMissing) as caught:
        target.fingerprint()
    assert isinstance(caught.value, FileNotFoundError)
    assert str(caught.value) == (
        f"cannot fingerprint {target.uri}: it does not exist (has its task run?)."
    )
