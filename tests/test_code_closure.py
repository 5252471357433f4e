"""The code fingerprint covers the code closure: the task class and every user helper it reaches."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Set, Tuple

import luigi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipelines import build, families, from_scratch, runs
from strategies import json_values

from luigi_repro import ReasonKind, audit_paths, codereach, judging, verify
from luigi_repro.adoption import plan
from luigi_repro.codeclosure import (
    CodeClosure,
    code_closure,
    code_fingerprint,
    code_version_of,
    diff_parts,
    legacy_code_fingerprint,
    relative_part_key,
)
from luigi_repro.fingerprint import DEFAULT_ALGORITHM
from luigi_repro.log import LOGGER_NAME
from luigi_repro.protocol import RunProtocol
from luigi_repro.status import Reason

LoadModule = Callable[[str], ModuleType]
_counter = itertools.count()


# --- a task class on its own (one module) --------------------------------------------------------


@pytest.fixture
def load_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoadModule:
    """Import Python source from a new file in tmp_path, as a new module each time."""

    def load(source: str) -> ModuleType:
        name = f"repro_fp_variant_{next(_counter)}"
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load


def fingerprint_of(module: ModuleType, name: str, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """The code fingerprint of the class ``name`` in ``module``."""
    return code_fingerprint(getattr(module, name), algorithm)


STATEMENT_BASE = '''
import luigi


class FpStatementTask(luigi.Task):
    """Adds one."""

    n = luigi.IntParameter(default=1)

    def output(self):
        return luigi.LocalTarget(f"out-{self.n}.txt")

    def run(self):
        total = self.n + 1
        with self.output().open("w") as stream:
            stream.write(str(total))
'''

SAME_CODE = {
    "comments": STATEMENT_BASE.replace(
        "    def run(self):\n", "    # Write the total.\n    def run(self):  # the work\n"
    ),
    "class-docstring": STATEMENT_BASE.replace('"""Adds one."""', '"""Adds one, differently."""'),
    "no-class-docstring": STATEMENT_BASE.replace('    """Adds one."""\n', ""),
    "method-docstring": STATEMENT_BASE.replace(
        "    def run(self):\n", '    def run(self):\n        """Write n + 1."""\n'
    ),
    "blank-lines": STATEMENT_BASE.replace("\n\n", "\n\n\n").replace(
        "        total = self.n + 1\n", "\n        total = self.n + 1\n\n"
    ),
    "formatting": STATEMENT_BASE.replace(
        "total = self.n + 1", "total = (self.n\n                 + 1)"
    ).replace('open("w")', "open( 'w' )"),
    "module-code-around": "import os\nHELPER = 1\n" + STATEMENT_BASE + "\nOTHER = 2\n",
}

OTHER_CODE = {
    "constant": STATEMENT_BASE.replace("self.n + 1", "self.n + 2"),
    "operator": STATEMENT_BASE.replace("self.n + 1", "self.n - 1"),
    "default": STATEMENT_BASE.replace("default=1", "default=2"),
    "added-statement": STATEMENT_BASE.replace(
        "            stream.write(str(total))\n",
        "            stream.write(str(total))\n            stream.write('!')\n",
    ),
    "renamed-variable": STATEMENT_BASE.replace("total", "result"),
    "call": STATEMENT_BASE.replace("str(total)", "repr(total)"),
    "added-method": STATEMENT_BASE + "\n    def requires(self):\n        return []\n",
}


@pytest.mark.parametrize("variant", sorted(SAME_CODE))
def test_fingerprint_ignores_non_code(load_module: LoadModule, variant: str) -> None:
    """Comments, docstrings, blank lines and formatting do not change the code fingerprint."""
    base = fingerprint_of(load_module(STATEMENT_BASE), "FpStatementTask")
    changed = fingerprint_of(load_module(SAME_CODE[variant]), "FpStatementTask")
    assert changed == base


@pytest.mark.parametrize("variant", sorted(OTHER_CODE))
def test_fingerprint_follows_statements(load_module: LoadModule, variant: str) -> None:
    """Changing a statement of the task class changes the code fingerprint."""
    base = fingerprint_of(load_module(STATEMENT_BASE), "FpStatementTask")
    changed = fingerprint_of(load_module(OTHER_CODE[variant]), "FpStatementTask")
    assert changed != base


def test_fingerprint_is_stable_and_names_algorithm(load_module: LoadModule) -> None:
    """The same class source gives the same fingerprint, prefixed with the chosen algorithm."""
    first = fingerprint_of(load_module(STATEMENT_BASE), "FpStatementTask")
    second = fingerprint_of(load_module(STATEMENT_BASE), "FpStatementTask")
    other = fingerprint_of(load_module(STATEMENT_BASE), "FpStatementTask", "sha256")
    assert first == second
    assert first.startswith(DEFAULT_ALGORITHM + ":")
    assert other.startswith("sha256:")


BASE_CLASS = '''
import luigi


class FpUserBase(luigi.Task):
    """Shared behaviour."""

    def helper(self):
        return 1


class FpUserChild(FpUserBase):
    def run(self):
        return self.helper()
'''


def test_fingerprint_follows_user_base_class(load_module: LoadModule) -> None:
    """Changing a statement in a user-defined base class changes the subclass's fingerprint."""
    base = fingerprint_of(load_module(BASE_CLASS), "FpUserChild")
    changed = fingerprint_of(load_module(BASE_CLASS.replace("return 1", "return 2")), "FpUserChild")
    assert changed != base


def test_fingerprint_ignores_base_class_docstring(load_module: LoadModule) -> None:
    """A docstring or comment change in a user-defined base class leaves the fingerprint alone."""
    base = fingerprint_of(load_module(BASE_CLASS), "FpUserChild")
    edited = BASE_CLASS.replace('"""Shared behaviour."""', "# shared behaviour, reworded")
    assert fingerprint_of(load_module(edited), "FpUserChild") == base


def test_fingerprint_follows_user_base_class_in_another_module(load_module: LoadModule) -> None:
    """A user-defined base class imported from another module is part of the fingerprint."""
    child = """
    from {base} import FpRemoteBase


    class FpRemoteChild(FpRemoteBase):
        def run(self):
            return self.helper()
    """
    base_source = BASE_CLASS.replace("FpUserBase", "FpRemoteBase").split("class FpUserChild")[0]
    first = load_module(base_source)
    second = load_module(base_source.replace("return 1", "return 2"))
    one = fingerprint_of(load_module(child.format(base=first.__name__)), "FpRemoteChild")
    two = fingerprint_of(load_module(child.format(base=second.__name__)), "FpRemoteChild")
    again = fingerprint_of(load_module(child.format(base=first.__name__)), "FpRemoteChild")
    assert one != two
    assert one == again


@pytest.mark.parametrize(
    "base",
    [
        "luigi.WrapperTask",
        "luigi.ExternalTask",
        "luigi_repro.TaskWithCheckingInputHash",
        "luigi_repro.WrapperTask",
    ],
)
def test_fingerprint_ignores_luigi_classes(load_module: LoadModule, base: str) -> None:
    """The code of Luigi's and luigi_repro's own classes in the bases is not fingerprinted."""
    source = """
    import luigi
    import luigi_repro

    Base = {base}


    class FpLibraryBaseTask(Base):
        def run(self):
            return 1
    """
    reference = fingerprint_of(load_module(source.format(base="luigi.Task")), "FpLibraryBaseTask")
    other = fingerprint_of(load_module(source.format(base=base)), "FpLibraryBaseTask")
    assert other == reference


CODE_VERSION = """
import luigi


class FpVersionedTask(luigi.Task):
    code_version = "2024.1"

    def run(self):
        return 1
"""


def test_code_version_replaces_source(load_module: LoadModule) -> None:
    """Two classes with different source and the same code_version have the same fingerprint."""
    first = load_module(CODE_VERSION)
    second = load_module(CODE_VERSION.replace("return 1", "return 2") + "\n    n = 1\n")
    assert fingerprint_of(first, "FpVersionedTask") == fingerprint_of(second, "FpVersionedTask")
    assert code_version_of(first.FpVersionedTask) == "2024.1"


def test_code_version_change_changes_fingerprint(load_module: LoadModule) -> None:
    """Bumping code_version changes the fingerprint even when the source is otherwise the same."""
    first = fingerprint_of(load_module(CODE_VERSION), "FpVersionedTask")
    bumped = fingerprint_of(
        load_module(CODE_VERSION.replace("2024.1", "2024.2")), "FpVersionedTask"
    )
    unversioned = fingerprint_of(
        load_module(CODE_VERSION.replace('    code_version = "2024.1"\n', "")), "FpVersionedTask"
    )
    assert len({first, bumped, unversioned}) == 3


def test_code_version_of() -> None:
    """code_version_of gives the attribute as a string, or None when it is not set."""

    class FpNoVersionTask(luigi.Task):
        pass

    class FpIntVersionTask(luigi.Task):
        code_version = 3

    assert code_version_of(FpNoVersionTask) is None
    assert code_version_of(FpIntVersionTask) == "3"


def _exec_class(source: str, module_name: str) -> type:
    namespace: Dict[str, Any] = {"__name__": module_name, "luigi": luigi}
    exec(compile(textwrap.dedent(source), "<notebook cell>", "exec"), namespace)
    cls = namespace["FpNotebookTask"]
    assert isinstance(cls, type)
    return cls


NOTEBOOK = """
class FpNotebookTask(luigi.Task):
    def run(self):
        return {value}
"""


def test_fingerprint_without_source_follows_code() -> None:
    """A class without source (made by exec) is fingerprinted by its code, which still counts."""
    one = code_fingerprint(_exec_class(NOTEBOOK.format(value=1), "fp_cell_a"), DEFAULT_ALGORITHM)
    same = code_fingerprint(_exec_class(NOTEBOOK.format(value=1), "fp_cell_b"), DEFAULT_ALGORITHM)
    shifted = code_fingerprint(
        _exec_class("\n\n\n" + NOTEBOOK.format(value=1), "fp_cell_c"), DEFAULT_ALGORITHM
    )
    two = code_fingerprint(_exec_class(NOTEBOOK.format(value=2), "fp_cell_d"), DEFAULT_ALGORITHM)
    assert one == same == shifted
    assert one != two


def test_the_cached_closure_is_the_same_object(load_module: LoadModule) -> None:
    """Asking again for a class's closure is a lookup: the very same object comes back."""
    task_cls = load_module(STATEMENT_BASE).FpStatementTask
    assert code_closure(task_cls, DEFAULT_ALGORITHM) is code_closure(task_cls, DEFAULT_ALGORITHM)
    assert code_closure(task_cls, "sha256") is not code_closure(task_cls, DEFAULT_ALGORITHM)


# --- helpers in other modules --------------------------------------------------------------------


class Project:
    """A small package of modules, written to a folder and imported afresh by every ``load``.

    ``PKG`` in the sources stands for the package's name, unique to the test, so that the
    same module names can be edited and imported again within one test.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.package = f"ccproj{next(_counter)}"
        self.sources: Dict[str, str] = {}

    def write(self, **files: str) -> None:
        """Set the text of modules (``preproc="..."`` is ``PKG/preproc.py``) and write them all."""
        for name, text in files.items():
            self.sources[name] = textwrap.dedent(text).replace("PKG", self.package)
        package = self.folder / self.package
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
        for name, text in self.sources.items():
            (package / f"{name}.py").write_text(text)

    def edit(self, module: str, old: str, new: str) -> None:
        """Replace ``old`` by ``new`` in one module (``old`` must be there)."""
        text = self.sources[module]
        assert old.replace("PKG", self.package) in text, old
        self.write(**{module: text.replace(old.replace("PKG", self.package), new)})

    def forget(self) -> None:
        for name in list(sys.modules):
            if name == self.package or name.startswith(self.package + "."):
                del sys.modules[name]

    def load(self, module: str = "pipeline", name: str = "Task") -> Any:
        """Import ``PKG.<module>`` afresh and return its attribute ``name``."""
        self.forget()
        importlib.invalidate_caches()
        return getattr(importlib.import_module(f"{self.package}.{module}"), name)

    def closure(self, module: str = "pipeline", name: str = "Task") -> CodeClosure:
        return code_closure(self.load(module, name), DEFAULT_ALGORITHM)

    def keys(self, closure: CodeClosure) -> Set[str]:
        """The closure's part keys, with the package name written ``PKG`` again."""
        return {key.replace(self.package, "PKG") for key in closure.parts}

    def changed(self, before: CodeClosure, after: CodeClosure) -> List[str]:
        diff = diff_parts(before.parts, after.parts, "", "")
        return sorted(
            f"{key.replace(self.package, 'PKG')} {what}"
            for what, keys in diff.items()
            for key in keys
        )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A package in tmp_path that the test writes, edits and imports again."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within a second is seen
    made = Project(tmp_path)
    yield made
    made.forget()


PREPROC = """
import math

from PKG.config import THRESHOLD


def _clip(x):
    return min(x, THRESHOLD)


def impute(x):
    return _clip(x) if x is not None else 0.0


def unused():
    return "never reached"
"""

CONFIG = """
THRESHOLD = 0.5
OTHER = 1
"""

PIPELINE = """
from luigi_repro import TaskWithCheckingInputHash

from PKG import preproc


class Task(TaskWithCheckingInputHash):
    def run(self):
        return preproc.impute(1.0)
"""


def test_a_helper_function_edit_is_named(project: Project) -> None:
    """Editing a helper that run() calls changes the fingerprint, naming exactly that function."""
    project.write(preproc=PREPROC, config=CONFIG, pipeline=PIPELINE)
    before = project.closure()
    assert project.keys(before) == {
        "class PKG.pipeline.Task",
        "function PKG.preproc.impute",
        "function PKG.preproc._clip",
        "constant PKG.config.THRESHOLD",
    }
    project.edit("preproc", "else 0.0", "else 1.0")
    after = project.closure()
    assert after.fingerprint != before.fingerprint
    assert project.changed(before, after) == ["function PKG.preproc.impute changed"]


def test_a_constant_edit_is_named(project: Project) -> None:
    """THRESHOLD = 0.5 -> 0.6, imported with `from x import THRESHOLD`, changes its part only."""
    project.write(preproc=PREPROC, config=CONFIG, pipeline=PIPELINE)
    before = project.closure()
    project.edit("config", "THRESHOLD = 0.5", "THRESHOLD = 0.6")
    after = project.closure()
    assert project.changed(before, after) == ["constant PKG.config.THRESHOLD changed"]


def test_edits_outside_the_closure_change_nothing(project: Project) -> None:
    """A function or constant the task never reaches can change freely."""
    project.write(preproc=PREPROC, config=CONFIG, pipeline=PIPELINE)
    before = project.closure()
    project.edit("preproc", '"never reached"', '"still never reached"')
    project.edit("config", "OTHER = 1", "OTHER = 2")
    assert project.closure().fingerprint == before.fingerprint


def test_comments_docstrings_and_formatting_of_helpers_change_nothing(project: Project) -> None:
    """Only what a helper does counts: not its comments, docstring, layout or line numbers."""
    project.write(preproc=PREPROC, config=CONFIG, pipeline=PIPELINE)
    before = project.closure()
    project.edit(
        "preproc",
        "def impute(x):\n    return _clip(x) if x is not None else 0.0",
        '# moved down\n\n\ndef impute(x):\n    """Fill a gap."""\n'
        "    return (_clip(x)  # clipped\n            if x is not None else 0.0)",
    )
    project.edit("config", "THRESHOLD = 0.5", "THRESHOLD = (0.5)  # the cut")
    assert project.closure().fingerprint == before.fingerprint


@pytest.mark.parametrize(
    ("pipeline", "constant"),
    [
        ("import PKG.config as cfg\n\ndef value():\n    return cfg.THRESHOLD\n", "THRESHOLD"),
        ("import PKG.config\n\ndef value():\n    return PKG.config.OTHER\n", "OTHER"),
        ("from PKG import config\n\ndef value():\n    return config.OTHER\n", "OTHER"),
        ("from PKG.config import OTHER as o\n\ndef value():\n    return o\n", "OTHER"),
        ("def value():\n    from PKG.config import OTHER\n    return OTHER\n", "OTHER"),
        ("def value():\n    from . import config\n    return config.OTHER\n", "OTHER"),
        ("def value():\n    import PKG.config as c\n    return c.THRESHOLD\n", "THRESHOLD"),
    ],
    ids=["import-as", "dotted", "from-package", "from-as", "local-from", "relative", "local-as"],
)
def test_constants_are_followed_through_every_kind_of_import(
    project: Project, pipeline: str, constant: str
) -> None:
    """Module attributes and imported names, at module level or inside a function, are followed."""
    task = "\n\nclass Task:\n    def run(self):\n        return value()\n"
    project.write(config=CONFIG, pipeline=pipeline + task)
    keys = project.keys(project.closure())
    assert f"constant PKG.config.{constant}" in keys
    assert "function PKG.pipeline.value" in keys


def test_a_module_imported_only_inside_a_function_is_imported_and_followed(
    project: Project,
) -> None:
    """A helper module not yet imported when the fingerprint is taken is imported to follow it."""
    project.write(
        config=CONFIG,
        lazy="from PKG.config import THRESHOLD\n\ndef f():\n    return THRESHOLD\n",
        pipeline="class Task:\n    def run(self):\n"
        "        from PKG.lazy import f\n        return f()\n",
    )
    task_cls = project.load()
    assert f"{project.package}.lazy" not in sys.modules
    keys = project.keys(code_closure(task_cls, DEFAULT_ALGORITHM))
    assert {"function PKG.lazy.f", "constant PKG.config.THRESHOLD"} <= keys


DECORATED = """
import functools

SIZE = 8


def memo(size):
    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args):
            return func(*args)
        return wrapper
    return decorate


def logged(func):
    def plain_wrapper(*args):
        return func(*args)
    return plain_wrapper


@memo(SIZE)
def impute(x):
    return x or 0


@logged
def scale(x):
    return x * 2
"""


def test_decorators_and_what_they_wrap_are_followed(project: Project) -> None:
    """A decorated helper counts, so do its decorator, the decorator's arguments, and the
    function a wrapper without functools.wraps holds in its closure cell."""
    project.write(
        deco=DECORATED,
        pipeline="from PKG import deco\n\nclass Task:\n"
        "    def run(self):\n        return deco.impute(1) + deco.scale(2)\n",
    )
    before = project.closure()
    assert {
        "function PKG.deco.memo",
        "function PKG.deco.logged",
        "function PKG.deco.impute",
        "function PKG.deco.scale",
        "constant PKG.deco.SIZE",
    } <= project.keys(before)
    project.edit("deco", "return x * 2", "return x * 3")  # reached only through the cell
    middle = project.closure()
    assert project.changed(before, middle) == ["function PKG.deco.scale changed"]
    project.edit("deco", "SIZE = 8", "SIZE = 16")
    assert project.changed(middle, project.closure()) == ["constant PKG.deco.SIZE changed"]


def test_default_arguments_are_followed(project: Project) -> None:
    """A constant used as a default argument value is part of the closure."""
    project.write(
        helpers="FILL = 0\n\ndef impute(x, fill=FILL):\n    return x or fill\n",
        pipeline="from PKG.helpers import impute\n\nclass Task:\n"
        "    def run(self):\n        return impute(None)\n",
    )
    before = project.closure()
    project.edit("helpers", "FILL = 0", "FILL = -1")
    assert project.changed(before, project.closure()) == ["constant PKG.helpers.FILL changed"]


def test_a_class_attribute_target_reaches_its_constants(project: Project) -> None:
    """`data = LocalTarget(os.path.join(BASE, "x.csv"))` reaches BASE; Luigi, os are not parts."""
    project.write(
        config='BASE = "data"\n',
        pipeline="import os\n\nimport luigi\n\nfrom PKG.config import BASE\n\n\n"
        "class Task(luigi.Task):\n"
        '    data = luigi.LocalTarget(os.path.join(BASE, "x.csv"))\n\n'
        "    def run(self):\n        return self.data.path\n",
    )
    before = project.closure()
    assert project.keys(before) == {"class PKG.pipeline.Task", "constant PKG.config.BASE"}
    project.edit("config", '"data"', '"elsewhere"')
    assert project.changed(before, project.closure()) == ["constant PKG.config.BASE changed"]


def test_a_base_class_in_another_module_and_its_helpers_are_followed(project: Project) -> None:
    """The helpers a base class (in its own module) uses count for every subclass."""
    project.write(
        base="import luigi\n\ndef shared():\n    return 1\n\n"
        "class Base(luigi.Task):\n    def helper(self):\n        return shared()\n",
        pipeline="from PKG.base import Base\n\nclass Task(Base):\n"
        "    def run(self):\n        return self.helper()\n",
    )
    before = project.closure()
    assert {"class PKG.base.Base", "function PKG.base.shared"} <= project.keys(before)
    project.edit("base", "return 1", "return 2")
    assert project.changed(before, project.closure()) == ["function PKG.base.shared changed"]


def test_methods_attached_after_the_class_statement_are_followed(project: Project) -> None:
    """`Task.run = helpers.shared_run` brings the helper (and what it uses) into the closure."""
    project.write(
        helpers="VALUE = 1\n\ndef shared_run(self):\n    return VALUE\n",
        pipeline="from PKG import helpers\n\nclass Task:\n    pass\n\n"
        "Task.run = helpers.shared_run\n",
    )
    before = project.closure()
    assert "function PKG.helpers.shared_run" in project.keys(before)
    project.edit("helpers", "VALUE = 1", "VALUE = 2")
    assert project.changed(before, project.closure()) == ["constant PKG.helpers.VALUE changed"]


def test_module_attributes_set_by_the_importing_module_count(project: Project) -> None:
    """`config.MODE = "fast"` where the task's module uses config is part of the closure, and
    config.MODE counts by the value it was changed to."""
    project.write(
        config="MODE = 'slow'\n",
        pipeline="from PKG import config\n\nconfig.MODE = 'fast'\n\n"
        "class Task:\n    def run(self):\n        return config.MODE\n",
    )
    before = project.closure()
    project.edit("pipeline", "config.MODE = 'fast'", "config.MODE = 'faster'")
    assert project.changed(before, project.closure()) == [
        "constant PKG.config.MODE changed",
        "constant PKG.pipeline.config changed",
    ]


def test_a_base_task_made_by_a_factory_counts_with_its_arguments(project: Project) -> None:
    """`Base = make_base(0.5)`; `class Task(Base)`: the factory call's arguments count."""
    project.write(
        bases="import luigi\n\ndef make_base(limit):\n"
        "    class Base(luigi.Task):\n        def cut(self, x):\n            return min(x, limit)\n"
        "    return Base\n",
        pipeline="from PKG.bases import make_base\n\nBase = make_base(0.5)\n\n"
        "class Task(Base):\n    def run(self):\n        return self.cut(1)\n",
    )
    before = project.closure()
    assert {"function PKG.bases.make_base", "constant PKG.pipeline.Base"} <= project.keys(before)
    project.edit("pipeline", "make_base(0.5)", "make_base(0.7)")
    assert project.changed(before, project.closure()) == ["constant PKG.pipeline.Base changed"]


def test_cycles_and_recursion_end(project: Project) -> None:
    """Modules importing each other and functions calling each other are each visited once."""
    project.write(
        even="from PKG import odd\n\ndef is_even(n):\n    return n == 0 or odd.is_odd(n - 1)\n",
        odd="from PKG import even\n\ndef is_odd(n):\n    return n != 0 and even.is_even(n - 1)\n",
        fact="def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n",
        pipeline="from PKG import even, fact\n\nclass Task:\n"
        "    def run(self):\n        return even.is_even(4), fact.fact(3)\n",
    )
    before = project.closure()
    assert {
        "function PKG.even.is_even",
        "function PKG.odd.is_odd",
        "function PKG.fact.fact",
    } <= project.keys(before)
    project.edit("odd", "n != 0", "n > 0")
    assert project.changed(before, project.closure()) == ["function PKG.odd.is_odd changed"]


def test_installed_code_is_not_followed(project: Project) -> None:
    """The standard library, site-packages (attrs), Luigi and luigi_repro contribute no parts."""
    project.write(
        pipeline="import collections\nimport json\nimport os.path\n\nimport attrs\nimport luigi\n"
        "from luigi_repro import HashableLocalTarget\n\n"
        "class Task(luigi.Task):\n"
        "    def output(self):\n"
        "        return HashableLocalTarget(os.path.join('out', 'x.json'))\n\n"
        "    def run(self):\n"
        "        counts = collections.Counter(json.loads('[1, 1]'))\n"
        "        return attrs.asdict, luigi.LocalTarget, counts\n"
    )
    assert project.keys(project.closure()) == {"class PKG.pipeline.Task"}


def test_other_task_classes_count_only_through_their_attributes(project: Project) -> None:
    """Requiring another task does not take in its code (its output is an input already);
    using its attributes (a static helper) does; a luigi.Config always counts."""
    project.write(
        pipeline="import luigi\nfrom luigi.util import requires\n\n"
        "class Settings(luigi.Config):\n    limit = luigi.IntParameter(default=3)\n\n"
        "class Upstream(luigi.Task):\n"
        "    @staticmethod\n    def normalize(x):\n        return x.lower()\n\n"
        "class Other(luigi.Task):\n    pass\n\n"
        "@requires(Upstream)\nclass Task(luigi.Task):\n"
        "    def requires(self):\n        return [Upstream(), Other()]\n\n"
        "    def run(self):\n        return Settings().limit\n\n"
        "class UsesHelper(luigi.Task):\n"
        "    def run(self):\n        return Upstream.normalize('X')\n",
    )
    assert project.keys(project.closure()) == {
        "class PKG.pipeline.Task",
        "class PKG.pipeline.Settings",
    }
    assert "class PKG.pipeline.Upstream" in project.keys(project.closure(name="UsesHelper"))


def test_code_version_replaces_a_class_and_its_closure(project: Project) -> None:
    """With code_version set, helper edits do not count; a subclass without one sees its own."""
    project.write(
        helpers="def used_by_base():\n    return 1\n\ndef used_by_child():\n    return 1\n",
        pipeline="from PKG import helpers\n\n"
        "class Base:\n    code_version = '1'\n\n"
        "    def run(self):\n        return helpers.used_by_base()\n\n"
        "class Task(Base):\n    def more(self):\n        return helpers.used_by_child()\n",
    )
    versioned = project.closure(name="Base")
    child = project.closure()
    assert project.keys(versioned) == {"class PKG.pipeline.Base"}
    project.edit(
        "helpers", "def used_by_base():\n    return 1", "def used_by_base():\n    return 2"
    )
    assert project.closure(name="Base").fingerprint == versioned.fingerprint
    assert project.closure().fingerprint == child.fingerprint
    project.edit(
        "helpers", "def used_by_child():\n    return 1", "def used_by_child():\n    return 2"
    )
    assert project.changed(child, project.closure()) == [
        "function PKG.helpers.used_by_child changed"
    ]


def test_a_constant_bound_dynamically_is_described_by_its_value(project: Project) -> None:
    """A plain value bound where the source cannot show it (globals()[...] = ...) counts by value;
    anything else is listed as unresolved."""
    project.write(
        config="globals()['LIMIT'] = 5\nglobals()['HANDLE'] = object()\n",
        pipeline="from PKG import config\n\nclass Task:\n"
        "    def run(self):\n        return config.LIMIT, config.HANDLE\n",
    )
    before = project.closure()
    assert "constant PKG.config.LIMIT" in project.keys(before)
    assert [line.replace(project.package, "PKG") for line in before.unresolved] == [
        "constant PKG.config.HANDLE (bound where the source does not show it, "
        "and not plain data: a object)"
    ]
    project.edit("config", "= 5", "= 6")
    assert project.changed(before, project.closure()) == ["constant PKG.config.LIMIT changed"]


def test_mutations_and_conditions_of_a_constant_count(project: Project) -> None:
    """`COLUMNS.append(...)` after the binding, and the `if` around a binding, are part of it."""
    project.write(
        config="import os\nCOLUMNS = ['a']\nCOLUMNS.append('b')\n"
        "if os.environ.get('FAST'):\n    LIMIT = 1\nelse:\n    LIMIT = 2\n",
        pipeline="from PKG.config import COLUMNS, LIMIT\n\nclass Task:\n"
        "    def run(self):\n        return COLUMNS, LIMIT\n",
    )
    before = project.closure()
    project.edit("config", "COLUMNS.append('b')", "COLUMNS.append('c')")
    middle = project.closure()
    assert project.changed(before, middle) == ["constant PKG.config.COLUMNS changed"]
    project.edit("config", "'FAST'", "'SLOW'")
    assert project.changed(middle, project.closure()) == ["constant PKG.config.LIMIT changed"]


DYNAMIC = """
import importlib
import sys

from PKG import preproc


def by_getattr(name):
    return getattr(preproc, name)


def by_exec(code):
    exec(code)
    return eval(code)


def by_import(name):
    return importlib.import_module(name), __import__(name)


def by_globals(name):
    return globals()[name], sys.modules[name]


def followed(task):
    return getattr(preproc, "impute"), getattr(task, "anything"), getattr(task, task.name)
"""


def test_references_that_cannot_be_followed_are_listed_once(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    """getattr on a user module with a computed name, exec, eval, dynamic imports and globals()
    lookups are listed with where they are and logged once; a constant getattr is followed."""
    project.write(
        preproc=PREPROC,
        config=CONFIG,
        dynamic=DYNAMIC,
        pipeline="from PKG import dynamic\n\nclass Task:\n    def run(self):\n"
        "        return (dynamic.by_getattr, dynamic.by_exec, dynamic.by_import,\n"
        "                dynamic.by_globals, dynamic.followed)\n",
    )
    task_cls = project.load()
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        closure = code_closure(task_cls, DEFAULT_ALGORITHM)
        code_closure(task_cls, "sha256")
    where = "in function PKG.dynamic."
    assert [line.replace(project.package, "PKG") for line in closure.unresolved] == sorted(
        [
            f"__import__(<non-constant>) {where}by_import",
            f"eval() {where}by_exec",
            f"exec() {where}by_exec",
            f"getattr(preproc, name) {where}by_getattr",
            f"globals()[...] {where}by_globals",
            f"importlib.import_module(<non-constant>) {where}by_import",
            f"sys.modules[...] {where}by_globals",
        ]
    )
    assert "function PKG.preproc.impute" in project.keys(closure)
    warnings = [r.getMessage() for r in caplog.records if "cannot follow" in r.getMessage()]
    assert len(warnings) == 1
    assert "getattr(preproc, name)" in warnings[0]


def test_a_module_imported_by_a_constant_name_is_followed_whole(project: Project) -> None:
    """importlib.import_module("pkg.mod") takes in everything the module defines."""
    project.write(
        config=CONFIG,
        pipeline="import importlib\n\nclass Task:\n    def run(self):\n"
        "        return importlib.import_module('PKG.config').THRESHOLD\n",
    )
    assert {"constant PKG.config.THRESHOLD", "constant PKG.config.OTHER"} <= project.keys(
        project.closure()
    )


def test_the_source_is_the_one_imported_not_the_file_edited_since(project: Project) -> None:
    """A helper edited on disk after the task class was created does not change the closure."""
    project.write(preproc=PREPROC, config=CONFIG, pipeline=PIPELINE)
    original = project.closure()
    task_cls = project.load()
    project.edit("preproc", "else 0.0", "else 5.0")  # on disk only: the import already ran
    assert code_closure(task_cls, DEFAULT_ALGORITHM).fingerprint == original.fingerprint


def test_code_without_source_reaches_helpers_through_its_bytecode(project: Project) -> None:
    """A class made by exec that calls a helper module still has the helper in its closure."""
    project.write(preproc=PREPROC, config=CONFIG)
    namespace: Dict[str, Any] = {
        "__name__": "cc_cell",
        "pp": importlib.import_module(f"{project.package}.preproc"),
    }
    exec("class Cell:\n    def run(self):\n        return pp.impute(2)\n", namespace)
    keys = project.keys(code_closure(namespace["Cell"], DEFAULT_ALGORITHM))
    assert {"class cc_cell.Cell", "function PKG.preproc.impute"} <= keys


def test_the_task_module_name_does_not_count() -> None:
    """A task run as __main__ or as its module has one fingerprint: its own module is left out."""
    assert relative_part_key("class pipeline.Train", "pipeline") == "class .Train"
    assert relative_part_key("class __main__.Train", "__main__") == "class .Train"
    assert relative_part_key("function pipeline2.f", "pipeline") == "function pipeline2.f"
    moved = diff_parts(
        {"class __main__.T": "a", "function utils.f": "b"},
        {"class pipeline.T": "a", "function utils.f": "c"},
        "__main__",
        "pipeline",
    )
    assert moved == {"changed": ["function utils.f"], "added": [], "removed": []}


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.sampled_from("xyz")),
    st.dictionaries(st.sampled_from("abcdef"), st.sampled_from("xyz")),
)
def test_diff_parts_names_every_difference(old: Dict[str, str], new: Dict[str, str]) -> None:
    """Changed, added and removed keys are exactly the differences, each once."""
    diff = diff_parts(old, new, "m", "m")
    assert diff["added"] == sorted(set(new) - set(old))
    assert diff["removed"] == sorted(set(old) - set(new))
    assert diff["changed"] == sorted(k for k in set(old) & set(new) if old[k] != new[k])


@given(json_values, json_values)
def test_a_dynamic_constant_changes_exactly_when_its_value_does(first: Any, second: Any) -> None:
    """Two plain values give the same part digest exactly when they are equal (and same-typed)."""
    digests = []
    for value in (first, second):
        namespace: Dict[str, Any] = {"__name__": f"cc_value_{next(_counter)}", "VALUE": value}
        exec("class Cell:\n    def run(self):\n        return VALUE\n", namespace)
        digests.append(code_closure(namespace["Cell"], DEFAULT_ALGORITHM).parts)
    values = [next(v for k, v in parts.items() if k.startswith("constant")) for parts in digests]
    same = repr(first) == repr(second) and type(first) is type(second)
    assert (values[0] == values[1]) == same


# --- what the verdicts and records say ---------------------------------------------------------

CHECKED = """
from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash

from PKG import helpers


class Task(TaskWithCheckingInputHash):
    def output(self):
        return HashableLocalTarget("out/task.txt")

    def run(self):
        with self.output().open("w") as sink:
            sink.write(str(helpers.value()))
"""

HELPERS = """
A, B, C, D, E, F = 1, 2, 3, 4, 5, 6


def value():
    return first() + second()


def first():
    return A + B + C


def second():
    return D + E + F
"""


def code_reasons(task: luigi.Task) -> List[Reason]:
    """Reasons and notes about the task's code, from an exhaustive check."""
    with judging(exhaustive=True, fresh=True) as judge:
        verdict = judge.status(task)
    kinds = (ReasonKind.CODE_CHANGED, ReasonKind.CODE_UNRESOLVED)
    return [r for r in (*verdict.reasons, *verdict.notes) if r.kind in kinds]


def record_of(path: str) -> Dict[str, Any]:
    return dict(json.loads(Path(path + ".repro.json").read_text()))


def test_the_record_keeps_a_digest_per_part(project: Project) -> None:
    """The record lists every part of the closure with its digest, and the unresolved ones."""
    project.write(helpers=HELPERS, pipeline=CHECKED)
    task_cls = project.load()
    assert build(task_cls())
    task = record_of("out/task.txt")["task"]
    closure = code_closure(task_cls, DEFAULT_ALGORITHM)
    assert task["code_fingerprint"] == closure.fingerprint
    assert task["code_parts"] == dict(closure.parts)
    assert f"function {project.package}.helpers.first" in task["code_parts"]
    assert "code_unresolved" not in task  # nothing unresolved: the field is left out


def test_code_changed_names_what_changed(project: Project) -> None:
    """CODE_CHANGED names the changed helper; past four changes it says how many more;
    the evidence lists them all."""
    project.write(helpers=HELPERS, pipeline=CHECKED)
    assert build(project.load()())
    project.edit("helpers", "return D + E + F", "return D * E * F")
    (reason,) = code_reasons(project.load()())
    name = f"function {project.package}.helpers.second"
    assert reason.message == f"the code of Task changed: {name} changed"
    assert reason.evidence["changed"] == [name]
    project.edit("helpers", "A, B, C, D, E, F = 1, 2, 3, 4, 5, 6", "A = B = C = D = E = F = 0")
    project.edit("helpers", "def first():\n    return A + B + C", "def first():\n    return 0")
    project.edit("helpers", "return first() + second()", "return first() + third()")
    project.edit("helpers", "def second():", "def third():")
    (reason,) = code_reasons(project.load()())
    assert reason.message.endswith(" and 6 more"), reason.message
    evidence = {
        what: [name.replace(project.package, "PKG") for name in reason.evidence[what]]
        for what in ("changed", "added", "removed")
    }
    assert evidence == {
        "changed": [f"constant PKG.helpers.{c}" for c in "DEF"]
        + ["function PKG.helpers.first", "function PKG.helpers.value"],
        "added": ["function PKG.helpers.third"],
        "removed": [f"constant PKG.helpers.{c}" for c in "ABC"] + ["function PKG.helpers.second"],
    }


def _as_if_written_before_the_closure(path: str, task_cls: type) -> None:
    """Rewrite a record as an earlier version wrote it: a class-only fingerprint, no parts."""
    document = record_of(path)
    del document["task"]["code_parts"]
    document["task"]["code_fingerprint"] = legacy_code_fingerprint(task_cls, DEFAULT_ALGORITHM)
    Path(path + ".repro.json").write_text(json.dumps(document))


def test_a_record_from_before_the_closure_can_be_adopted(project: Project) -> None:
    """A record without parts says the fingerprint now covers helpers and adopt accepts it,
    unless the task's class itself changed since."""
    project.write(helpers=HELPERS, pipeline=CHECKED)
    task_cls = project.load()
    assert build(task_cls())
    _as_if_written_before_the_closure("out/task.txt", task_cls)
    task = project.load()()
    (reason,) = code_reasons(task)
    assert "predates code fingerprints that cover helper code" in reason.message
    assert "luigi-repro adopt" in reason.message
    assert reason.evidence["classes_unchanged"] is True
    adopt, skipped = plan(task)
    assert (adopt, skipped) == ([task], [])
    RunProtocol(task).adopt()
    assert from_scratch(task)

    _as_if_written_before_the_closure("out/task.txt", task_cls)
    project.edit("pipeline", "str(helpers.value())", "str(helpers.value() + 1)")
    changed = project.load()()
    (reason,) = code_reasons(changed)
    assert reason.message == "the code of Task changed since its outputs were made"
    assert plan(changed)[0] == []


def test_unresolved_references_are_a_note_of_the_audit(project: Project) -> None:
    """verify (with the code, and from records alone) shows what the fingerprint cannot follow
    as a note; the task stays up to date."""
    project.write(
        helpers="from PKG import steps\n\ndef value():\n"
        "    return getattr(steps, 'run_' + 'step')()\n",
        steps="def run_step():\n    return 1\n",
        pipeline=CHECKED,
    )
    task = project.load()()
    assert build(task)
    report = verify(task)
    assert report.ok
    (note,) = report.tasks[task.task_id].notes
    assert note.kind is ReasonKind.CODE_UNRESOLVED
    where = f"in function {project.package}.helpers.value"
    assert note.evidence["unresolved"] == [f"getattr(steps, 'run_' + 'step') {where}"]
    assert record_of("out/task.txt")["task"]["code_unresolved"] == note.evidence["unresolved"]
    (recorded,) = audit_paths(["out/task.txt"]).tasks.values()
    assert recorded.notes == (note,)  # the record-only audit shows it too


# --- a realistic project, built by separate processes --------------------------------------------

SHOP = Path(__file__).resolve().parent / "projects" / "shop"

#: One step of the shop's life in a fresh process: audit it, then build it.
STEP = """
import contextlib, io, json
import luigi
from luigi_repro.cli import main
audit = io.StringIO()
with contextlib.redirect_stdout(audit):
    status = main(["verify", "--format", "json", "--module", "pipeline", "Root"])
import pipeline
built = luigi.build([pipeline.Root()], local_scheduler=True, log_level="WARNING")
print(json.dumps({"verify": status, "report": json.loads(audit.getvalue()), "built": built}))
"""


def shop_step() -> Tuple[int, Dict[str, List[str]], List[str]]:
    """Verify then build the shop in a new process: (verify's exit status, each checked task's
    reasons, the families that ran)."""
    done = subprocess.run([sys.executable, "-c", STEP], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["built"], done.stderr
    reasons = {
        task["family"]: [reason["message"] for reason in task["reasons"]]
        for task in result["report"]["tasks"]
        if task["kind"] == "checked"
    }
    return result["verify"], reasons, families(runs())


def edit(path: str, old: str, new: str) -> None:
    text = Path(path).read_text()
    assert old in text, old
    Path(path).write_text(text.replace(old, new))


@pytest.mark.slow
def test_a_multi_module_project_reruns_exactly_what_an_edit_reaches() -> None:
    """In a project with helper modules and constants, each edit reruns exactly the tasks whose
    code it reaches (then what their changed outputs reach), and verify names what changed;
    comments and docstrings rerun nothing."""
    shutil.copytree(SHOP, Path.cwd(), dirs_exist_ok=True)
    assert shop_step()[2] == ["CleanOrders", "Report", "Totals"]

    edit("utils/preproc.py", '"""A quantity that cannot be right', '"""A wrong quantity')
    edit("utils/preproc.py", "def clean_row(line):", "# one row of the file\ndef clean_row(line):")
    edit("utils/config.py", "TAX_RATE = 0.2", "TAX_RATE = (0.2)  # VAT")
    assert shop_step() == (0, {"CleanOrders": [], "Totals": [], "Report": []}, [])

    edit("utils/money.py", ":.2f", ":.3f")
    status, reasons, ran = shop_step()
    assert status == 1
    assert reasons == {
        "CleanOrders": [],
        "Totals": [],
        "Report": ["the code of Report changed: function utils.money.format_total changed"],
    }
    assert ran == ["Report"]

    edit("utils/preproc.py", "fill=1.0", "fill=2.0")  # no quantity needs filling: same output
    status, reasons, ran = shop_step()
    assert reasons["CleanOrders"] == [
        "the code of CleanOrders changed: function utils.preproc.impute changed"
    ]
    assert ran == ["CleanOrders"]  # the others are cut off early: their inputs did not change

    edit("utils/config.py", "TAX_RATE = (0.2)", "TAX_RATE = 0.25")
    status, reasons, ran = shop_step()
    assert reasons["Totals"] == [
        "the code of Totals changed: constant utils.config.TAX_RATE changed"
    ]
    assert reasons["Report"] == [] or all("upstream" in r for r in reasons["Report"])
    assert ran == ["Report", "Totals"]

    edit("utils/config.py", "THRESHOLD = 0.5", "THRESHOLD = 1.5")  # Plum's quantity is filled now
    status, reasons, ran = shop_step()
    assert status == 1
    assert reasons["CleanOrders"] == [
        "the code of CleanOrders changed: constant utils.config.THRESHOLD changed"
    ]
    assert ran == ["CleanOrders", "Report", "Totals"]
    assert shop_step() == (0, {"CleanOrders": [], "Totals": [], "Report": []}, [])


# --- the same code, the same fingerprint in every process ----------------------------------------

SEEDED = """
import dataclasses

import attrs


@attrs.frozen
class Frozen:
    factor: int = 2

    def scale(self, x):
        return x * self.factor


@dataclasses.dataclass(frozen=True, order=True)
class Point:
    x: int = 0


class Task:
    def run(self):
        return Frozen().scale(2), Point(1)
"""

SEEDED_RUNNER = r"""
import importlib, sys
from luigi_repro.codeclosure import code_closure
namespace = {"__name__": "cc_seeded_cell"}
exec(
    "KINDS = frozenset({'alpha', 'beta', 'gamma', 'delta'})\n"
    "class Cell:\n"
    "    def run(self, kind):\n"
    "        return kind in {'alpha', 'beta', 'gamma'} and kind in KINDS\n",
    namespace,
)
for cls in (importlib.import_module(sys.argv[1]).Task, namespace["Cell"]):
    closure = code_closure(cls, "xxh3_128")
    print(closure.fingerprint, sorted(closure.parts), closure.unresolved, closure.error)
"""


def test_the_fingerprint_does_not_depend_on_the_hash_seed(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """attrs and dataclass classes (whose generated methods hold hash-seeded salts) and sets in
    code without source give the same fingerprints in processes with other hash seeds."""
    project.write(helpers=SEEDED)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(project.folder), os.environ["PYTHONPATH"]])
    )
    outputs = []
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", SEEDED_RUNNER, f"{project.package}.helpers"],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    task_line = outputs[0].splitlines()[0].replace(project.package, "PKG")
    assert (
        "['class PKG.helpers.Frozen', 'class PKG.helpers.Point', 'class PKG.helpers.Task'] ()"
        in (task_line)
    )


# --- never a crash, never a closure silently smaller ---------------------------------------------


def test_deeply_nested_code_is_fingerprinted(project: Project) -> None:
    """A 400-branch elif chain and a 1,000-term sum are walked like flat code (no
    RecursionError), and an edit deep inside them is seen."""
    chain = "def lookup(code):\n    if code == 0:\n        return 'c0'\n" + "".join(
        f"    elif code == {i}:\n        return 'c{i}'\n" for i in range(1, 400)
    )
    total = "QUERY = 'select'" + "".join(f" + ' col{i},'" for i in range(1000)) + "\n"
    project.write(
        helpers=chain + total,
        pipeline="from PKG import helpers\n\nclass Task:\n    def run(self):\n"
        "        return helpers.lookup(7), helpers.QUERY\n",
    )
    before = project.closure()
    assert before.error is None
    project.edit("helpers", "return 'c399'", "return 'C399'")
    project.edit("helpers", "' col999,'", "' col1000,'")
    assert project.changed(before, project.closure()) == [
        "constant PKG.helpers.QUERY changed",
        "function PKG.helpers.lookup changed",
    ]


PROXY = """
class LazyClient:
    @property
    def __class__(self):
        raise RuntimeError("working outside of application context")

    def __getattr__(self, name):
        raise RuntimeError("the client is not configured yet")

    def __call__(self, x):
        return x * 2


client = LazyClient()
"""


def test_objects_that_refuse_every_attribute_are_no_code(project: Project) -> None:
    """An object whose every attribute look-up raises (a lazy proxy) counts by its statement
    and its class, the same every time: nothing raises, nothing is left half-done."""
    project.write(
        clients=PROXY,
        pipeline="from PKG.clients import client\n\nclass Task:\n    def run(self):\n"
        "        return client(21)\n\nclass Twin:\n    def run(self):\n        return client(2)\n",
    )
    task_cls = project.load()
    twin = sys.modules[task_cls.__module__].Twin
    expected = {"constant PKG.clients.client", "class PKG.clients.LazyClient"}
    for cls in (task_cls, twin, task_cls):
        closure = code_closure(cls, DEFAULT_ALGORITHM)
        assert closure.error is None
        assert project.keys(closure) == expected | {f"class PKG.pipeline.{cls.__name__}"}


def test_a_module_that_exits_when_imported_is_listed(project: Project) -> None:
    """A module imported inside a function that calls sys.exit() when imported is listed as
    unresolved, saying so; the fingerprint is still computed."""
    project.write(
        gpu="import sys\n\nsys.exit('needs the gpu extra')\n",
        pipeline="class Task:\n    def run(self):\n        import PKG.gpu\n\n"
        "        return PKG.gpu.compute(1)\n",
    )
    closure = project.closure()
    assert closure.error is None
    assert any(
        "importing it failed: SystemExit: needs the gpu extra" in line
        for line in closure.unresolved
    ), closure.unresolved


SCHEMA = """
class Meta(type):
    def __eq__(cls, other):
        return cls is other


class Record(metaclass=Meta):
    def describe(self):
        return "record"
"""


def test_classes_that_cannot_be_hashed_are_followed(project: Project) -> None:
    """A helper class whose metaclass defines __eq__ (so it cannot be hashed) is part of the
    closure, its edits are seen, and it can be the root of a closure itself."""
    project.write(
        schema=SCHEMA,
        pipeline="from PKG import schema\n\nclass Task:\n    def run(self):\n"
        "        return schema.Record().describe()\n",
    )
    before = project.closure()
    assert "class PKG.schema.Record" in project.keys(before)
    project.edit("schema", '"record"', '"row"')
    assert project.changed(before, project.closure()) == ["class PKG.schema.Record changed"]
    record = project.load("schema", "Record")
    assert code_closure(record, DEFAULT_ALGORITHM) is code_closure(record, DEFAULT_ALGORITHM)


def test_huge_integers_are_described() -> None:
    """Ints beyond Python's 4,300-digit repr limit, as a value or a constant of code without
    source, are described (in hex): a different one gives a different digest."""
    digests = []
    for value in ("f" * 5000, "f" * 4999 + "e"):
        namespace: Dict[str, Any] = {"__name__": f"cc_big_{next(_counter)}"}
        exec(
            f"MODULUS = 0x{value}\nclass Cell:\n    def run(self, x):\n"
            f"        return x % MODULUS, x % 0x{value}\n",
            namespace,
        )
        closure = code_closure(namespace["Cell"], DEFAULT_ALGORITHM)
        assert closure.error is None
        digests.append(sorted(closure.parts.values()))
    assert all(one != two for one, two in zip(*digests))


TWIN = """

class Twin(TaskWithCheckingInputHash):
    def run(self):
        return helpers.value()
"""


def test_an_unexpected_failure_makes_a_fingerprint_no_record_matches(
    project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If walking the code fails unexpectedly, complete() answers False without raising,
    verify says why (CODE_CHANGED), it is logged once, and a later walk is not smaller."""
    project.write(helpers=HELPERS, pipeline=CHECKED + TWIN)
    assert build(project.load()())
    task_cls = project.load()
    real = codereach._resolve_name

    def failing(source: Any, name: str, bare: bool) -> Any:
        if name == "first":
            raise RuntimeError("boom")
        return real(source, name, bare)

    monkeypatch.setattr(codereach, "_resolve_name", failing)
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        assert not task_cls().complete()
        assert not task_cls().complete()
    failures = [r for r in caplog.records if "cannot be computed" in r.getMessage()]
    assert len(failures) == 1
    closure = code_closure(task_cls, DEFAULT_ALGORITHM)
    assert closure.error == "RuntimeError: boom"
    assert "unfingerprintable" in closure.fingerprint
    (reason,) = code_reasons(task_cls())
    assert reason.kind == ReasonKind.CODE_CHANGED
    assert reason.message == "the code of Task cannot be fingerprinted (RuntimeError: boom)"
    monkeypatch.undo()
    twin = code_closure(sys.modules[task_cls.__module__].Twin, DEFAULT_ALGORITHM)
    assert "function PKG.helpers.first" in project.keys(twin)


def test_many_module_level_lambdas_take_linear_time(project: Project) -> None:
    """The first fingerprint of a module of n named lambdas grows linearly with n (each lambda
    finds the names its statement binds without scanning every binding)."""

    def seconds(count: int) -> float:
        rules = "".join(f"RULE_{i} = lambda row: row + {i}\n" for i in range(count))
        rules += "RULES = [" + ", ".join(f"RULE_{i}" for i in range(count)) + "]\n"
        project.write(
            rules=rules,
            pipeline="from PKG import rules\n\nclass Task:\n    def run(self):\n"
            "        return [rule(1) for rule in rules.RULES]\n",
        )
        best = float("inf")
        for _ in range(2):
            task_cls = project.load()
            started = time.perf_counter()
            code_closure(task_cls, DEFAULT_ALGORITHM)
            best = min(best, time.perf_counter() - started)
        return best

    small, large = seconds(1000), seconds(2000)
    assert large / small < 3.0, (small, large)  # quadratic time would be about 4


# --- code held by values -------------------------------------------------------------------------

REGISTRY = """
HANDLERS = {}


def register(func):
    HANDLERS[func.__name__] = func
    return func
"""

HANDLERS_MODULE = """
from PKG.registry import register


@register
def scale(x):
    return x * 2
"""


def test_code_in_a_registry_is_followed(project: Project) -> None:
    """A function that a decorator stores in a module-level dict is reached through the dict."""
    project.write(
        registry=REGISTRY,
        handlers=HANDLERS_MODULE,
        pipeline="from PKG import handlers, registry\n\nclass Task:\n    def run(self):\n"
        "        return registry.HANDLERS['scale'](21)\n",
    )
    before = project.closure()
    assert "function PKG.handlers.scale" in project.keys(before)
    project.edit("handlers", "x * 2", "x * 3")
    assert project.changed(before, project.closure()) == ["function PKG.handlers.scale changed"]


BACKENDS = """
import operator

from PKG import backend

BACKENDS = {"fast": [backend]}


class InTable:
    def run(self):
        return BACKENDS["fast"][0].compute(21)


class AsAttribute:
    engine = backend

    def run(self):
        return self.engine.compute(21)


def make(engine):
    def compute(x):
        return engine.compute(x)

    return compute


compute_fast = make(backend)


class FromFactory:
    def run(self):
        return compute_fast(21)


class ByName:
    def run(self, name):
        return (
            vars(backend)["compute"](21),
            vars(backend)[name],
            backend.__dict__[name],
            operator.attrgetter(name)(backend),
        )
"""


@pytest.mark.parametrize("name", ["InTable", "AsAttribute", "FromFactory"])
def test_a_module_held_as_a_value_counts_whole(project: Project, name: str) -> None:
    """A user module in a container, a class attribute or a closure cell (a factory's argument)
    counts whole: which of its attributes is used is not known."""
    project.write(backend=PREPROC.replace("PKG.config", "PKG.limits"), limits=CONFIG)
    project.write(pipeline=BACKENDS)
    keys = project.keys(project.closure(name=name))
    assert {"function PKG.backend.impute", "function PKG.backend.unused"} <= keys
    assert "constant PKG.limits.THRESHOLD" in keys


def test_a_module_namespace_read_by_name_is_followed_or_listed(project: Project) -> None:
    """vars(module)["name"] is followed like getattr with a constant name; vars(module)[name],
    module.__dict__[name] and operator.attrgetter(name) are listed as unresolved."""
    project.write(backend="def compute(x):\n    return x\n\n\ndef other(x):\n    return x\n")
    project.write(pipeline=BACKENDS)
    closure = project.closure(name="ByName")
    assert "function PKG.backend.compute" in project.keys(closure)
    assert "function PKG.backend.other" not in project.keys(closure)
    where = "in function PKG.pipeline.ByName.run"
    assert [line.replace(project.package, "PKG") for line in closure.unresolved] == [
        f"backend.__dict__[name] {where}",
        f"operator.attrgetter(name) {where}",
        f"vars(backend)[name] {where}",
    ]


CONVERT = """
import functools


@functools.singledispatch
def convert(value):
    return str(value)


@convert.register(int)
def _(value):
    return value * 2
"""


def test_singledispatch_implementations_are_followed(project: Project) -> None:
    """The implementations registered on a singledispatch function are part of the closure."""
    project.write(
        convert=CONVERT,
        pipeline="from PKG.convert import convert\n\nclass Task:\n    def run(self):\n"
        "        return convert(21)\n",
    )
    before = project.closure()
    project.edit("convert", "value * 2", "value * 3")
    assert project.changed(before, project.closure()) == ["function PKG.convert._ changed"]


# --- values changed by other code ----------------------------------------------------------------

MUTATED = """
import os

MODE = "slow"
LIMIT = 1
COLUMNS = ["a"]
SEED = int(os.environ.get("CC_SEED", "1"))


def _setup():
    global LIMIT
    LIMIT = 5


def _extend():
    COLUMNS.append("b")


_setup()
_extend()
"""


def test_literal_constants_changed_by_other_code_count_by_value(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A literal constant changed at import (by a settings module, a setup function, a helper
    that extends it) counts by its value; one bound to a non-literal expression does not."""
    project.write(
        config=MUTATED,
        settings="from PKG import config\n\nconfig.MODE = 'fast'\n",
        pipeline="from PKG import config, settings\n\nclass Task:\n    def run(self):\n"
        "        return config.MODE, config.LIMIT, config.COLUMNS, config.SEED\n",
    )
    before = project.closure()
    project.edit("settings", "'fast'", "'faster'")
    project.edit("config", "LIMIT = 5", "LIMIT = 6")
    project.edit("config", 'COLUMNS.append("b")', 'COLUMNS.append("c")')
    after = project.closure()
    assert project.changed(before, after) == [
        "constant PKG.config.COLUMNS changed",
        "constant PKG.config.LIMIT changed",
        "constant PKG.config.MODE changed",
    ]
    monkeypatch.setenv("CC_SEED", "2")
    assert project.closure().fingerprint == after.fingerprint


CLASSES = """
import os


class Base:
    def run(self):
        return self.LIMIT


class Later(Base):
    pass


Later.LIMIT = 5
Made = type("Made", (Base,), {"LIMIT": 5})


def make(limit):
    class Built(Base):
        LIMIT = limit

    return Built


Built = make(limit=5)

if os.environ.get("CC_NEVER_SET"):

    class Branch(Base):
        LIMIT = 1
        KIND = str

else:

    class Branch(Base):
        LIMIT = 2
        KIND = bytes


class Twice(Base):
    LIMIT = 1
    KIND = str


class Twice(Base):  # noqa: F811
    LIMIT = 2
    KIND = memoryview
"""


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("Later", "Later.LIMIT = 5", "Later.LIMIT = 6"),
        ("Made", '{"LIMIT": 5}', '{"LIMIT": 6}'),
        ("Built", "make(limit=5)", "make(limit=6)"),
        ("Branch", "KIND = bytes", "KIND = bytearray"),
        ("Twice", "KIND = memoryview", "KIND = bytearray"),
    ],
)
def test_a_class_counts_by_what_made_it(project: Project, name: str, old: str, new: str) -> None:
    """A class counts by the plain values its statement does not show (set after it, given to
    type(), bound from a factory's argument), and by the statement that made it when several
    share its name (the if/else branch that ran, the later of two)."""
    project.write(pipeline=CLASSES)
    before = project.closure(name=name)
    project.edit("pipeline", old, new)
    after = project.closure(name=name)
    assert after.fingerprint != before.fingerprint


def test_a_class_without_source_counts_by_its_plain_attributes() -> None:
    """A notebook class (made by exec) counts by its plain-data class attributes too."""
    cell = "class FpNotebookTask(luigi.Task):\n    LIMIT = {}\n\n    def run(self):\n        pass\n"
    five = code_fingerprint(_exec_class(cell.format(5), "fp_cell_limit_a"), DEFAULT_ALGORITHM)
    same = code_fingerprint(_exec_class(cell.format(5), "fp_cell_limit_b"), DEFAULT_ALGORITHM)
    six = code_fingerprint(_exec_class(cell.format(6), "fp_cell_limit_c"), DEFAULT_ALGORITHM)
    assert five == same != six


def test_private_attributes_set_at_run_time_are_not_code(load_module: LoadModule) -> None:
    """What Luigi and luigi_repro cache on a task class while it runs (private names such as
    _unconsumed_params) does not change the class's fingerprint."""
    clean = fingerprint_of(load_module(STATEMENT_BASE), "FpStatementTask")
    used = load_module(STATEMENT_BASE).FpStatementTask
    used._unconsumed_params = {"other_task_param"}
    used._luigi_repro_params = ((1, 2), ())
    assert code_fingerprint(used, DEFAULT_ALGORITHM) == clean


# --- what is not code ----------------------------------------------------------------------------

LOGGED = """
import logging


class Options:
    def update(self, **values):
        pass


log = logging.getLogger(__name__)
logging.basicConfig(format="%(message)s")
log.info("loaded")
options = Options()
options.update(width=80)
TABLE = {}
TABLE.update(a=1)


class Task:
    def run(self):
        log.info("computing")
        return logging.getLogger("x"), options, TABLE
"""


def test_calls_that_change_no_container_are_not_part_of_a_constant(project: Project) -> None:
    """A module-level log call, logging setup or update() of an object that is no container
    is not code of the name it is called on; TABLE.update(...) on a dict is."""
    project.write(pipeline=LOGGED)
    before = project.closure()
    project.edit("pipeline", '"loaded"', '"loaded (v2)"')
    project.edit("pipeline", '"%(message)s"', '"%(asctime)s %(message)s"')
    project.edit("pipeline", "width=80", "width=120")
    middle = project.closure()
    assert middle.fingerprint == before.fingerprint
    project.edit("pipeline", "TABLE.update(a=1)", "TABLE.update(a=2)")
    assert project.changed(middle, project.closure()) == ["constant PKG.pipeline.TABLE changed"]


SHAPES = """
import collections
import dataclasses
from typing import NamedTuple

import attrs

Pair = collections.namedtuple("Pair", "left right")


class Point(NamedTuple):
    x: int
    y: int = 0


@dataclasses.dataclass(frozen=True)
class Box:
    size: int = 1


@attrs.frozen
class Settings:
    factor: int = 2


def corner():
    return Point(1, 2), Pair(3, 4), Box(), Settings()
"""


def test_methods_a_library_writes_are_not_parts(project: Project) -> None:
    """namedtuple, NamedTuple, dataclass and attrs classes count by their statements: no
    generated method is a part, no library internals are unresolved."""
    project.write(
        shapes=SHAPES,
        pipeline="from PKG import shapes\n\nclass Task:\n    def run(self):\n"
        "        return shapes.corner()\n",
    )
    before = project.closure()
    assert before.unresolved == ()
    assert project.keys(before) == {
        "class PKG.pipeline.Task",
        "function PKG.shapes.corner",
        "class PKG.shapes.Point",
        "class PKG.shapes.Pair",
        "constant PKG.shapes.Pair",
        "class PKG.shapes.Box",
        "class PKG.shapes.Settings",
    }
    project.edit("shapes", "size: int = 1", "size: int = 2")
    assert project.changed(before, project.closure()) == ["class PKG.shapes.Box changed"]


# --- reloads, and where user code lives ----------------------------------------------------------


def test_a_reloaded_helper_changes_the_cached_closure(project: Project) -> None:
    """importlib.reload of an edited helper changes the fingerprint of a class whose closure
    was computed (and cached) before."""
    project.write(preproc=PREPROC, config=CONFIG, pipeline=PIPELINE)
    task_cls = project.load()
    before = code_closure(task_cls, DEFAULT_ALGORITHM)
    project.edit("preproc", "else 0.0", "else 1.0")
    importlib.reload(sys.modules[f"{project.package}.preproc"])
    after = code_closure(task_cls, DEFAULT_ALGORITHM)
    assert project.changed(before, after) == ["function PKG.preproc.impute changed"]
    assert code_closure(task_cls, DEFAULT_ALGORITHM) is after


def test_a_project_in_a_folder_named_like_site_packages_is_user_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a folder called site-packages or dist-packages holds installed code, not a folder
    whose name merely contains those words."""
    folder = tmp_path / "my-site-packages-tools"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    project = Project(folder)
    try:  # a plain class: the package of a checked task's module would count as the user's
        project.write(
            preproc=PREPROC,
            config=CONFIG,
            pipeline=PIPELINE.replace("(TaskWithCheckingInputHash)", ""),
        )
        assert "function PKG.preproc.impute" in project.keys(project.closure())
    finally:
        project.forget()


def test_an_installed_package_imported_lazily_is_not_imported(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import heavy.models` inside a function does not import the installed package `heavy`
    when the fingerprint is computed."""
    heavy = f"cc_heavy{next(_counter)}"
    package = tmp_path / "venv" / "lib" / "site-packages" / heavy
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text("def fit(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(package.parent))
    project.write(
        pipeline=f"class Task:\n    def run(self):\n        import {heavy}.models\n\n"
        f"        return {heavy}.models.fit(1)\n"
    )
    closure = project.closure()
    assert (closure.error, closure.unresolved) == (None, ())
    assert heavy not in sys.modules


def test_constants_set_to_dates_enums_and_paths_count_by_value(project: Project) -> None:
    """A literal constant that other code sets to a date (or an enum member, a path) counts by
    that value; one set to an object that cannot be described is listed, never dropped."""
    project.write(
        config="CUTOFF = None\nKIND = None\nOTHER = None\n",
        settings="import datetime, enum, pathlib\nfrom PKG import config\n\n"
        "class Kind(enum.Enum):\n    A = 1\n    B = 2\n\n"
        "class Opaque:\n    pass\n\n"
        "config.CUTOFF = datetime.date(2024, 3, 1)\nconfig.KIND = Kind.A\n"
        "config.OTHER = Opaque()\n",
        pipeline="from PKG import config, settings\n\nclass Task:\n    def run(self):\n"
        "        return config.CUTOFF, config.KIND, config.OTHER\n",
    )
    before = project.closure()
    assert any("config.OTHER: other code set it to a Opaque" in u for u in before.unresolved), (
        before.unresolved
    )
    project.edit("settings", "datetime.date(2024, 3, 1)", "datetime.date(2024, 3, 2)")
    project.edit("settings", "Kind.A", "Kind.B")
    after = project.closure()
    assert project.changed(before, after) == [
        "constant PKG.config.CUTOFF changed",
        "constant PKG.config.KIND changed",
    ]


def test_values_that_hold_themselves_or_share_parts_are_described_in_linear_time() -> None:
    """A tree with parent links is no plain data (described as None at once); a value whose
    parts are shared many times over is described once per part."""
    from luigi_repro.codetext import describe_value

    tree: Dict[str, Any] = {"children": []}
    for index in range(50):
        tree["children"].append({"parent": tree, "name": str(index)})
    started = time.perf_counter()
    assert describe_value(tree) is None
    shared: Any = ["leaf"]
    for _ in range(10):  # 2**10 paths through 10 distinct objects: described
        shared = [shared, shared]
    assert describe_value(shared) is not None
    for _ in range(20):  # 2**30 paths: its text would be gigabytes long
        shared = [shared, shared]
    assert describe_value(shared) is None
    assert time.perf_counter() - started < 2.0


def test_empty_optional_ast_fields_are_left_out_so_a_python_upgrade_is_no_code_change() -> None:
    """Python 3.12 added ``type_params=[]`` to every def and class: empty or missing optional
    fields never reach the text a digest is made of."""
    import ast

    from luigi_repro.codetext import dump

    text = dump(ast.parse("@decorate\ndef f(x):\n    return x\n"))
    assert "type_params" not in text
    assert "returns=" not in text
    assert "decorator_list=[Name(" in text
