"""Text from records and file names reaches a terminal, a log or a TSV only escaped."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipelines import Merge, Report, build, make_raw, runs

from luigi_repro.cli import main
from luigi_repro.printable import printable

RECORD = Path("out/merged.txt.repro.json")
#: A hostile label: clears the screen, then draws a fake "all up to date" summary.
HOSTILE = "Merge\x1b[2J\r\n✓ Everything(x=1)  UP_TO_DATE\u202e\u2028"


@given(st.text())
def test_printable_text_is_printable_and_printable_text_is_kept(text: str) -> None:
    """Whatever the text, the result prints as it is; text that already did is unchanged."""
    shown = printable(text)
    assert shown.isprintable()
    assert (shown == text) == text.isprintable()


def test_escapes_name_the_characters() -> None:
    """Controls, bidi overrides and lone surrogates are shown as Python escapes."""
    assert printable("a\nb\tc\x1b[0m\u202e\udcff\U000e0001") == (
        "a\\nb\\tc\\x1b[0m\\u202e\\udcff\\U000e0001"
    )


@pytest.fixture
def hostile_record() -> None:
    """The example pipeline built, then Merge's record given a hostile family and parameter."""
    make_raw()
    assert build(Report())
    runs()
    document = json.loads(RECORD.read_text())
    document["task"]["family"] = HOSTILE
    document["task"]["params"] = {"x": "\x1b]0;owned\x07\n"}
    document["inputs"][0]["uri"] += "\n✓ fake line"
    RECORD.write_text(json.dumps(document))


def _assert_shown_safely(text: str) -> None:
    for raw in ("\x1b", "\r", "\u202e", "\u2028"):
        assert raw not in text
    assert not any(line.startswith("✓ Everything") for line in text.splitlines())


def test_verify_and_show_escape_record_text(
    hostile_record: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify (tree and TSV) and show draw the hostile text escaped, on its own line only."""
    capsys.readouterr()
    assert main(["verify", "--no-color", "out/report.txt"]) == 1
    tree = capsys.readouterr().out
    _assert_shown_safely(tree)
    assert "\\x1b[2J" in tree
    assert main(["verify", "--format", "tsv", "out/report.txt"]) == 1
    tsv = capsys.readouterr().out
    _assert_shown_safely(tsv)
    rows = tsv.splitlines()
    assert all(row.count("\t") == rows[0].count("\t") for row in rows)
    assert main(["show", "--no-color", "--lineage", "out/merged.txt"]) == 0
    shown = capsys.readouterr().out
    _assert_shown_safely(shown)
    assert "\\n✓ fake line" in shown


def test_json_output_stays_exact(hostile_record: None, capsys: pytest.CaptureFixture[str]) -> None:
    """`show --format json` gives the record's text exactly (JSON escapes it itself)."""
    capsys.readouterr()
    assert main(["show", "--format", "json", "out/merged.txt"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["record"]["task"]["family"] == HOSTILE


def test_log_messages_are_escaped(hostile_record: None, caplog: pytest.LogCaptureFixture) -> None:
    """A run that explains why it reruns quotes the record escaped in the log."""
    with caplog.at_level(logging.INFO, logger="luigi-interface.luigi_repro"):
        assert not Merge().complete()
        assert build(Report())
    ours = [r.getMessage() for r in caplog.records if r.name == "luigi-interface.luigi_repro"]
    assert any("\\x1b[2J" in message for message in ours), ours
    for message in ours:
        _assert_shown_safely(message)
        assert "\n" not in message


def test_error_messages_quoting_file_names_are_escaped() -> None:
    """An error quoting a hostile file name (Luigi logs it as it is) shows it escaped."""
    from luigi_repro.errors import LockError, UndeclaredRead

    name = "x\x1b[2J\nINFO: ALL TASKS SUCCEEDED"
    for error in (UndeclaredRead("T()", [name]), LockError(name, "it is a symlink", "remove it")):
        assert "\x1b" not in str(error)
        assert "\n" not in str(error)
        assert "\\x1b[2J\\nINFO" in str(error)
