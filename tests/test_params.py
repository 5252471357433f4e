"""Canonical parameters and their differences."""

from __future__ import annotations

import json
from typing import Any, Dict

import luigi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from luigi.task_register import Register
from strategies import json_values, reversed_dicts, values_holding_a_set

from luigi_repro.errors import ParameterError, ReproError
from luigi_repro.params import (
    canonical_params,
    diff_params,
    reject_sets,
)


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
    second = canonical_params(fresh(mapping=reversed_dicts(mapping)))
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
    assert diff_params(params, reversed_dicts(params)) == {}


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
