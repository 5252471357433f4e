"""The conformance suite every HashableTarget passes, shipped so that third-party targets run it.

A backend's test module subclasses :class:`TargetContract` (under a name pytest collects, such as
``TestMyTarget``) and provides two fixtures: ``make`` (a target for a new name) and ``put`` (give
a target some content, replacing any); ``payload`` (distinct contents by number) may be
overridden for targets whose content is not bytes. Every shared test then runs against the new
backend, as fsspec's abstract test suite does for file systems.

This module imports pytest, which luigi_repro does not otherwise need: only whoever imports
``luigi_repro.testing`` must have it installed. For pytest's detailed assertion messages, call
``pytest.register_assert_rewrite("luigi_repro.testing")`` in a ``conftest.py`` before importing it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable

import attrs
import pytest

from luigi_repro.config import Settings
from luigi_repro.errors import RecordError, TargetMissing
from luigi_repro.fingerprint import Counters
from luigi_repro.record import InputEntry, OutputEntry, Record, RunSection, TaskSection
from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    as_hashable,
    locate_target,
)

__all__ = [
    "Make",
    "Payload",
    "Put",
    "TargetContract",
    "context",
    "fresh_name",
    "sample_record",
    "write_bytes",
]

Make = Callable[[str], HashableTarget]
Put = Callable[[HashableTarget, Any], None]
Payload = Callable[[int], Any]

_names = itertools.count()


def fresh_name() -> str:
    """A name no other test of this process has used."""
    return f"item-{next(_names)}"


def write_bytes(target: Any, data: bytes) -> None:
    """Replace ``target``'s content with ``data`` through ``target.open("w")``: a ``put`` for
    targets opened with ``format=luigi.format.Nop`` (bytes in, bytes out)."""
    with target.open("w") as stream:
        stream.write(data)


def context(full: bool = False) -> FingerprintContext:
    """Racy window 0, so that a settled stat may be trusted at once in these tests."""
    return FingerprintContext("xxh3_128", 0, ".repro.json", full=full)


def sample_record(target: HashableTarget) -> Record:
    """A small valid record whose only output is ``target``."""
    return Record(
        task=TaskSection("Family", "module", "Family_x_1", {"x": "1"}, "xxh3_128:" + "0" * 32),
        inputs=(InputEntry(("a",), (), "/raw/a.csv", "xxh3_128:" + "1" * 32, recorded=False),),
        outputs=(OutputEntry((), target.uri, "xxh3_128:" + "2" * 32, 3),),
        run=RunSection("run-id", "start", "end", 0.5, "host", 1),
    )


class TargetContract:
    """Shared behaviour of hashable targets. Subclasses set the fixtures below."""

    #: Does an unchanged target get re-checked without reading its content again?
    cheap_recheck = True
    #: Can the backend tell cheaply that content was rewritten (``change_token``)?
    has_change_token = True
    #: Can a target be rebuilt from its URI and description alone (as a record-only audit does)?
    locatable = True

    @pytest.fixture
    def make(self) -> Make:
        """A target for a new name; every subclass provides it."""
        raise NotImplementedError(f"{type(self).__name__} must define the 'make' fixture.")

    @pytest.fixture
    def put(self) -> Put:
        """Give a target some content, replacing any; every subclass provides it."""
        raise NotImplementedError(f"{type(self).__name__} must define the 'put' fixture.")

    @pytest.fixture
    def payload(self) -> Payload:
        """Distinct contents by number (bytes); override for targets holding other content."""
        return lambda n: f"content number {n}\n".encode() * (n + 1)

    # --- missing content ---------------------------------------------------------------------

    def test_missing_target_does_not_exist_and_cannot_be_observed(self, make: Make) -> None:
        """Nothing written yet: exists() is False, observe() raises FileNotFoundError."""
        target = make(fresh_name())
        assert not target.exists()
        with pytest.raises(FileNotFoundError):
            target.observe(context())

    def test_missing_record_reads_as_none_and_removes_quietly(self, make: Make) -> None:
        """No record: read gives None; removing it is not an error."""
        target = make(fresh_name())
        assert target.read_record(Settings()) is None
        target.remove_record(Settings())

    # --- fingerprints ------------------------------------------------------------------------

    def test_fingerprint_is_stable(self, make: Make, put: Put, payload: Payload) -> None:
        """Observing the same content twice gives the same fingerprint, naming its algorithm."""
        target = make(fresh_name())
        put(target, payload(1))
        assert target.exists()
        first = target.observe(context())
        second = target.observe(context(full=True))
        assert first.fingerprint == second.fingerprint
        assert first.fingerprint.startswith("xxh3_128:")
        assert first.stable

    def test_changed_content_changes_the_fingerprint(
        self, make: Make, put: Put, payload: Payload
    ) -> None:
        """Different content, different fingerprint, even when checked with the old state."""
        target = make(fresh_name())
        put(target, payload(1))
        before = target.observe(context())
        put(target, payload(2))
        after = target.observe(context(), before)
        assert after.fingerprint != before.fingerprint
        assert target.observe(context(full=True)).fingerprint == after.fingerprint

    def test_same_content_in_two_places_has_one_fingerprint(
        self, make: Make, put: Put, payload: Payload
    ) -> None:
        """The fingerprint is of the content, not of where it is."""
        one, two = make(fresh_name()), make(fresh_name())
        put(one, payload(3))
        put(two, payload(3))
        assert one.observe(context()).fingerprint == two.observe(context()).fingerprint

    def test_unchanged_content_is_read_again_only_without_a_cheap_proof(
        self, make: Make, put: Put, payload: Payload
    ) -> None:
        """With the previous observation's state, an unchanged target is not read again —
        unless the backend has no cheap proof of unchanged content (then it is, every time)."""
        target = make(fresh_name())
        put(target, payload(1))
        first = target.observe(context())
        check = context()
        again = target.observe(check, first)
        assert again.fingerprint == first.fingerprint
        assert check.counters.files_hashed == (0 if self.cheap_recheck else 1)

    def test_fingerprint_is_the_observed_one_with_the_configured_algorithm(
        self, make: Make, put: Put, payload: Payload, tmp_path: Path
    ) -> None:
        """fingerprint() names the configured algorithm and equals a full observation; asked
        again about unchanged content it reads nothing (unless the backend has no cheap proof)."""
        settings = Settings(
            hash_algorithm="xxh3_64", racy_window_ns=0, stat_cache_path=str(tmp_path / "stat")
        )
        target = make(fresh_name())
        put(target, payload(1))
        first = target.fingerprint(settings)
        full = attrs.evolve(context(full=True), algorithm="xxh3_64")
        assert first == target.observe(full).fingerprint
        assert first.startswith("xxh3_64:")
        again = Counters()
        assert target.fingerprint(settings, again) == first
        assert again.files_hashed == (0 if self.cheap_recheck else 1)
        put(target, payload(2))
        assert target.fingerprint(settings) == target.observe(full).fingerprint != first

    def test_fingerprint_of_missing_content_is_target_missing(self, make: Make) -> None:
        """Nothing written yet: fingerprint() raises TargetMissing, a FileNotFoundError."""
        target = make(fresh_name())
        with pytest.raises(TargetMissing, match="does not exist") as caught:
            target.fingerprint(Settings())
        assert isinstance(caught.value, FileNotFoundError)
        assert caught.value.uri == target.uri

    def test_change_token_follows_rewrites(self, make: Make, put: Put, payload: Payload) -> None:
        """change_token() is None without content, stable while untouched, new after a write
        (always None for a backend that cannot tell a rewrite cheaply)."""
        target = make(fresh_name())
        assert target.change_token() is None
        put(target, payload(1))
        token = target.change_token()
        assert (token is not None) == self.has_change_token
        assert target.change_token() == token
        put(target, payload(2))
        if self.has_change_token:
            assert target.change_token() != token

    # --- records -----------------------------------------------------------------------------

    def test_record_round_trip(self, make: Make, put: Put, payload: Payload) -> None:
        """A record written beside the target reads back equal, and can be removed."""
        settings = Settings()
        target = make(fresh_name())
        put(target, payload(1))
        record = sample_record(target)
        target.write_record(settings, record)
        assert target.record_location(settings).endswith(".repro.json")
        assert target.read_record(settings) == record
        replaced = Record(record.task, (), record.outputs, record.run)
        target.write_record(settings, replaced)
        assert target.read_record(settings) == replaced
        target.remove_record(settings)
        assert target.read_record(settings) is None

    def test_unusable_record_is_a_record_error(self, make: Make, put: Put) -> None:
        """Garbage where the record belongs raises RecordError naming it."""
        settings = Settings()
        target = make(fresh_name())
        target.write_record_bytes(settings, b"\x80garbage")
        with pytest.raises(RecordError) as caught:
            target.read_record(settings)
        assert caught.value.location == target.record_location(settings)

    def test_record_is_not_part_of_the_content(
        self, make: Make, put: Put, payload: Payload
    ) -> None:
        """Writing or removing the record leaves the target's fingerprint alone."""
        settings = Settings()
        target = make(fresh_name())
        put(target, payload(1))
        before = target.observe(context(full=True)).fingerprint
        target.write_record(settings, sample_record(target))
        assert target.observe(context(full=True)).fingerprint == before

    def test_rebuilt_from_its_location_and_description_it_fingerprints_alike(
        self, make: Make, put: Put, payload: Payload
    ) -> None:
        """locate_target(uri, describe()) gives a target that reads the same content the same
        way, as an audit from records needs; a backend that cannot be located says why."""
        target = make(fresh_name())
        put(target, payload(1))
        rebuilt, problem = locate_target(target.uri, target.describe())
        if not self.locatable:
            assert rebuilt is None
            assert problem
            return
        assert rebuilt is not None, problem
        assert (rebuilt.uri, rebuilt.describe()) == (target.uri, target.describe())
        assert rebuilt.fingerprint_kind == target.fingerprint_kind
        expected = target.observe(context(full=True)).fingerprint
        assert rebuilt.observe(context(full=True)).fingerprint == expected

    # --- replacement, identity ---------------------------------------------------------------

    def test_rewriting_replaces_the_content_whole(
        self, make: Make, put: Put, payload: Payload
    ) -> None:
        """Writing again replaces the previous content: the fingerprint is the new content's."""
        target, reference = make(fresh_name()), make(fresh_name())
        put(target, payload(5))
        put(target, payload(1))
        put(reference, payload(1))
        assert target.observe(context()).fingerprint == reference.observe(context()).fingerprint

    def test_identity(self, make: Make) -> None:
        """URIs and lock names are stable per target and distinct between targets."""
        name = fresh_name()
        one, again, other = make(name), make(name), make(fresh_name())
        assert one.uri == again.uri
        assert one.uri != other.uri
        assert one.lock_name() == again.lock_name()
        assert one.lock_name() != other.lock_name()
        assert as_hashable(one) is one
