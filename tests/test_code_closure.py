"""The code fingerprint covers the code closure: the task class and every user helper it reaches."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Set, Tuple

import luigi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipelines import build, families, from_scratch, runs
from strategies import json_values

from luigi_repro import ReasonKind, audit_paths, judging, verify
from luigi_repro.cli.adopt import plan
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
    """`config.MODE = "fast"` where the task's module uses config is part of the closure."""
    project.write(
        config="MODE = 'slow'\n",
        pipeline="from PKG import config\n\nconfig.MODE = 'fast'\n\n"
        "class Task:\n    def run(self):\n        return config.MODE\n",
    )
    before = project.closure()
    project.edit("pipeline", "config.MODE = 'fast'", "config.MODE = 'faster'")
    assert project.changed(before, project.closure()) == ["constant PKG.pipeline.config changed"]


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
