"""The luigi-repro command: verify, show and adopt, their output formats and exit statuses."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from pipelines import (
    CountParts,
    Report,
    UsesScaled,
    build,
    make_raw,
    runs,
    write_raw,
)

from luigi_repro.cli import main
from luigi_repro.cli.render import Progress
from luigi_repro.fingerprint import Counters

TESTS = Path(__file__).resolve().parent


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    """Run ``luigi-repro ARGS`` in-process; returns (exit status, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def verify_json(capsys: pytest.CaptureFixture[str], *args: str) -> Tuple[int, Dict[str, Any]]:
    code, out, _ = cli("verify", "--format", "json", *args, capsys=capsys)
    return code, json.loads(out)


def by_family(document: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {task["label"]: task for task in document["tasks"]}


def reason_kinds(task: Dict[str, Any]) -> List[str]:
    return [reason["kind"] for reason in task["reasons"]]


@pytest.fixture
def built() -> None:
    """The example pipeline of tests/pipelines.py, built."""
    make_raw()
    assert build(Report())
    runs()


def test_verify_up_to_date_pipeline_exits_0_with_a_tree_and_summary(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clean pipeline: exit 0, every task UP_TO_DATE, a summary line with the counts."""
    code, out, err = cli("verify", "--module", "pipelines", "Report", capsys=capsys)
    assert code == 0, err
    assert "Report(scale=1)  UP_TO_DATE" in out
    assert "Clean(name=a)  UP_TO_DATE" in out
    assert "\x1b[" not in out  # no colour when not on a terminal
    assert "6 tasks (all up to date)" in out.splitlines()[-1]
    assert "files statted" in out


def test_verify_json_has_the_documented_schema(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The JSON report carries schema, mode, ok, roots, tasks and a summary with counters."""
    code, document = verify_json(capsys, "--module", "pipelines", "Report")
    assert code == 0
    assert set(document) == {
        "schema",
        "mode",
        "ok",
        "roots",
        "notes",
        "changed_only",
        "tasks",
        "reason_counts",
        "summary",
    }
    assert document["schema"] == 1
    assert document["mode"] == "tasks"
    assert document["ok"] is True
    assert document["changed_only"] is False
    assert document["reason_counts"] == {}
    assert set(document["summary"]) == {
        "tasks",
        "not_up_to_date",
        "restorable",
        "files_statted",
        "files_hashed",
        "bytes_hashed",
        "seconds",
    }
    task = document["tasks"][0]
    assert set(task) == {
        "task_id",
        "family",
        "label",
        "kind",
        "status",
        "ok",
        "reasons",
        "notes",
        "upstream",
        "outputs",
        "restorable",
    }
    assert task["restorable"] is None  # no run cache configured
    assert document["summary"]["restorable"] == 0
    assert document["roots"] == [task["task_id"]]
    kinds = {t["label"]: t["kind"] for t in document["tasks"]}
    assert kinds["Report(scale=1)"] == "checked"
    assert kinds["HashableExternalFile(path=raw/a.txt)"] == "external"


def test_verify_names_exactly_the_edited_input_and_its_downstream_tasks(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """After editing raw/a.txt: exit 1, Clean(a) INPUT_CHANGED with fingerprints, Clean(b) ok."""
    write_raw("a", "edited\n")
    code, document = verify_json(capsys, "--module", "pipelines", "Report")
    assert code == 1
    tasks = by_family(document)
    clean_a = tasks["Clean(name=a)"]
    assert reason_kinds(clean_a) == ["INPUT_CHANGED"]
    evidence = clean_a["reasons"][0]["evidence"]
    assert evidence["uri"] == os.path.abspath("raw/a.txt")
    assert evidence["old"].startswith("xxh3_128:")
    assert evidence["new"] != evidence["old"]
    assert tasks["Clean(name=b)"]["ok"] is True
    for label in ("Merge()", "Report(scale=1)"):
        assert reason_kinds(tasks[label]) == ["UPSTREAM_NOT_UP_TO_DATE"]
    code, out, _ = cli("verify", "--module", "pipelines", "Report", capsys=capsys)
    assert code == 1
    assert "INPUT_CHANGED: input requires() (" in out
    assert "raw/a.txt) changed (xxh3_128:" in out


def test_verify_reports_parameter_changes_old_to_new(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another parameter value on the command line: PARAMS_CHANGED with old -> new."""
    code, document = verify_json(capsys, "--module", "pipelines", "Report", "--scale", "3")
    assert code == 1
    report = by_family(document)["Report(scale=3)"]
    assert reason_kinds(report) == ["PARAMS_CHANGED"]
    assert report["reasons"][0]["evidence"]["params"] == {"scale": {"old": "1", "new": "3"}}


def test_family_parameter_overrides_reach_tasks_made_in_requires(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--Scaled-factor 5 changes the Scaled() task created inside UsesScaled.requires()."""
    assert build(UsesScaled())
    code, document = verify_json(capsys, "--module", "pipelines", "UsesScaled")
    assert code == 0
    code, document = verify_json(
        capsys, "--module", "pipelines", "UsesScaled", "--Scaled-factor", "5"
    )
    assert code == 1
    scaled = by_family(document)["Scaled(factor=5)"]
    assert scaled["reasons"][0]["evidence"]["params"] == {"factor": {"old": "1", "new": "5"}}


def test_verify_reports_modified_outputs_and_missing_or_bad_records(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """OUTPUT_MODIFIED, NO_RECORD, BAD_RECORD and MISSING_OUTPUT each show up with evidence."""
    Path("out/report.txt").write_text("forged\n")
    Path("out/merged.txt.repro.json").unlink()
    Path("out/clean_b.txt.repro.json").write_text("{not json")
    Path("out/clean_a.txt").unlink()
    code, document = verify_json(capsys, "--module", "pipelines", "Report")
    assert code == 1
    tasks = by_family(document)
    assert tasks["Report(scale=1)"]["status"] == "OUTPUT_MODIFIED"
    assert tasks["Merge()"]["status"] == "NO_RECORD"
    assert tasks["Clean(name=b)"]["status"] == "BAD_RECORD"
    assert "not valid JSON" in tasks["Clean(name=b)"]["reasons"][0]["message"]
    assert tasks["Clean(name=a)"]["status"] == "MISSING_OUTPUT"
    modified = tasks["Report(scale=1)"]["reasons"][0]["evidence"]
    assert modified["old"] != modified["new"]


def test_verify_names_the_file_that_changed_inside_a_folder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """For a folder output, the evidence says which files were added, removed or changed."""
    make_raw()
    write_raw("a", "one\ntwo\nthree\n")
    assert build(CountParts())
    Path("out/parts/part-1.txt").write_text("TWO\n")
    Path("out/parts/part-2.txt").unlink()
    Path("out/parts/extra.txt").write_text("x\n")
    code, document = verify_json(capsys, "--module", "pipelines", "CountParts")
    assert code == 1
    tasks = by_family(document)
    evidence = tasks["Partitioned()"]["reasons"][0]["evidence"]
    assert (evidence["changed"], evidence["removed"], evidence["added"]) == (
        ["part-1.txt"],
        ["part-2.txt"],
        ["extra.txt"],
    )
    downstream = tasks["CountParts()"]["reasons"]
    assert [r["kind"] for r in downstream] == ["INPUT_CHANGED", "UPSTREAM_NOT_UP_TO_DATE"]
    assert downstream[0]["evidence"]["changed"] == ["part-1.txt"]
    code, out, _ = cli("verify", "--module", "pipelines", "CountParts", capsys=capsys)
    assert "changed: part-1.txt" in out
    assert "removed: part-2.txt" in out


def test_verify_reports_code_changes(
    built: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task whose code fingerprint differs from its record is CODE_CHANGED."""
    import pipelines

    monkeypatch.setattr(pipelines.Merge, "code_version", "2")
    code, document = verify_json(capsys, "--module", "pipelines", "Report")
    assert code == 1
    merge = by_family(document)["Merge()"]
    assert reason_kinds(merge) == ["CODE_CHANGED"]
    assert "code_version changed (None -> '2')" in merge["reasons"][0]["message"]


def test_tsv_format_has_one_row_per_task(built: None, capsys: pytest.CaptureFixture[str]) -> None:
    """--format tsv: a header and one tab-separated row per task (``restorable`` is empty
    without a run cache)."""
    code, out, _ = cli(
        "verify", "--format", "tsv", "--module", "pipelines", "Report", capsys=capsys
    )
    assert code == 0
    lines = out.splitlines()
    header = ["task_id", "family", "kind", "status", "ok", "reasons", "restorable"]
    assert lines[0].split("\t") == header
    assert len(lines) == 1 + 6
    assert all(len(line.split("\t")) == 7 for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "--module", "pipelines", "NoSuchTask"], "NoSuchTask"),
        (["verify", "--module", "no_such_module_x", "Report"], "cannot import the pipeline"),
        (["verify"], "nothing to verify"),
        (["verify", "missing-file.txt", "--format", "json"], "not found"),
        (["frobnicate"], "unknown command"),
        (["show", "missing-file.txt"], "no such file"),
    ],
)
def test_usage_errors_exit_2_with_one_sentence(
    args: List[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Usage and environment errors: exit 2, a clear message, no traceback."""
    code, _, err = cli(*args, capsys=capsys)
    assert code == 2
    assert message.lower() in err.lower() or "error" in err.lower()
    assert "Traceback" not in err


def test_unknown_task_flag_is_a_usage_error(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flag the task does not have is refused by Luigi's own parser: exit 2."""
    code, _, err = cli("verify", "--module", "pipelines", "Report", "--nope", "1", capsys=capsys)
    assert code == 2
    assert "--nope" in err


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """--debug adds the traceback to an error."""
    code, _, err = cli(
        "verify", "--debug", "--module", "pipelines", "Report", "--scale", "x", capsys=capsys
    )
    assert code == 2
    assert "Traceback" in err


def test_record_only_audit_needs_no_pipeline_code(built: None, tmp_path: Path) -> None:
    """verify PATH from another folder, with the pipeline not importable, audits from records."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = str(Path("out/report.txt").resolve())
    command = [sys.executable, "-m", "luigi_repro", "verify", "--format", "json", report]
    result = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["mode"] == "paths"
    labels = sorted(t["label"] for t in document["tasks"] if t["kind"] == "recorded")
    assert labels == ["Clean(name=a)", "Clean(name=b)", "Merge()", "Report(scale=1)"]
    assert sum(1 for t in document["tasks"] if t["kind"] == "raw") == 2
    assert "parameters and code are not checked" in document["notes"][0]
    Path("raw/b.txt").write_text("changed\n")
    result = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    tasks = by_family(json.loads(result.stdout))
    assert reason_kinds(tasks["Clean(name=b)"]) == ["INPUT_CHANGED"]
    assert reason_kinds(tasks["Report(scale=1)"]) == ["UPSTREAM_NOT_UP_TO_DATE"]


def test_record_only_audit_follows_a_copied_results_folder(
    built: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy of the whole project elsewhere is audited by locations relative to its records."""
    copy = tmp_path / "copy"
    shutil.copytree(Path.cwd(), copy)
    shutil.rmtree("out")  # the original is gone: only the copy can vouch
    code, document = verify_json(capsys, str(copy / "out" / "report.txt"))
    assert code == 0, document
    (copy / "raw" / "a.txt").write_text("changed\n")
    code, document = verify_json(capsys, str(copy / "out" / "report.txt"))
    assert code == 1
    assert reason_kinds(by_family(document)["Clean(name=a)"]) == ["INPUT_CHANGED"]


def test_verify_path_without_record_is_no_record(capsys: pytest.CaptureFixture[str]) -> None:
    """Auditing a file that has no record: NO_RECORD, exit 1."""
    Path("plain.txt").write_text("x")
    code, document = verify_json(capsys, "plain.txt")
    assert code == 1
    assert document["tasks"][0]["status"] == "NO_RECORD"


def test_show_prints_provenance_and_lineage(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """show: task, parameters, run, software, inputs; --lineage draws down to raw inputs."""
    code, out, _ = cli("show", "out/report.txt", "--lineage", capsys=capsys)
    assert code == 0
    assert "Report(scale=1)" in out
    assert "pipelines.Report" in out
    assert "python " in out
    assert "luigi " in out
    assert os.path.abspath("out/merged.txt") in out
    lineage = out.split("lineage", 1)[1]
    for label in ("Merge()", "Clean(name=a)", "Clean(name=b)", "raw input"):
        assert label in lineage
    code, out, _ = cli("show", "--format", "json", "--lineage", "out/report.txt", capsys=capsys)
    document = json.loads(out)
    assert document["record"]["task"]["family"] == "Report"
    assert len(document["lineage"]) == 6


def test_show_lineage_of_a_copied_results_folder_names_the_copys_files(
    built: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """show --lineage walks the records as verify PATH does: in a copy, the copy's inputs."""
    copy = tmp_path / "copy"
    shutil.copytree(Path.cwd(), copy)
    shutil.rmtree("out")
    shutil.rmtree("raw")  # the original is gone: every location drawn must be the copy's
    code, out, _ = cli(
        "show", "--format", "json", "--lineage", str(copy / "out" / "report.txt"), capsys=capsys
    )
    assert code == 0
    document = json.loads(out)
    inputs = [uri for node in document["lineage"] for uri in node.get("inputs", [])]
    assert inputs
    assert all(uri.startswith(str(copy)) for uri in inputs), inputs
    raws = [node for node in document["lineage"] if node.get("raw")]
    assert raws
    assert all(node["exists"] for node in raws)


def test_show_without_record_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """show of a file nothing vouches for says so and exits 1."""
    Path("plain.txt").write_text("x")
    code, _, err = cli("show", "plain.txt", capsys=capsys)
    assert code == 1
    assert "has no record" in err


def test_adopt_then_verify_is_all_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    """Outputs made without luigi_repro: adopt records them, then verify is clean, nothing ran."""
    make_raw()
    Path("out").mkdir()
    Path("out/clean_a.txt").write_text("hello\n")
    Path("out/clean_b.txt").write_text("world\n")
    Path("out/merged.txt").write_text("hello\nworld\n")
    Path("out/report.txt").write_text("hello\nworld\n")
    code, _, _ = cli("verify", "--module", "pipelines", "Report", capsys=capsys)
    assert code == 1
    code, out, _ = cli("adopt", "--yes", "--module", "pipelines", "Report", capsys=capsys)
    assert code == 0
    assert "Adopted 4 task(s)" in out
    code, out, _ = cli("verify", "--module", "pipelines", "Report", capsys=capsys)
    assert code == 0, out
    assert runs() == []
    code, out, _ = cli("show", "out/report.txt", capsys=capsys)
    assert "[adopted" in out


def test_adopt_leaves_missing_and_changed_tasks_alone(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """adopt never vouches for a missing output or hides a recorded change."""
    write_raw("a", "changed\n")
    Path("out/merged.txt").unlink()
    code, out, _ = cli("adopt", "--yes", "--module", "pipelines", "Report", capsys=capsys)
    assert code == 0
    assert "Nothing to adopt" in out
    assert "Clean(name=a): its record shows a change" in out
    assert "Merge(): a task it requires is not up to date" in out


def test_adopt_skips_missing_outputs_missing_inputs_and_dynamic_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """adopt records nothing it cannot vouch for: no output, no input, or unknown inputs."""
    write_raw("a", "Hello\n")  # raw/b.txt is missing
    Path("out").mkdir()
    Path("out/clean_a.txt").write_text("hello\n")
    Path("out/clean_b.txt").write_text("world\n")
    code, out, _ = cli("adopt", "--yes", "--module", "pipelines", "Merge", capsys=capsys)
    assert code == 0
    assert "adopt  Clean(name=a)" in out
    assert "Clean(name=b): a task it requires is not up to date" in out
    assert "Merge(): a task it requires is not up to date" in out
    Path("raw/names.txt").write_text("a")
    Path("out/dynamic.txt").write_text("hello\n")
    code, out, _ = cli("adopt", "--yes", "--module", "test_run_protocol", "Dynamic", capsys=capsys)
    assert "Dynamic(): its run() yields dynamic dependencies" in out
    assert not Path("out/dynamic.txt.repro.json").exists()


def test_adopt_replaces_an_unusable_record_only_with_force(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged or unreadable record is not silently overwritten: --force is required."""
    Path("out/merged.txt.repro.json").write_text("{forged")
    code, out, _ = cli("adopt", "--yes", "--module", "pipelines", "Merge", capsys=capsys)
    assert "--force adopts it anyway" in out
    assert Path("out/merged.txt.repro.json").read_text() == "{forged"
    code, out, _ = cli("adopt", "--yes", "--force", "--module", "pipelines", "Merge", capsys=capsys)
    assert code == 0
    assert "Adopted 1 task(s)" in out
    code, _, _ = cli("verify", "--module", "pipelines", "Merge", capsys=capsys)
    assert code == 0


def test_own_option_after_the_task_gets_a_hint(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--format after the task is refused by Luigi's parser, with a hint to move it."""
    code, _, err = cli(
        "verify", "--module", "pipelines", "Report", "--format", "json", capsys=capsys
    )
    assert code == 2
    assert "before --module" in err


def test_adopt_without_yes_and_without_terminal_refuses(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no terminal to ask on and no --yes, adopt records nothing and exits 2."""
    make_raw()
    Path("out").mkdir()
    Path("out/clean_a.txt").write_text("hello\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = cli("adopt", "--module", "pipelines", "Clean", "--name", "a", capsys=capsys)
    assert code == 2
    assert "--yes" in err
    assert not Path("out/clean_a.txt.repro.json").exists()


def test_console_script_and_module_entry_points(built: None) -> None:
    """The installed luigi-repro script and python -m luigi_repro both work."""
    script = shutil.which("luigi-repro")
    assert script is not None
    for command in ([script], [sys.executable, "-m", "luigi_repro"]):
        result = subprocess.run(
            [*command, "verify", "--module", "pipelines", "Report"],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert "all up to date" in result.stdout


def test_progress_line_appears_only_after_the_delay_on_a_terminal() -> None:
    """The progress bar draws on a terminal once hashing lasts, and never on a pipe."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    counters = Counters(files_statted=3, files_hashed=2, bytes_hashed=2048)
    terminal = Terminal()
    with Progress(counters, stream=terminal, delay=0.0):
        import time

        time.sleep(0.3)
    assert "checking: 3 files statted, 2 hashed, 2.0 KiB read" in terminal.getvalue()
    pipe = io.StringIO()
    with Progress(counters, stream=pipe, delay=0.0):
        time.sleep(0.1)
    assert pipe.getvalue() == ""


def test_full_rereads_everything_and_cached_checks_read_nothing(
    built: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--full hashes every file again; a normal warm check of settled files hashes none."""
    monkeypatch.setenv("LUIGI_REPRO_RACY_WINDOW", "0")
    verify_json(capsys, "--module", "pipelines", "Report")  # settles the caches
    _, warm = verify_json(capsys, "--module", "pipelines", "Report")
    assert warm["summary"]["files_hashed"] == 0
    _, full = verify_json(capsys, "--full", "--module", "pipelines", "Report")
    assert full["summary"]["files_hashed"] == 6  # 4 outputs and 2 raw inputs
    assert full["summary"]["bytes_hashed"] > 0


def test_python_api_returns_the_report_the_command_prints(built: None) -> None:
    """luigi_repro.verify(task) gives the same verdicts as `luigi-repro verify`."""
    import luigi_repro

    write_raw("b", "changed\n")
    report = luigi_repro.verify(Report())
    assert not report.ok
    stale = sorted(task.family for task in report.tasks.values() if not task.ok)
    assert stale == ["Clean", "Merge", "Report"]
    assert report.to_json()["ok"] is False


def test_colour_only_when_asked_or_on_a_terminal(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--color forces ANSI colours; the default on a pipe has none."""
    _, out, _ = cli("verify", "--color", "--module", "pipelines", "Report", capsys=capsys)
    assert "\x1b[32m" in out
    _, out, _ = cli("verify", "--module", "pipelines", "Report", capsys=capsys)
    assert "\x1b[" not in out


def test_audit_of_an_original_and_its_copy_judges_each_place(
    built: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two copies of one result are two nodes: tampering with either one is reported."""
    copy = tmp_path / "backup"
    shutil.copytree("out", copy / "out")
    shutil.copytree("raw", copy / "raw")
    Path("out/report.txt").write_text("tampered\n")
    code, document = verify_json(capsys, "out/report.txt", str(copy / "out" / "report.txt"))
    assert code == 1
    roots = [t for t in document["tasks"] if t["task_id"] in document["roots"]]
    assert len(roots) == 2
    assert sorted(t["status"] for t in roots) == ["OUTPUT_MODIFIED", "UP_TO_DATE"]


def test_audit_sees_an_upstream_run_that_did_not_finish(
    built: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """An input whose producer keeps records but has none (a crash mid-run) is NO_RECORD."""
    Path("out/clean_b.txt.repro.json").unlink()  # as left by a run killed after step 4
    code, document = verify_json(capsys, "out/report.txt")
    assert code == 1
    clean_b = next(t for t in document["tasks"] if t["task_id"].endswith("clean_b.txt"))
    assert clean_b["status"] == "NO_RECORD"
    assert "did not finish" in clean_b["reasons"][0]["message"]
