"""Every audit agrees: ``complete()``, ``verify --module`` and the record-only ``verify PATH``
give the same verdict on every task, for every target kind and every kind of change."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import boto3
import luigi
import luigi.format
import pandas as pd
import pytest
from luigi.contrib.s3 import S3Target
from luigi.mock import MockFileSystem, MockTarget
from pipelines import Clean, Report, build, from_scratch, make_raw

import luigi_repro
from luigi_repro import HashableExternalFile, TaskWithCheckingInputHash, audit_paths
from luigi_repro.cli import main
from luigi_repro.config import load_settings
from luigi_repro.fingerprint import Counters
from luigi_repro.report import TaskReport
from luigi_repro.targets import (
    CsvTarget,
    FeatherTarget,
    HashableDirectoryTarget,
    HashableLocalTarget,
    HashableMockTarget,
    HashableS3Target,
    HashableTarget,
    ParquetTarget,
    as_hashable,
)
from luigi_repro.targets.base import locate_target

TABLES = ("parquet", "feather", "csv")
KINDS = ("file", "folder", *TABLES, "s3", "mock")
RAW_TEXT = b"alpha beta gamma"


# --- a raw -> A -> B chain whose outputs are of one kind ----------------------------------------


def raw_target(kind: str, where: str) -> Any:
    """The raw input: a text file, S3 object or mock file placed by someone else."""
    if kind == "s3":
        return S3Target(f"s3://{where}/raw/input.txt", format=luigi.format.Nop)
    if kind == "mock":
        return MockTarget(f"/{where}/raw/input.txt", format=luigi.format.Nop)
    return HashableExternalFile("raw/input.txt").output()


def output_target(kind: str, where: str, stage: str) -> HashableTarget:
    """A's or B's output (``stage`` "a" or "b") for ``kind``."""
    if kind == "file":
        return HashableLocalTarget(f"out/{stage}.txt")
    if kind == "folder":
        return HashableDirectoryTarget(f"out/{stage}")
    if kind == "parquet":
        return ParquetTarget(f"out/{stage}.parquet")
    if kind == "feather":
        return FeatherTarget(f"out/{stage}.arrow")
    if kind == "csv":
        return CsvTarget(f"out/{stage}.csv", delimiter=";")
    if kind == "s3":
        return HashableS3Target(f"s3://{where}/out/{stage}.txt", format=luigi.format.UTF8)
    return HashableMockTarget(f"/{where}/out/{stage}.txt")


def read_words(target: Any) -> List[str]:
    if isinstance(target, (ParquetTarget, FeatherTarget, CsvTarget)):
        return [str(word) for word in target.load()["word"]]
    if isinstance(target, HashableDirectoryTarget):
        return Path(target.path, "part-0.txt").read_text().split()
    with target.open("r") as stream:
        text = stream.read()
    return (text.decode() if isinstance(text, bytes) else text).split()


def write_words(target: Any, words: List[str]) -> None:
    if isinstance(target, (ParquetTarget, FeatherTarget, CsvTarget)):
        target.dump(pd.DataFrame({"word": words, "length": [len(w) for w in words]}))
    elif isinstance(target, HashableDirectoryTarget):
        with target.temporary_path() as folder:
            Path(folder, "part-0.txt").write_text(" ".join(words))
            Path(folder, "part-1.txt").write_text(str(len(words)))
    else:
        with target.open("w") as stream:
            stream.write(" ".join(words))


class Raw(luigi.ExternalTask):
    kind = luigi.Parameter()
    where = luigi.Parameter()

    def output(self) -> Any:
        return raw_target(self.kind, self.where)


class AgreeA(TaskWithCheckingInputHash):
    """Upper-cases the raw words."""

    kind = luigi.Parameter()
    where = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return Raw(self.kind, self.where)

    def output(self) -> HashableTarget:
        return output_target(self.kind, self.where, "a")

    def run(self) -> None:
        write_words(self.output(), [w.upper() for w in read_words(self.input())])


class B(TaskWithCheckingInputHash):
    """Reverses A's words."""

    kind = luigi.Parameter()
    where = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return AgreeA(self.kind, self.where)

    def output(self) -> HashableTarget:
        return output_target(self.kind, self.where, "b")

    def run(self) -> None:
        write_words(self.output(), read_words(self.input())[::-1])


# --- content, edited behind the pipeline's back -------------------------------------------------


def content_file(target: Any) -> Any:
    """The one place holding the bytes of ``target``: a local path (a folder's first part),
    an S3 or a mock target."""
    hashable = as_hashable(target)
    if isinstance(hashable, HashableDirectoryTarget):
        return Path(hashable.path, "part-0.txt")
    if isinstance(hashable, HashableLocalTarget):
        return Path(hashable.path)
    return hashable


def get_bytes(place: Any) -> bytes:
    if isinstance(place, HashableS3Target):
        bucket, key = place.path[len("s3://") :].split("/", 1)
        body: bytes = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return body
    if isinstance(place, HashableMockTarget):
        return bytes(MockFileSystem().get_all_data()[place.path])
    return bytes(place.read_bytes())


def put_bytes(place: Any, data: bytes) -> None:
    if isinstance(place, HashableS3Target):
        bucket, key = place.path[len("s3://") :].split("/", 1)
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
    elif isinstance(place, HashableMockTarget):
        MockFileSystem().get_all_data()[place.path] = data
    else:
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_bytes(data)


def remove(target: Any) -> None:
    hashable = as_hashable(target)
    if isinstance(hashable, HashableS3Target):
        bucket, key = hashable.path[len("s3://") :].split("/", 1)
        boto3.client("s3").delete_object(Bucket=bucket, Key=key)
    elif isinstance(hashable, HashableMockTarget):
        MockFileSystem().get_all_data().pop(hashable.path)
    elif isinstance(hashable, HashableDirectoryTarget):
        shutil.rmtree(hashable.path)
    else:
        os.unlink(hashable.path)


def edit(target: Any, same_size: bool, keep_mtime: bool = False) -> None:
    """Change the content: a table gets other data, anything else other bytes."""
    if isinstance(target, (ParquetTarget, FeatherTarget, CsvTarget)):
        frame = target.load()
        target.dump(frame.assign(word=frame["word"] + "x"))
        return
    place = content_file(target)
    before = os.stat(place) if keep_mtime else None
    data = get_bytes(place)
    put_bytes(place, (b"Z" + data[1:]) if same_size else data + b" extra")
    if before is not None:
        os.utime(place, ns=(before.st_atime_ns, before.st_mtime_ns))


def touch(target: Any) -> None:
    """The same bytes written again: a new write, no new content."""
    place = content_file(target)
    put_bytes(place, get_bytes(place))
    if isinstance(place, Path):
        later = os.stat(place).st_mtime_ns + 5_000_000_000
        os.utime(place, ns=(later, later))


def rewrite_table(target: Any) -> None:
    """The same table in other bytes: other compression, row groups or line endings."""
    if isinstance(target, ParquetTarget):
        ParquetTarget(target.path, compression="gzip", row_group_size=1).dump(target.load())
    elif isinstance(target, FeatherTarget):
        FeatherTarget(target.path, compression="uncompressed").dump(target.load())
    else:
        text = Path(target.path).read_bytes()
        assert b"\r\n" not in text
        Path(target.path).write_bytes(text.replace(b"\n", b"\r\n"))


def corrupt_record(target: HashableTarget) -> None:
    target.write_record_bytes(load_settings(), b'{"schema": 1, "truncated')


class Chain(NamedTuple):
    raw: Any
    a: HashableTarget
    b: HashableTarget


class Change(NamedTuple):
    """One change to a built chain, the verdicts it must lead to, and the kinds it fits."""

    name: str
    apply: Callable[[Chain], None]
    a_status: str
    b_status: str
    kinds: Tuple[str, ...] = KINDS


CHANGES = [
    Change("nothing", lambda c: None, "UP_TO_DATE", "UP_TO_DATE"),
    Change("raw edited, same size", lambda c: edit(c.raw, True), "STALE", "STALE"),
    Change("raw edited, other size", lambda c: edit(c.raw, False), "STALE", "STALE"),
    Change("raw touched", lambda c: touch(c.raw), "UP_TO_DATE", "UP_TO_DATE"),
    Change("raw removed", lambda c: remove(c.raw), "STALE", "STALE"),
    Change("output edited", lambda c: edit(c.b, True), "UP_TO_DATE", "OUTPUT_MODIFIED"),
    Change(
        "output edited, mtime restored",
        lambda c: edit(c.b, True, keep_mtime=True),
        "UP_TO_DATE",
        "OUTPUT_MODIFIED",
        ("file", "folder"),
    ),
    Change("output removed", lambda c: remove(c.b), "UP_TO_DATE", "MISSING_OUTPUT"),
    Change("upstream output edited", lambda c: edit(c.a, False), "OUTPUT_MODIFIED", "STALE"),
    Change("upstream output removed", lambda c: remove(c.a), "MISSING_OUTPUT", "STALE"),
    Change(
        "record removed",
        lambda c: c.b.remove_record(load_settings()),
        "UP_TO_DATE",
        "NO_RECORD",
    ),
    Change(
        "upstream record removed",
        lambda c: c.a.remove_record(load_settings()),
        "NO_RECORD",
        "STALE",
    ),
    Change("record corrupted", lambda c: corrupt_record(c.b), "UP_TO_DATE", "BAD_RECORD"),
    Change("upstream record corrupted", lambda c: corrupt_record(c.a), "BAD_RECORD", "STALE"),
    Change(
        "table rewritten differently",
        lambda c: rewrite_table(c.a),
        "UP_TO_DATE",
        "UP_TO_DATE",
        TABLES,
    ),
]


@pytest.fixture
def place(request: pytest.FixtureRequest) -> str:
    """Where the chain of this test's kind lives: an S3 bucket, or a fresh mock folder."""
    if request.node.callspec.params["kind"] == "s3":
        bucket: str = request.getfixturevalue("s3_bucket")
        return bucket
    return f"chain-{uuid.uuid4().hex[:8]}"


def audited_by_output(nodes: Dict[str, TaskReport]) -> Dict[str, TaskReport]:
    """The nodes of a record-only audit by the outputs they stand for."""
    return {uri: node for node in nodes.values() for uri in node.outputs}


@pytest.mark.parametrize(
    ("kind", "change"),
    [(kind, change) for change in CHANGES for kind in change.kinds],
    ids=[f"{kind}-{change.name}" for change in CHANGES for kind in change.kinds],
)
def test_every_audit_agrees(kind: str, change: Change, place: str) -> None:
    """complete(), verify --module and verify PATH agree on each task after the change."""
    raw = raw_target(kind, place)
    put_bytes(content_file(raw), RAW_TEXT)
    chain = Chain(raw, output_target(kind, place, "a"), output_target(kind, place, "b"))
    try:
        assert build(B(kind, place))
        change.apply(chain)
        tasks = {"a": AgreeA(kind, place), "b": B(kind, place)}
        report = luigi_repro.verify(tasks["b"])
        audit = audited_by_output(dict(audit_paths([chain.b.uri]).tasks))
        expected = {"a": change.a_status, "b": change.b_status}
        for stage, task in tasks.items():
            judged = report.tasks[task.task_id]
            assert (judged.status, judged.ok) == (expected[stage], expected[stage] == "UP_TO_DATE")
            assert from_scratch(task) == judged.ok
            audited = audit.get(getattr(chain, stage).uri)
            if audited is None:  # the audit starts from B's record: without one it sees no further
                assert stage == "a"
                assert change.b_status in ("NO_RECORD", "BAD_RECORD")
                continue
            assert (audited.status, audited.ok) == (judged.status, judged.ok), audited.reasons
    finally:
        if kind == "mock":
            MockFileSystem().clear()


# --- copied results folders -----------------------------------------------------------------------


def statuses(report: luigi_repro.Report) -> Dict[str, Tuple[str, List[str]]]:
    """Each node's status and reason messages, by label."""
    return {
        node.label: (node.status, [reason.message for reason in node.reasons])
        for node in report.tasks.values()
    }


def test_a_file_missing_from_a_copy_is_missing_there_and_the_original_is_not_read(
    tmp_path: Path,
) -> None:
    """The copy lacks a raw input and an upstream output: both are reported missing at the
    copy's paths, and editing the originals changes nothing in the copy's audit."""
    make_raw()
    assert build(Report())
    copy = tmp_path / "copy"
    shutil.copytree(Path.cwd(), copy)
    (copy / "raw" / "a.txt").unlink()
    (copy / "out" / "clean_b.txt").unlink()
    audit = audit_paths([str(copy / "out" / "report.txt")])
    found = statuses(audit)
    raw_a = copy / "raw" / "a.txt"
    assert found["Clean(name=a)"] == (
        "STALE",
        [f"input {raw_a} does not exist", f"upstream {raw_a} is MISSING"],
    )
    assert found["Clean(name=b)"][0] == "MISSING_OUTPUT"
    assert f"output {copy / 'out' / 'clean_b.txt'} does not exist" in found["Clean(name=b)"][1]
    assert any(str(copy / "out" / "clean_b.txt") in m for m in found["Merge()"][1])
    original = str(Path.cwd())
    assert not any(original + os.sep in m for _, messages in found.values() for m in messages)
    Path("raw/b.txt").write_text("the original changed\n")
    Path("out/merged.txt").write_text("tampered\n")
    Path("out/clean_a.txt.repro.json").unlink()
    assert statuses(audit_paths([str(copy / "out" / "report.txt")])) == found


class TwoSameNames(TaskWithCheckingInputHash):
    """Two outputs with one base name, in two folders."""

    def requires(self) -> luigi.Task:
        return Clean("a")

    def output(self) -> Dict[str, HashableLocalTarget]:
        return {
            "first": HashableLocalTarget("out/first/data.csv"),
            "second": HashableLocalTarget("out/second/data.csv"),
        }

    def run(self) -> None:
        text = self.input().open("r").read()
        with self.output()["first"].open("w") as sink:
            sink.write(text)
        with self.output()["second"].open("w") as sink:
            sink.write(text.upper() + "second\n")


def drop_beside(record_path: Path) -> None:
    """Make a record look like one written before records named the output they sit beside."""
    document = json.loads(record_path.read_bytes())
    del document["beside"]
    record_path.write_text(json.dumps(document))


@pytest.mark.parametrize("old_style", [False, True], ids=["beside", "no-beside"])
def test_outputs_with_one_base_name_each_match_their_own_entry(
    tmp_path: Path, old_style: bool
) -> None:
    """In a copy, out/first/data.csv and out/second/data.csv each match their own entry,
    by ``beside`` or (old records) by the longest common path suffix."""
    make_raw()
    assert build(TwoSameNames())
    copy = tmp_path / "copy"
    shutil.copytree(Path.cwd(), copy)
    first, second = copy / "out" / "first" / "data.csv", copy / "out" / "second" / "data.csv"
    if old_style:
        for data in (first, second):
            drop_beside(Path(f"{data}.repro.json"))
    audit = audit_paths([str(first), str(second)])
    assert audit.ok, statuses(audit)
    assert len(audit.roots) == 1  # two outputs of one run at one place: one node
    second.write_text("tampered\n")
    audit = audit_paths([str(second)])
    node = audit.tasks[audit.roots[0]]
    assert node.status == "OUTPUT_MODIFIED"
    assert [reason.evidence["uri"] for reason in node.reasons] == [str(second)]


def test_an_old_record_that_fits_two_outputs_equally_is_bad_and_says_so(tmp_path: Path) -> None:
    """An old-style record (no ``beside``) beside a file whose path fits two of its entries
    equally well is BAD_RECORD naming the ambiguity, never a guess."""
    make_raw()
    assert build(TwoSameNames())
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy("out/second/data.csv", flat / "data.csv")
    shutil.copy("out/second/data.csv.repro.json", flat / "data.csv.repro.json")
    audit = audit_paths([str(flat / "data.csv")])
    node = audit.tasks[audit.roots[0]]
    # With beside, the record knows its entry (the other files are simply not in this copy).
    assert not [r for r in node.reasons if r.evidence.get("problem") == "ambiguous output"]
    assert node.reasons[0].kind.value == "MISSING_OUTPUT"
    drop_beside(flat / "data.csv.repro.json")
    audit = audit_paths([str(flat / "data.csv")])
    node = audit.tasks[audit.roots[0]]
    assert node.status == "BAD_RECORD"
    assert [reason.evidence["problem"] for reason in node.reasons] == ["ambiguous output"]
    assert "ambiguous" in node.reasons[0].message
    assert "out/first/data.csv" in node.reasons[0].message


def test_a_moved_record_whose_beside_names_no_output_is_bad() -> None:
    """A record read away from its run whose ``beside`` names an output it does not list is
    BAD_RECORD saying so."""
    make_raw()
    assert build(Report())
    Path("moved").mkdir()
    shutil.copy("out/report.txt", "moved/report.txt")
    record = json.loads(Path("out/report.txt.repro.json").read_bytes())
    record["beside"] = ["nope"]
    Path("moved/report.txt.repro.json").write_text(json.dumps(record))
    audit = audit_paths(["moved/report.txt"])
    node = audit.tasks[audit.roots[0]]
    assert node.status == "BAD_RECORD"
    assert "names output()['nope'] as its own, which it does not list" in node.reasons[0].message


# --- target descriptions --------------------------------------------------------------------------


class Table(TaskWithCheckingInputHash):
    """One Parquet output made from a raw file."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> ParquetTarget:
        return ParquetTarget("out/x.parquet")

    def run(self) -> None:
        words = Path(self.input().path).read_text().split()
        self.output().dump(pd.DataFrame({"word": words}))


def test_cli_verify_of_an_up_to_date_dataframe_output_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`luigi-repro verify out/x.parquet`: the table is read as a table, up to date, exit 0."""
    make_raw()
    assert build(Table())
    assert main(["verify", "--format", "json", "out/x.parquet"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [task["status"] for task in document["tasks"] if task["kind"] == "recorded"] == [
        "UP_TO_DATE"
    ]
    Table().output().dump(pd.DataFrame({"word": ["other"]}))
    assert main(["verify", "--format", "json", "out/x.parquet"]) == 1
    capsys.readouterr()


def test_record_only_audit_of_unchanged_tables_reads_no_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each table's recorded stat vouches for its table fingerprint: a record-only audit of an
    unchanged DataFrame chain stats files and reads none."""
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", "0")
    put_bytes(Path("raw/input.txt"), RAW_TEXT)
    assert build(B("parquet", "here"))
    counters = Counters()
    assert audit_paths([output_target("parquet", "here", "b").uri], counters=counters).ok
    assert (counters.files_hashed, counters.bytes_hashed) == (0, 0)
    assert counters.files_statted >= 3


def describe_output_as(description: Optional[Dict[str, Any]]) -> None:
    """Rewrite out/x.parquet's record as if its output had been described so."""
    path = Path("out/x.parquet.repro.json")
    document = json.loads(path.read_bytes())
    document["outputs"][0]["target"] = description
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ({"type": "orc"}, "is described as a 'orc' target, which this version"),
        ({"type": "parquet", "columns": ["x"]}, "options this version does not know"),
        ({"type": "csv", "delimiter": "::"}, "a CSV delimiter is one character"),
    ],
    ids=["unknown-type", "unknown-option", "bad-option"],
)
def test_an_output_described_in_a_way_this_version_cannot_read_is_not_compared_as_bytes(
    description: Dict[str, Any], reason: str
) -> None:
    """A description the audit cannot follow makes the output "cannot be located" with the
    reason, never a comparison of its bytes with a table fingerprint."""
    make_raw()
    assert build(Table())
    describe_output_as(description)
    audit = audit_paths(["out/x.parquet"])
    node = audit.tasks[audit.roots[0]]
    assert node.status == "MISSING_OUTPUT"
    assert [r.evidence.get("problem") for r in node.reasons] == ["cannot be located"]
    assert reason in node.reasons[0].message


def test_records_describe_table_inputs_and_outputs_and_leave_bytes_undescribed() -> None:
    """A table output is described in its record, as is the same table read downstream;
    a raw file read as bytes is not."""
    Path("raw").mkdir()
    put_bytes(Path("raw/input.txt"), RAW_TEXT)
    assert build(B("csv", "here"))
    record = output_target("csv", "here", "b").read_record(load_settings())
    assert record is not None
    assert [entry.target for entry in record.outputs] == [{"type": "csv", "delimiter": ";"}]
    assert [entry.target for entry in record.inputs] == [{"type": "csv", "delimiter": ";"}]
    upstream = output_target("csv", "here", "a").read_record(load_settings())
    assert upstream is not None
    assert [entry.target for entry in upstream.inputs] == [None]


@pytest.mark.parametrize(
    ("uri", "description", "reason"),
    [
        ("relative/x.parquet", {"type": "parquet"}, "is not the absolute path of a local file"),
        ("s3://bucket/x.parquet", {"type": "feather"}, "is not the absolute path of a local file"),
        ("/data/x.parquet", {"type": 5}, "is described as a 5 target"),
        ("gs://bucket/x.txt", None, "is not a location luigi_repro can read"),
    ],
    ids=["relative", "remote-table", "type-not-a-string", "unknown-scheme"],
)
def test_locations_that_cannot_be_located_say_why(
    uri: str, description: Optional[Dict[str, Any]], reason: str
) -> None:
    """locate_target never guesses another kind of target: no target, and the reason."""
    target, problem = locate_target(uri, description)
    assert target is None
    assert problem is not None
    assert reason in problem


# --- places that are not copies, and files that are raw to their reader ------------------------


class Dated(TaskWithCheckingInputHash):
    """Writes its report into a dated run folder."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/input.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("runs/2024-01-01/report.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read().upper())


def test_a_results_folder_reached_through_a_symlink_is_the_original_not_a_copy() -> None:
    """``latest -> runs/2024-01-01``: auditing ``latest/report.txt`` checks the very files the
    run read, as ``complete()`` does; nothing is relocated across the symlink."""
    os.makedirs("raw")
    Path("raw/input.txt").write_text("words\n")
    assert build(Dated())
    os.symlink("runs/2024-01-01", "latest")
    report = audit_paths(["latest/report.txt"])
    assert report.ok, [(t.label, [r.message for r in t.reasons]) for t in report.tasks.values()]
    Path("raw/input.txt").write_text("other words\n")
    assert not audit_paths(["latest/report.txt"]).ok
    assert not from_scratch(Dated())


class Produce(TaskWithCheckingInputHash):
    """Writes p.txt from its raw input (its first word only)."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/p-source.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("p.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read().split()[0])


class Consume(TaskWithCheckingInputHash):
    """Reads p.txt as a raw file: its producer is not one of its requirements."""

    def requires(self) -> luigi.Task:
        return HashableExternalFile("p.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/consumed.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read().upper())


def test_an_input_that_is_raw_to_its_reader_is_not_followed_through_a_record_beside_it() -> None:
    """p.txt was made by Produce, but Consume requires it as a raw file: when Produce goes stale
    while p.txt stays the same, every audit says Consume is up to date."""
    os.makedirs("raw")
    Path("raw/p-source.txt").write_text("same first\n")
    assert build(Produce())
    assert build(Consume())
    Path("raw/p-source.txt").write_text("same second\n")  # Produce is stale, p.txt unchanged
    assert not Produce().complete()
    assert from_scratch(Consume())
    assert luigi_repro.verify(Consume()).ok
    assert audit_paths(["out/consumed.txt"]).ok
