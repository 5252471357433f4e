"""Records are data that anyone with write access may have written: hostile ones included.

Whatever bytes sit where a record belongs, ``complete()`` and the audits answer without raising,
and nothing in them is ever executed. With a signing key configured, an unsigned, altered or
foreign-signed record is never trusted.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipelines import Merge, Report, build, families, make_raw, runs
from strategies import json_documents

from luigi_repro import Status, audit_paths, judging
from luigi_repro.cli import main
from luigi_repro.record import dump_record, parse_record

RECORD = Path("out/merged.txt.repro.json")
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def built(tmp_path: Path) -> bytes:
    """The example pipeline built once; returns Merge's genuine record."""
    make_raw()
    assert build(Report())
    runs()
    return RECORD.read_bytes()


def judge_everything() -> None:
    """complete() on every task and a record-only audit: may say no, may never raise."""
    assert Report().complete() in (True, False)
    assert Merge().complete() in (True, False)
    with judging(exhaustive=True) as judge:
        judge.status(Report())
    audit_paths(["out/report.txt"])


class _Payload:
    def __reduce__(self) -> Any:
        return (Path("EXECUTED").write_text, ("pwned",))


@FUZZ
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_as_a_record(built: bytes, data: bytes) -> None:
    """Random bytes where a record belongs: no exception, not complete."""
    RECORD.write_bytes(data)
    judge_everything()
    assert Merge().complete() is False


@FUZZ
@given(document=json_documents)
def test_arbitrary_json_as_a_record(built: bytes, document: Any) -> None:
    """Any JSON, including valid records with one part replaced or removed: no exception."""
    RECORD.write_text(json.dumps(document))
    judge_everything()


@FUZZ
@given(cut=st.integers(min_value=0), flip=st.integers(min_value=0, max_value=255))
def test_corrupted_genuine_record(built: bytes, cut: int, flip: int) -> None:
    """The genuine record truncated or with one byte changed: no exception."""
    position = cut % len(built)
    RECORD.write_bytes(built[:position] + bytes([built[position] ^ (flip or 1)]))
    judge_everything()
    position = cut % len(built.rstrip())  # without its final newline a record is still whole
    RECORD.write_bytes(built[:position])
    judge_everything()
    assert Merge().complete() is False


@pytest.mark.parametrize("uri", ["s3://no-such-bucket/0", "s3://", "s3:///key", "hdfs://x/y"])
def test_records_naming_unreachable_places(built: bytes, s3_bucket: str, uri: str) -> None:
    """Inputs and outputs in a bucket that does not exist (the backend raises on every call):
    not complete, audits report it, nothing raises."""
    document = json.loads(built)
    for index, fingerprint in enumerate([document["inputs"][0]["fingerprint"], None]):
        dynamic = dict(document["inputs"][0], dynamic=True, uri=uri, key=[index])
        document["inputs"].append(dict(dynamic, fingerprint=fingerprint))
    document["outputs"].append(dict(document["outputs"][0], uri=uri))
    RECORD.write_text(json.dumps(document))
    judge_everything()
    assert Merge().complete() is False
    assert main(["verify", "out/report.txt"]) == 1
    assert main(["verify", "--module", "pipelines", "Report"]) == 1


def test_pickles_are_never_loaded(built: bytes) -> None:
    """A pickle whose loading would run code is a bad record, and the code never runs."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        RECORD.write_bytes(pickle.dumps({"record": _Payload()}, protocol=protocol))
        judge_everything()
        assert main(["verify", "out/report.txt"]) == 1
        assert main(["show", "out/merged.txt"]) == 1
    assert not Path("EXECUTED").exists()


# --- signed records -------------------------------------------------------------------------


def test_signed_records_verify_and_forgeries_do_not(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a key: genuine signed records pass; an edited, unsigned or foreign-signed one is
    BAD_RECORD, for complete() and for both kinds of audit."""
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "team secret")
    make_raw()
    assert build(Report())
    assert families(runs()) == ["Clean", "Clean", "Merge", "Report"]
    genuine = RECORD.read_bytes()
    assert json.loads(genuine)["signature"].startswith("hmac-sha256:")
    assert Report().complete()
    assert main(["verify", "out/report.txt"]) == 0

    record = parse_record(genuine, str(RECORD), b"team secret")
    forged_bytes = dump_record(record)  # someone without the key rewrites the record
    RECORD.write_bytes(forged_bytes)
    with judging(exhaustive=True) as judge:
        verdict = judge.status(Merge())
    assert verdict.status is Status.BAD_RECORD
    assert "unsigned" in verdict.reasons[0].message
    assert main(["verify", "out/report.txt"]) == 1
    assert main(["verify", "--module", "pipelines", "Report"]) == 1

    RECORD.write_bytes(dump_record(record, b"another key"))
    assert not Merge().complete()
    with judging(exhaustive=True) as judge:
        message = judge.status(Merge()).reasons[0].message
    assert "signature does not match" in message

    document = json.loads(genuine)
    document["outputs"][0]["fingerprint"] = "xxh3_128:" + "0" * 32  # an edit, keeping the seal
    RECORD.write_text(json.dumps(document))
    assert not Merge().complete()

    RECORD.write_bytes(genuine)
    assert Report().complete()
    capsys.readouterr()


def test_records_made_before_a_key_was_configured_are_not_trusted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Turning signing on makes existing unsigned records untrusted; a rebuild signs them."""
    make_raw()
    assert build(Report())
    runs()
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "new key")
    assert not Report().complete()
    assert build(Report())
    assert families(runs()) == ["Clean", "Clean", "Merge", "Report"]
    assert Report().complete()
