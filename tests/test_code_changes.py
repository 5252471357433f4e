"""A task's code is part of what its record vouches for."""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import pytest
from pipelines import build

from luigi_repro import ReasonKind, Status, judging
from luigi_repro.log import LOGGER_NAME

TEMPLATE = '''
import luigi
from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash


class Helper(luigi.Task):
    """A user-defined base class: its code counts too."""

    def suffix(self):
        return {suffix!r}


class CodeTask(TaskWithCheckingInputHash, Helper):
    """{docstring}"""
{version}
    def output(self):
        return HashableLocalTarget("out/code.txt")

    def run(self):
        # {comment}
        with self.output().open("w") as sink:
            sink.write({expression} + self.suffix())
'''


class Module:
    """Writes ``codepipe.py`` from the template and (re)imports it under the same name."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "codepipe.py"
        self.module: Optional[ModuleType] = None

    def load(
        self,
        expression: str = "'value'",
        comment: str = "a comment",
        docstring: str = "Writes a value.",
        suffix: str = "!",
        version: Optional[str] = None,
        reformat: bool = False,
    ) -> Any:
        line = "" if version is None else f"    code_version = {version!r}\n"
        source = TEMPLATE.format(
            expression=expression, comment=comment, docstring=docstring, suffix=suffix, version=line
        )
        if reformat:
            source = source.replace("def output(self):", "def output(  self  ) :\n\n")
        self.path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        if self.module is None:
            sys.modules.pop("codepipe", None)
            self.module = importlib.import_module("codepipe")
        else:
            self.module = importlib.reload(self.module)
        return self.module.CodeTask


@pytest.fixture
def code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Module:
    """A module whose source each test rewrites."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield Module(tmp_path)
    sys.modules.pop("codepipe", None)


def verdict(task_cls: Any) -> Any:
    with judging(exhaustive=True) as judge:
        return judge.status(task_cls())


def test_comment_docstring_and_formatting_edits_keep_task_complete(code: Module) -> None:
    """Only the meaning of the code counts, not comments, docstrings or layout."""
    assert build(code.load()())
    task_cls = code.load(comment="another comment", docstring="Other words.", reformat=True)
    assert task_cls().complete()


def test_statement_edit_makes_task_stale(code: Module) -> None:
    """Changing what run() computes makes the task CODE_CHANGED under the default policy."""
    assert build(code.load()())
    task_cls = code.load(expression="'other value'")
    result = verdict(task_cls)
    assert result.status is Status.STALE
    assert [r.kind for r in result.reasons] == [ReasonKind.CODE_CHANGED]
    assert result.reasons[0].evidence["old"] != result.reasons[0].evidence["new"]
    assert build(task_cls())
    assert Path("out/code.txt").read_text() == "other value!"


def test_user_base_class_edit_makes_task_stale(code: Module) -> None:
    """Code inherited from the user's own base classes is fingerprinted too."""
    assert build(code.load()())
    assert not code.load(suffix="?")().complete()


def test_code_version_controls_instead_of_source(code: Module) -> None:
    """With code_version set, source edits do not count but a new version does."""
    assert build(code.load(version="1")())
    assert code.load(version="1", expression="'edited'")().complete()
    task_cls = code.load(version="2", expression="'edited'")
    result = verdict(task_cls)
    assert [r.kind for r in result.reasons] == [ReasonKind.CODE_CHANGED]
    assert "code_version changed ('1' -> '2')" in result.reasons[0].message


def test_warn_policy_keeps_task_complete_with_one_warning(
    code: Module, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """on_code_change = warn: still complete, a warning once, and a note in the audit."""
    assert build(code.load()())
    monkeypatch.setenv("LUIGI_REPRO_ON_CODE_CHANGE", "warn")
    task_cls = code.load(expression="'changed'")
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        assert task_cls().complete()
        assert task_cls().complete()
    assert len([r for r in caplog.records if "on_code_change = warn" in r.getMessage()]) == 1
    result = verdict(task_cls)
    assert result.ok
    assert [n.kind for n in result.notes] == [ReasonKind.CODE_CHANGED]


def test_ignore_policy_ignores_code(code: Module, monkeypatch: pytest.MonkeyPatch) -> None:
    """on_code_change = ignore: neither a reason nor a note."""
    assert build(code.load()())
    monkeypatch.setenv("LUIGI_REPRO_ON_CODE_CHANGE", "ignore")
    result = verdict(code.load(expression="'changed'"))
    assert result.ok
    assert result.notes == ()


def test_fingerprint_is_of_the_code_that_was_imported_not_the_file_on_disk(
    code: Module,
) -> None:
    """Editing the source after import does not change what the next record vouches for."""
    task_cls = code.load()
    code.path.write_text(code.path.read_text().replace("'value'", "'edited on disk'"))
    assert build(task_cls())  # runs the imported code, records its fingerprint
    assert Path("out/code.txt").read_text() == "value!"
    assert not code.load(expression="'edited on disk'")().complete()


def test_the_definition_in_use_is_fingerprinted_when_a_name_is_defined_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `if ...: class T` / `else: class T`, an edit to the branch in use is seen."""
    from luigi_repro.codeclosure import code_fingerprint

    monkeypatch.syspath_prepend(str(tmp_path))
    source = textwrap.dedent(
        """
        from luigi_repro import TaskWithCheckingInputHash
        FAST = False
        if FAST:
            class Twice(TaskWithCheckingInputHash):
                def run(self):
                    return 1
        else:
            class Twice(TaskWithCheckingInputHash):
                def run(self):
                    return {value}
        """
    )
    fingerprints = []
    for index, value in enumerate(("2", "3")):
        (tmp_path / f"twice_{index}.py").write_text(source.format(value=value))
        module = importlib.import_module(f"twice_{index}")
        fingerprints.append(code_fingerprint(module.Twice, "xxh3_128"))
    assert fingerprints[0] != fingerprints[1]


def test_a_module_named_like_the_standard_library_is_still_user_code(tmp_path: Path) -> None:
    """A pipeline module called like a stdlib module (colorsys.py) is fingerprinted all the same."""
    import importlib.util

    from luigi_repro.codeclosure import code_fingerprint

    fingerprints = []
    for index, value in enumerate(("1", "2")):
        path = tmp_path / str(index) / "colorsys.py"
        path.parent.mkdir()
        path.write_text(
            "from luigi_repro import TaskWithCheckingInputHash\n"
            "class Shadow(TaskWithCheckingInputHash):\n"
            f"    def run(self):\n        return {value}\n"
        )
        spec = importlib.util.spec_from_file_location("colorsys", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        saved = sys.modules.get("colorsys")
        sys.modules["colorsys"] = module
        try:
            spec.loader.exec_module(module)
            fingerprints.append(code_fingerprint(module.Shadow, "xxh3_128"))
        finally:
            if saved is None:
                sys.modules.pop("colorsys", None)
            else:
                sys.modules["colorsys"] = saved
    assert fingerprints[0] != fingerprints[1]
