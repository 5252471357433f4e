"""Canonical parameters, their differences, and the fingerprint of a task's code."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict

import luigi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from luigi.task_register import Register
from strategies import json_values, values_holding_a_set

from luigi_repro.errors import ParameterError, ReproError
from luigi_repro.fingerprint import DEFAULT_ALGORITHM
from luigi_repro.params import (
    canonical_params,
    code_fingerprint,
    code_version_of,
    diff_params,
    reject_sets,
)

LoadModule = Callable[[str], ModuleType]


class ParamsCanonTask(luigi.Task):
    """A task with every JSON-valued parameter kind, plus plain and insignificant ones."""

    mapping = luigi.DictParameter(default={})
    items = luigi.ListParameter(default=[])
    pair = luigi.TupleParameter(default=())
    count = luigi.IntParameter(default=1)
    day = luigi.DateParameter(default=None)
    verbose = luigi.BoolParameter(default=False, significant=False)
    note = luigi.Parameter(default="", significant=False)


def fresh(**params: Any) -> ParamsCanonTask:
    """A new instance, bypassing Luigi's instance cache (which treats reordered dicts as equal)."""
    Register.clear_instance_cache()
    return ParamsCanonTask(**params)


def reordered(value: Any) -> Any:
    """The same JSON value with the insertion order of every object reversed."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def as_json(value: Any) -> str:
    """Sorted-key JSON, the form in which a record stores parameters."""
    return json.dumps(value, sort_keys=True)


# --- canonical parameters ------------------------------------------------------------------------


def test_dict_parameter_order_does_not_matter() -> None:
    """{"b":1,"a":2} and {"a":2,"b":1} canonicalize to the same parameters."""
    first = fresh(mapping={"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": 2}})
    second = fresh(mapping={"a": {"x": 2, "y": [1, {"p": 3, "q": 2}]}, "b": 1})
    assert first is not second
    assert first.to_str_params()["mapping"] != second.to_str_params()["mapping"]
    assert diff_params(canonical_params(first), canonical_params(second)) == {}
    assert as_json(canonical_params(first)) == as_json(canonical_params(second))


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_dict_parameter_order_never_matters(mapping: Dict[str, Any]) -> None:
    """Any dict parameter, reordered at every level, gives the same canonical parameters."""
    first = canonical_params(fresh(mapping=mapping))
    second = canonical_params(fresh(mapping=reordered(mapping)))
    assert diff_params(first, second) == {}
    assert as_json(first) == as_json(second)
    assert as_json(first["mapping"]) == as_json(mapping)


@given(st.lists(json_values, max_size=4), st.lists(json_values, max_size=4))
def test_list_and_tuple_parameters_are_json(items: list, pair: list) -> None:
    """List and tuple parameters canonicalize to JSON lists equal to what was passed."""
    params = canonical_params(fresh(items=items, pair=tuple(pair)))
    assert as_json(params["items"]) == as_json(items)
    assert as_json(params["pair"]) == as_json(pair)


def test_plain_parameters_are_strings() -> None:
    """Parameters that are not JSON-valued keep Luigi's string form."""
    params = canonical_params(fresh(count=7, day=luigi.DateParameter().parse("2024-02-29")))
    assert params["count"] == "7"
    assert params["day"] == "2024-02-29"


def test_insignificant_parameters_are_excluded() -> None:
    """Insignificant parameters are not in the canonical form and do not make a difference."""
    quiet = canonical_params(fresh(verbose=False, note="a"))
    loud = canonical_params(fresh(verbose=True, note="b"))
    assert "verbose" not in quiet
    assert "note" not in quiet
    assert {"mapping", "items", "pair", "count", "day"} <= set(quiet)
    assert diff_params(quiet, loud) == {}


def test_significant_change_is_reported() -> None:
    """Changing a nested value of a dict parameter shows up in diff_params."""
    old = canonical_params(fresh(mapping={"a": {"b": 1}}))
    new = canonical_params(fresh(mapping={"a": {"b": 2}}))
    assert diff_params(old, new) == {"mapping": ({"a": {"b": 1}}, {"a": {"b": 2}})}


# --- diff_params ---------------------------------------------------------------------------------


def test_diff_reports_added_removed_changed() -> None:
    """diff_params gives (old, new) for added, removed and changed names, None when missing."""
    old = {"kept": 1, "gone": "x", "moved": {"a": 1, "b": 2}, "changed": [1, 2]}
    new = {"kept": 1, "moved": {"b": 2, "a": 1}, "changed": [2, 1], "added": None}
    assert diff_params(old, new) == {
        "added": (None, None),
        "changed": ([1, 2], [2, 1]),
        "gone": ("x", None),
    }


def test_diff_tells_string_from_number() -> None:
    """ "1" and 1 are different parameter values."""
    assert diff_params({"n": "1"}, {"n": 1}) == {"n": ("1", 1)}


params_maps = st.dictionaries(st.sampled_from("abcdef"), json_values, max_size=6)


@given(params_maps)
def test_diff_of_reordered_is_empty(params: Dict[str, Any]) -> None:
    """A parameter map differs from nothing but itself, whatever the order of its objects."""
    assert diff_params(params, params) == {}
    assert diff_params(params, reordered(params)) == {}


@given(params_maps, params_maps)
def test_diff_names_exactly_the_differences(old: Dict[str, Any], new: Dict[str, Any]) -> None:
    """diff_params names exactly the added, removed and changed parameters, and is symmetric."""
    diff = diff_params(old, new)
    expected = {
        name
        for name in set(old) | set(new)
        if name not in old or name not in new or as_json(old[name]) != as_json(new[name])
    }
    assert set(diff) == expected
    for name, (before, after) in diff.items():
        assert before == old.get(name)
        assert after == new.get(name)
    assert diff_params(new, old) == {name: (b, a) for name, (a, b) in diff.items()}


# --- sets ----------------------------------------------------------------------------------------


@given(values_holding_a_set())
def test_set_at_any_depth_is_rejected(value: Any) -> None:
    """A set anywhere inside a parameter value is a ParameterError (also a TypeError)."""
    with pytest.raises(ParameterError) as info:
        reject_sets("SomeTask", {"fine": [1, 2], "bad": value})
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ReproError)
    assert "'bad'" in str(info.value)
    assert "SomeTask" in str(info.value)


@given(st.dictionaries(st.text(max_size=5), json_values, max_size=4))
def test_values_without_sets_are_accepted(values: Dict[str, Any]) -> None:
    """Parameter values made of lists, tuples, dicts and scalars pass reject_sets."""
    frozen = {name: (tuple(v) if isinstance(v, list) else v) for name, v in values.items()}
    assert reject_sets("SomeTask", values) is None
    assert reject_sets("SomeTask", frozen) is None


# --- code fingerprint ----------------------------------------------------------------------------

_counter = itertools.count()


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
