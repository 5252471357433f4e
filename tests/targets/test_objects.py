"""JsonTarget and PickleTarget: the conformance suite, canonical bytes, and refusals that keep
the previous content."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Dict

import pytest

from luigi_repro import JsonTarget, PickleTarget, UntrustedPickle
from luigi_repro.config import Settings
from luigi_repro.targets.objects import PICKLE_PROTOCOL
from luigi_repro.testing import Make, Payload, Put, TargetContract


def an_object(n: int) -> Dict[str, Any]:
    """A small nested object; ``n`` makes it distinct."""
    return {"n": n, "items": list(range(n)), "text": "é" * n, "nested": {"ok": n % 2 == 0}}


class _ObjectContract(TargetContract):
    target_cls: Any = JsonTarget

    @pytest.fixture
    def make(self) -> Make:
        return lambda name: self.target_cls(f"out/{name}.obj")

    @pytest.fixture
    def put(self) -> Put:
        return lambda target, obj: target.dump(obj)

    @pytest.fixture
    def payload(self) -> Payload:
        return an_object


class TestJson(_ObjectContract):
    """JsonTarget passes the conformance suite."""


class TestPickle(_ObjectContract):
    """PickleTarget passes the conformance suite."""

    target_cls = PickleTarget


def settings() -> Settings:
    return Settings(racy_window_ns=0, stat_cache_path=str(Path("stat.sqlite3").resolve()))


def test_json_bytes_are_canonical_utf8_with_a_trailing_newline() -> None:
    """Sorted keys, no spaces, UTF-8 kept as is, one newline; load() gives the object back."""
    target = JsonTarget("out/summary.json")
    target.dump({"b": [1, 2.5, None], "a": "café", "c": {"z": True, "y": "ü"}})
    assert Path("out/summary.json").read_bytes() == (
        '{"a":"café","b":[1,2.5,null],"c":{"y":"ü","z":true}}\n'.encode()
    )
    assert target.load() == {"a": "café", "b": [1, 2.5, None], "c": {"y": "ü", "z": True}}


def test_equal_json_objects_in_another_order_have_one_fingerprint() -> None:
    """Dictionaries filled in different orders give the same bytes and fingerprint."""
    one, two = JsonTarget("out/one.json"), JsonTarget("out/two.json")
    one.dump({"x": 1, "y": {"b": 2, "a": 1}})
    two.dump({"y": {"a": 1, "b": 2}, "x": 1})
    assert Path("out/one.json").read_bytes() == Path("out/two.json").read_bytes()
    assert one.fingerprint(settings()) == two.fingerprint(settings())
    two.dump({"y": {"a": 1, "b": 3}, "x": 1})
    assert one.fingerprint(settings()) != two.fingerprint(settings())


def test_pickle_uses_the_documented_protocol_and_round_trips() -> None:
    """The file starts with protocol 5's header and loads back equal."""
    target = PickleTarget("out/model.pkl")
    value = {"weights": [0.5, 1.5], "name": "m", "shape": (2, 1)}
    target.dump(value)
    data = Path("out/model.pkl").read_bytes()
    assert PICKLE_PROTOCOL == 5
    assert data[:2] == b"\x80\x05"
    assert data == pickle.dumps(value, protocol=5)
    assert target.load() == value


@pytest.mark.parametrize(
    ("target", "bad", "words"),
    [
        (JsonTarget("out/kept.json"), {"s": {1, 2}}, "as JSON"),
        (JsonTarget("out/kept.json"), {1: "a", "b": 2}, "as JSON"),
        (PickleTarget("out/kept.pkl"), {"f": lambda: 1}, "as a pickle"),
    ],
)
def test_an_object_that_cannot_be_written_leaves_the_previous_content(
    target: Any, bad: Any, words: str
) -> None:
    """A TypeError naming the file and the format; the old file stays, no temporary is left."""
    target.dump({"kept": True})
    before = Path(target.path).read_bytes()
    with pytest.raises(TypeError, match=words) as caught:
        target.dump(bad)
    assert target.path in str(caught.value)
    assert Path(target.path).read_bytes() == before
    assert [p.name for p in Path("out").iterdir()] == [Path(target.path).name]


def test_dump_goes_through_the_targets_own_atomic_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """dump() writes with open('w'): a failure while writing keeps the old file whole."""
    target = JsonTarget("out/atomic.json")
    target.dump([1, 2, 3])

    class Broken(Exception):
        pass

    real_open = JsonTarget.open

    def failing_open(self: JsonTarget, mode: str = "r") -> Any:
        stream = real_open(self, mode)
        if mode == "w":
            real_write = stream.write

            def write(data: bytes) -> int:
                real_write(data[:3])
                raise Broken

            stream.write = write
        return stream

    with monkeypatch.context() as patch:
        patch.setattr(JsonTarget, "open", failing_open)
        with pytest.raises(Broken):
            target.dump([4, 5, 6])
    assert json.loads(Path("out/atomic.json").read_text()) == [1, 2, 3]
    assert sorted(p.name for p in Path("out").iterdir()) == ["atomic.json"]


def test_a_pickle_others_could_have_written_is_not_loaded(tmp_path: Path) -> None:
    """Loading a pickle runs its writer's code: one that another user owns, or that every user
    may write, is refused with one sentence unless its writer is trusted explicitly."""
    target = PickleTarget(str(tmp_path / "model.pkl"))
    target.dump({"weights": [1, 2]})
    assert target.load() == {"weights": [1, 2]}
    os.chmod(target.path, 0o666)
    with pytest.raises(UntrustedPickle, match="world-writable"):
        target.load()
    assert target.load(trust_writer=True) == {"weights": [1, 2]}
    os.chmod(target.path, 0o644)
    if os.geteuid() == 0:  # only root can give a file away
        os.chown(target.path, 54321, -1)
        with pytest.raises(UntrustedPickle, match=r"another user \(uid 54321\)"):
            target.load()
        assert target.load(trust_writer=True) == {"weights": [1, 2]}
