"""Many S3 outputs under one prefix: a check lists the prefix instead of asking object by object.

Requests are counted where they arrive, in the log of the moto server on 127.0.0.1.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, List

import boto3
import luigi
import pytest
from pipelines import build

from luigi_repro import TaskWithCheckingInputHash
from luigi_repro.cli import main
from luigi_repro.config import load_settings
from luigi_repro.runtime import reset
from luigi_repro.targets import HashableS3Target, s3listing
from luigi_repro.targets.s3listing import RecordBodies, check_epoch

#: Tasks in the pipeline: enough that one request per object would be far over the bound.
N = 200


class Seed(luigi.ExternalTask):
    """A raw object every part is made from."""

    bucket = luigi.Parameter()

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/raw/seed.txt")


class Part(TaskWithCheckingInputHash):
    bucket = luigi.Parameter()
    number = luigi.IntParameter()

    def requires(self) -> luigi.Task:
        return Seed(self.bucket)

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/parts/part-{self.number:05}.txt")

    def run(self) -> None:
        seed = self.input().open("r").read()
        with self.output().open("w") as sink:
            sink.write(f"{seed} {self.number}\n")


class ListingGather(TaskWithCheckingInputHash):
    """The root: one output beside the parts, made from all of them."""

    bucket = luigi.Parameter()
    count = luigi.IntParameter()

    def requires(self) -> List[Part]:
        return [Part(self.bucket, number) for number in range(self.count)]

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/parts/all.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(f"{len(self.input())} parts\n")


#: Tasks in the pipelines of the tests of what a check sees.
SMALL = 12


def build_parts(bucket: str, count: int) -> str:
    """The seed, ``count`` parts and their root, built."""
    boto3.client("s3").put_object(Bucket=bucket, Key="raw/seed.txt", Body=b"seed")
    assert build(ListingGather(bucket, count))
    return bucket


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    """Record bodies and verdicts remembered by one test are not another's."""
    yield
    reset()


@pytest.fixture
def built(s3_bucket: str) -> str:
    """A bucket with a few parts and their root built."""
    return build_parts(s3_bucket, SMALL)


def requests(moto_server: Any, bucket: str, action: Any) -> List[str]:
    mark = moto_server.log_mark()
    action()
    found: List[str] = moto_server.requests_since(mark, bucket)
    return found


def warm_check(bucket: str, count: int = SMALL) -> None:
    with check_epoch():
        assert ListingGather(bucket, count).complete()


def audit(bucket: str) -> int:
    with check_epoch():
        return main(["verify", "--format", "json", f"s3://{bucket}/parts/all.txt"])


def test_a_warm_check_and_an_audit_list_the_prefix_instead_of_asking_per_object(
    s3_bucket: str, moto_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a build, a check of N tasks and an audit of their records each cost a few
    requests, not several per task."""
    built = build_parts(s3_bucket, N)
    for _ in range(2):
        checked = requests(moto_server, built, lambda: warm_check(built, N))
        assert len(checked) <= 0.05 * N + 3, checked
    audited = requests(moto_server, built, lambda: audit(built))
    assert len(audited) <= 0.05 * N + 3, audited
    assert any("list-type=2" in r for r in checked)
    assert any("list-type=2" in r for r in audited)
    document = json.loads(capsys.readouterr().out)
    statuses = [t["status"] for t in document["tasks"] if t["family"]]
    assert (len(statuses), set(statuses)) == (N + 1, {"UP_TO_DATE"})


def test_without_a_check_epoch_every_object_is_asked(built: str, moto_server: Any) -> None:
    """Outside a check epoch nothing answers from a listing: S3 may have changed since."""
    outputs = [Part(built, number).output() for number in range(SMALL)]
    checked = requests(moto_server, built, lambda: all(o.exists() for o in outputs))
    assert len(checked) >= SMALL
    assert all("list-type=2" not in r for r in checked), checked


def test_a_record_replaced_by_another_process_between_checks_is_seen(
    built: str, moto_server: Any
) -> None:
    """A record edited elsewhere gets a new ETag: the next check's listing shows it, and the
    new body is read (once) instead of the remembered one."""
    warm_check(built)
    key = "parts/part-00007.txt.repro.json"
    client = boto3.client("s3")
    record = json.loads(client.get_object(Bucket=built, Key=key)["Body"].read())
    record["task"]["params"]["number"] = "8"  # as if another version of the task wrote it
    client.put_object(Bucket=built, Key=key, Body=json.dumps(record).encode())
    with check_epoch():
        assert not Part(built, 7).complete()
        assert not ListingGather(built, SMALL).complete()
    assert build(ListingGather(built, SMALL))
    warm_check(built)


def test_an_output_deleted_between_checks_is_seen(built: str, moto_server: Any) -> None:
    """An output deleted elsewhere is absent from the next listing: its task is incomplete, and
    so is the root."""
    warm_check(built)
    boto3.client("s3").delete_object(Bucket=built, Key="parts/part-00011.txt")
    with check_epoch():
        assert not Part(built, 11).complete()
        assert not ListingGather(built, SMALL).complete()
    assert build(ListingGather(built, SMALL))
    warm_check(built)


def test_an_object_deleted_within_a_check_epoch_by_this_process_is_asked_again(
    s3_bucket: str,
) -> None:
    """What this process writes or removes during a check is not answered from its listing."""
    target = HashableS3Target(f"s3://{s3_bucket}/here/x.txt")
    with target.open("w") as sink:
        sink.write("x")
    with check_epoch():
        assert target.exists()
        target.remove()
        assert not target.exists()
        with target.open("w") as sink:
            sink.write("y")
        assert target.exists()


def test_record_bodies_stay_within_their_bounds() -> None:
    """The body cache forgets the least recently used bodies beyond its count or size."""
    bodies = RecordBodies(capacity=2, max_bytes=64)
    bodies.put("a", '"1"', b"a")
    bodies.put("b", '"2"', b"b")
    assert bodies.get("a", '"1"', 1) == b"a"
    bodies.put("c", '"3"', b"c")
    assert (bodies.get("a", '"1"', 1), bodies.get("b", '"2"', 1)) == (b"a", None)
    assert bodies.get("a", '"other"', 1) is None  # another ETag: other bytes
    bodies.put("big", '"4"', b"x" * 5)  # over a 16th of the budget: never kept
    assert bodies.get("big", '"4"', 5) is None
    bodies.clear()
    assert len(bodies) == 0


def test_a_check_of_one_task_under_a_big_prefix_asks_its_objects_only(
    built: str, moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking one task does not download the listing of every output beside its own."""
    monkeypatch.setattr(s3listing, "KEYS_PER_QUESTION", 5)  # 26 keys count as many here
    warm_check(built)  # the listing of parts/ held SMALL outputs and their records
    with check_epoch():
        checked = requests(moto_server, built, lambda: Part(built, 3).complete())
    assert checked
    assert all("list-type=2" not in r for r in checked), checked


def test_a_record_replaced_after_the_listing_is_not_remembered_by_the_listings_etag(
    built: str,
) -> None:
    """The listing names one version of a record, the download reads a later one: the later
    bytes must not be remembered under the earlier ETag, or restoring the earlier bytes (a
    restore from backup) would be answered with the later record."""
    key = "parts/part-00004.txt.repro.json"
    client = boto3.client("s3")
    original = client.get_object(Bucket=built, Key=key)["Body"].read()
    target = Part(built, 4).output()
    settings = load_settings()
    changed = json.loads(original)
    changed["task"]["params"]["number"] = "5"
    reset()  # a new process: no record body remembered yet
    with check_epoch():
        warm = [Part(built, number).output().exists() for number in range(SMALL)]
        assert all(warm)  # the prefix is listed now
        client.put_object(Bucket=built, Key=key, Body=json.dumps(changed).encode())
        assert target.read_record(settings).task.params["number"] == "5"
    client.put_object(Bucket=built, Key=key, Body=original)  # the old bytes, the old ETag
    with check_epoch():
        for number in range(SMALL):
            Part(built, number).output().exists()
        assert target.read_record(settings).task.params["number"] == "4"


class _Store:
    """A stand-in S3 API answering ListObjectsV2 for one server's bucket."""

    def __init__(self, endpoint: str, keys: List[str]) -> None:
        self.meta = type("Meta", (), {"endpoint_url": endpoint, "region_name": "us-east-1"})()
        self.keys = keys

    def list_objects_v2(self, **arguments: Any) -> Any:
        found = [k for k in self.keys if k.startswith(arguments["Prefix"])]
        return {"Contents": [{"Key": k, "ETag": '"e"', "Size": 1} for k in found]}


def test_a_listing_of_one_server_never_answers_for_a_bucket_of_the_same_name_on_another() -> None:
    """AWS and a MinIO beside it may each hold a bucket called ``bkt``."""
    here = _Store("http://127.0.0.1:1", [f"p/k{i}" for i in range(5)])
    there = _Store("http://127.0.0.1:2", [])
    with check_epoch():
        for i in range(5):
            s3listing.listed(here, "bkt", f"p/k{i}")  # enough questions: ``here`` is listed
        answer = s3listing.listed(here, "bkt", "p/k1")
        assert answer is not None
        assert answer.exists
        for i in range(5):
            found = s3listing.listed(there, "bkt", f"p/k{i}")
            assert found is None or not found.exists
