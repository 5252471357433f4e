"""S3 targets against moto's standalone server on 127.0.0.1, through boto3 over a real socket."""

from __future__ import annotations

import json
import os
from typing import Any, Dict

import boto3
import luigi
import luigi.format
import pytest
from luigi.contrib.s3 import S3Client, S3Target
from pipelines import build, families, log_run, runs

from luigi_repro import TaskWithCheckingInputHash, judging
from luigi_repro.cli import main
from luigi_repro.fingerprint import hash_bytes
from luigi_repro.record import parse_record
from luigi_repro.targets import HashableFileSystemTarget, HashableS3Target, as_hashable
from luigi_repro.targets.base import FingerprintContext
from luigi_repro.testing import Make, Put, TargetContract, context, fresh_name, write_bytes


class TestS3(TargetContract):
    """HashableS3Target: the ETag stands in for the stat."""

    has_change_token = False  # an ETag follows the content, not the write

    @pytest.fixture
    def make(self, s3_bucket: str) -> Make:
        return lambda name: HashableS3Target(
            f"s3://{s3_bucket}/data/{name}", format=luigi.format.Nop
        )

    @pytest.fixture
    def put(self) -> Put:
        return write_bytes


class TestS3ThroughTheGenericAdapter(TargetContract):
    """The generic file-system adapter also works over a plain S3Target."""

    cheap_recheck = False
    has_change_token = False

    @pytest.fixture
    def make(self, s3_bucket: str) -> Make:
        return lambda name: HashableFileSystemTarget(
            S3Target(f"s3://{s3_bucket}/fs/{name}", format=luigi.format.Nop)
        )

    @pytest.fixture
    def put(self) -> Put:
        return lambda target, data: write_bytes(target.target, data)


def get_object(bucket: str, key: str) -> bytes:
    body: bytes = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def test_same_bytes_uploaded_again_are_not_downloaded(s3_bucket: str) -> None:
    """Re-uploading identical bytes keeps the ETag, so the recorded fingerprint is reused."""
    target = HashableS3Target(f"s3://{s3_bucket}/same.bin", format=luigi.format.Nop)
    write_bytes(target, b"identical bytes")
    first = target.observe(context())
    write_bytes(target, b"identical bytes")
    check = context()
    again = target.observe(check, first)
    assert again.fingerprint == first.fingerprint
    assert (check.counters.files_hashed, check.counters.files_statted) == (0, 1)


def test_multipart_upload_is_fingerprinted_by_content(s3_bucket: str, tmp_path: Any) -> None:
    """A multipart object (ETag "…-N", not an MD5) has the fingerprint of its bytes."""
    data = os.urandom(11 * 1024 * 1024)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    client = S3Client()
    client.put_multipart(str(local), f"s3://{s3_bucket}/big.bin", part_size=5 * 1024 * 1024)
    target = HashableS3Target(f"s3://{s3_bucket}/big.bin")
    observed = target.observe(context())
    assert str(observed.state["etag"]).endswith('-3"')
    assert observed.fingerprint == hash_bytes(data)
    client.put_multipart(str(local), f"s3://{s3_bucket}/big.bin", part_size=5 * 1024 * 1024)
    check = context()
    assert target.observe(check, observed).fingerprint == observed.fingerprint
    assert check.counters.files_hashed == 0  # same parts, same ETag: not downloaded again
    local.write_bytes(data[:-1] + b"\0")
    client.put_multipart(str(local), f"s3://{s3_bucket}/big.bin", part_size=5 * 1024 * 1024)
    assert target.observe(context(), observed).fingerprint != observed.fingerprint


def test_temporary_path_replaces_an_existing_object(s3_bucket: str) -> None:
    """temporary_path() on S3 may replace an existing output (Luigi's refuses)."""
    target = HashableS3Target(f"s3://{s3_bucket}/tp.bin", format=luigi.format.Nop)
    write_bytes(target, b"old")
    with target.temporary_path() as tmp:
        write_bytes(S3Target(tmp, format=luigi.format.Nop), b"new")
    assert get_object(s3_bucket, "tp.bin") == b"new"

    def failing_write() -> None:
        with target.temporary_path() as tmp:
            write_bytes(S3Target(tmp, format=luigi.format.Nop), b"half")
            raise RuntimeError("failed run")

    with pytest.raises(RuntimeError):
        failing_write()
    assert get_object(s3_bucket, "tp.bin") == b"new"
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["tp.bin"]


def test_plain_s3_targets_get_the_s3_view() -> None:
    """An input that is a plain luigi S3Target is fingerprinted through HashableS3Target."""
    view = as_hashable(S3Target("s3://some-bucket/key.csv", client=S3Client()))
    assert isinstance(view, HashableS3Target)
    assert view.uri == "s3://some-bucket/key.csv"


class Upload(luigi.ExternalTask):
    """A raw object placed on S3 by someone else."""

    bucket = luigi.Parameter()

    def output(self) -> S3Target:
        return S3Target(f"s3://{self.bucket}/raw/numbers.txt", format=luigi.format.UTF8)


class Total(TaskWithCheckingInputHash):
    bucket = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return Upload(self.bucket)

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/out/total.txt", format=luigi.format.UTF8)

    def run(self) -> None:
        log_run(self)
        numbers = [int(n) for n in self.input().open("r").read().split()]
        with self.output().open("w") as sink:
            sink.write(f"{sum(numbers)}\n")


class Parity(TaskWithCheckingInputHash):
    bucket = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return Total(self.bucket)

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/out/parity.txt", format=luigi.format.UTF8)

    def run(self) -> None:
        log_run(self)
        total = int(self.input().open("r").read())
        with self.output().open("w") as sink:
            sink.write("even\n" if total % 2 == 0 else "odd\n")


def upload(bucket: str, text: str) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key="raw/numbers.txt", Body=text.encode())


def test_pipeline_on_s3_reruns_exactly_what_changed(s3_bucket: str) -> None:
    """Outputs and records on S3: edits rerun the right tasks, identical results cut off."""
    upload(s3_bucket, "1 2 3")
    assert build(Parity(s3_bucket))
    assert families(runs()) == ["Parity", "Total"]
    record = json.loads(get_object(s3_bucket, "out/total.txt.repro.json"))
    assert record["outputs"][0]["state"]["kind"] == "s3"
    assert record["inputs"][0]["uri"] == f"s3://{s3_bucket}/raw/numbers.txt"
    assert build(Parity(s3_bucket))
    assert runs() == []
    upload(s3_bucket, "3 2 1")  # another raw object, the same total
    assert not Parity(s3_bucket).complete()
    assert build(Parity(s3_bucket))
    assert families(runs()) == ["Total"]  # Parity cut off: same bytes upstream
    upload(s3_bucket, "1 2 4")  # total 7: odd
    assert build(Parity(s3_bucket))
    assert families(runs()) == ["Parity", "Total"]
    assert get_object(s3_bucket, "out/parity.txt") == b"odd\n"


def test_hand_edited_s3_output_is_found_and_audited_from_records(
    s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An S3 output overwritten by hand: OUTPUT_MODIFIED, also in a record-only audit."""
    upload(s3_bucket, "2 2")
    assert build(Parity(s3_bucket))
    runs()
    assert main(["verify", "--format", "json", f"s3://{s3_bucket}/out/parity.txt"]) == 0
    capsys.readouterr()
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="out/total.txt", Body=b"5\n")
    with judging(exhaustive=True) as judge:
        verdict = judge.status(Total(s3_bucket))
    assert verdict.status.value == "OUTPUT_MODIFIED"
    assert main(["verify", "--format", "json", f"s3://{s3_bucket}/out/parity.txt"]) == 1
    document: Dict[str, Any] = json.loads(capsys.readouterr().out)
    statuses = {t["family"]: t["status"] for t in document["tasks"] if t["family"]}
    assert statuses == {"Parity": "STALE", "Total": "OUTPUT_MODIFIED"}


def test_forked_workers_share_s3_records(s3_bucket: str) -> None:
    """With --workers 2 each task runs in a forked child with its own S3 connection."""
    upload(s3_bucket, "3 4")
    assert build(Parity(s3_bucket), workers=2)
    assert families(runs()) == ["Parity", "Total"]
    record = parse_record(get_object(s3_bucket, "out/parity.txt.repro.json"), "parity")
    assert record.outputs[0].uri == f"s3://{s3_bucket}/out/parity.txt"
    assert Parity(s3_bucket).complete()


def test_fresh_name_is_unique() -> None:
    """Helper sanity: every target in these tests gets its own key."""
    assert fresh_name() != fresh_name()


def test_raw_s3_input_is_downloaded_once(s3_bucket: str) -> None:
    """An input object without a record: its fingerprint is remembered with its ETag, so
    later checks do not download it again."""
    upload(s3_bucket, "1 2 3")
    assert build(Parity(s3_bucket))
    runs()
    for _ in range(2):
        with judging() as judge:
            assert judge.is_complete(Parity(s3_bucket))
        assert judge.counters.files_hashed == 0


class S3Lazy(TaskWithCheckingInputHash):
    """Writes its output only if it does not exist yet: the stale-output trap, on S3."""

    bucket = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return Upload(self.bucket)

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/out/lazy.txt")

    def run(self) -> None:
        log_run(self)
        if not self.output().exists():
            with self.output().open("w") as sink:
                sink.write(self.input().open("r").read())


def test_stale_output_is_refused_in_a_versioned_bucket(s3_bucket: str) -> None:
    """With bucket versioning every write is a new version: an unwritten output is caught."""
    boto3.client("s3").put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    upload(s3_bucket, "first")
    assert build(S3Lazy(s3_bucket))
    upload(s3_bucket, "second")
    assert build(S3Lazy(s3_bucket)) is False
    assert not S3Lazy(s3_bucket).complete()


#: Two different 128-byte blocks with one MD5 (the published collision of Wang et al., 2004):
#: uploaded the same way, they get the same ETag.
MD5_TWIN_A = bytes.fromhex(
    "d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f89"
    "55ad340609f4b30283e488832571415a085125e8f7cdc99fd91dbdf280373c5b"
    "d8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0"
    "e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70"
)
MD5_TWIN_B = bytes.fromhex(
    "d131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f89"
    "55ad340609f4b30283e4888325f1415a085125e8f7cdc99fd91dbd7280373c5b"
    "d8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0"
    "e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70"
)


@pytest.mark.parametrize("algorithm", ["sha256", "blake2b"])
@pytest.mark.parametrize("checksum", [False, True])
def test_a_cryptographic_fingerprint_never_trusts_an_etag_alone(
    s3_bucket: str, algorithm: str, checksum: bool
) -> None:
    """An object replaced by its MD5 twin keeps its ETag and size; with a cryptographic
    algorithm the replacement is still seen (by S3's SHA-256 checksum, or by downloading)."""
    import hashlib

    assert MD5_TWIN_A != MD5_TWIN_B
    assert hashlib.md5(MD5_TWIN_A).digest() == hashlib.md5(MD5_TWIN_B).digest()
    client = boto3.client("s3")
    extra = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
    client.put_object(Bucket=s3_bucket, Key="twin.bin", Body=MD5_TWIN_A, **extra)
    target = HashableS3Target(f"s3://{s3_bucket}/twin.bin")
    first = target.observe(FingerprintContext(algorithm, 0, ".repro.json"))
    client.put_object(Bucket=s3_bucket, Key="twin.bin", Body=MD5_TWIN_B, **extra)
    check = FingerprintContext(algorithm, 0, ".repro.json")
    again = target.observe(check, first)
    assert again.state["etag"] == first.state["etag"]
    assert again.fingerprint == hash_bytes(MD5_TWIN_B, algorithm) != first.fingerprint
    if checksum:  # the unchanged object is vouched for by S3's checksum, not downloaded
        unchanged = FingerprintContext(algorithm, 0, ".repro.json")
        assert target.observe(unchanged, again).fingerprint == again.fingerprint
        assert unchanged.counters.files_hashed == 0


class TwinInput(luigi.ExternalTask):
    """A raw S3 object."""

    bucket = luigi.Parameter()

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/raw/twin.bin", format=luigi.format.Nop)


class TwinSize(TaskWithCheckingInputHash):
    """Writes the size of its raw S3 input."""

    bucket = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return TwinInput(self.bucket)

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/out/size.txt")

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source:
            size = len(source.read())
        with self.output().open("w") as sink:
            sink.write(str(size))


def test_a_pipeline_with_sha256_sees_an_input_replaced_by_its_md5_twin(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hash_algorithm = sha256: a raw S3 input swapped for a same-ETag twin makes its reader
    stale, and the rebuild reruns it."""
    monkeypatch.setenv("LUIGI_REPRO_HASH_ALGORITHM", "sha256")
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="raw/twin.bin", Body=MD5_TWIN_A)
    assert build(TwinSize(s3_bucket))
    assert TwinSize(s3_bucket).complete()
    runs()
    client.put_object(Bucket=s3_bucket, Key="raw/twin.bin", Body=MD5_TWIN_B)
    assert TwinSize(s3_bucket).complete() is False
    assert build(TwinSize(s3_bucket))
    assert families(runs()) == ["TwinSize"]
