"""Signing fails closed: a key that is configured but empty, or required but absent, is an error.

An empty variable is how a missing CI secret looks. Reading it as "no key" would make every
check accept unsigned records, which anyone with write access to the results folder can forge.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pipelines import Merge, Report, build, failure_of, families, make_raw, runs

from luigi_repro import SigningKeyError, load_settings
from luigi_repro.cli import main
from luigi_repro.record import dump_record, parse_record

RECORD = Path("out/merged.txt.repro.json")


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The example pipeline built with a key; returns Merge's genuine record."""
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "team secret")
    make_raw()
    assert build(Report())
    runs()
    return RECORD.read_bytes()


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_an_empty_key_is_an_error_not_unsigned(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A key variable set but empty or blank raises one sentence naming the variable."""
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", value)
    with pytest.raises(SigningKeyError, match="LUIGI_REPRO_HMAC_KEY is set but empty"):
        _ = load_settings().signing_key


def test_required_signatures_need_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """With require_signatures, an unset variable is an error; a set one is the key."""
    monkeypatch.delenv("LUIGI_REPRO_HMAC_KEY", raising=False)
    assert load_settings().signing_key is None
    monkeypatch.setenv("LUIGI_REPRO_REQUIRE_SIGNATURES", "true")
    with pytest.raises(SigningKeyError, match="require_signatures"):
        _ = load_settings().signing_key
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "k")
    assert load_settings().signing_key == b"k"
    monkeypatch.setenv("LUIGI_REPRO_REQUIRE_SIGNATURES", "perhaps")
    with pytest.raises(ValueError, match="require_signatures"):
        load_settings()


def test_forged_record_is_not_accepted_when_the_secret_goes_missing(
    signed: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A forged unsigned record with an emptied key: complete() is False and says why, once."""
    forged = dump_record(parse_record(signed, str(RECORD), b"team secret"))
    RECORD.write_bytes(forged)
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "")
    with caplog.at_level(logging.ERROR, logger="luigi-interface.luigi_repro"):
        assert Merge().complete() is False
        assert Report().complete() is False
        assert Report.bulk_complete([()]) == []
    messages = [r.getMessage() for r in caplog.records if "set but empty" in r.getMessage()]
    assert len(messages) == 1, messages


def test_a_run_stops_before_run_with_an_empty_key(
    signed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run fails with the signing error before run() is called: no output or record changes."""
    Path("raw/a.txt").write_text("changed\n")  # so that Merge's upstream must run again
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "")
    before = {p: p.read_bytes() for p in Path("out").iterdir()}
    error = failure_of(Merge())
    assert isinstance(error, SigningKeyError)
    assert not build(Report())
    assert families(runs()) == []
    assert {p: p.read_bytes() for p in Path("out").iterdir()} == before


def test_cli_exits_2_with_one_sentence(
    signed: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`verify` with an empty key: exit status 2 and the reason, never "up to date"."""
    capsys.readouterr()
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", " ")
    assert main(["verify", "out/report.txt"]) == 2
    assert main(["verify", "--module", "pipelines", "Report"]) == 2
    err = capsys.readouterr().err
    assert "LUIGI_REPRO_HMAC_KEY is set but empty" in err
    assert "Traceback" not in err
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "team secret")
    assert main(["verify", "out/report.txt"]) == 0
