"""Attacks on the local run cache, each one a way it once failed or could fail.

Each test is one attack, as a user meets it: a build that hangs, restores the wrong bytes, or
throws away what a teammate stored (an entry naming another action's blob with a wrong size, a
closure that cannot be fingerprinted, a package upgrade under ``on_env_change = rerun``, a
stale signing key, a symlink or a huge sparse file planted as a blob, a symlink inside a folder
output under hard links, a configuration value changed, an entry of a newer schema). Hangs
are tested one level down (``RunCache.lookup`` and ``LocalStore.get_file``, what every build
calls) in a thread that is released afterwards, so a failing fix never hangs the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import luigi
import pytest
from pipelines import build, families, log_run, runs, status_of, write_raw
from runcachepipeline import RcScale

import luigi_repro.codeclosure as codeclosure
from luigi_repro import (
    HashableDirectoryTarget,
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
)
from luigi_repro.config import load_settings
from luigi_repro.runcache import RunCache
from luigi_repro.runcacheentry import BlobRef
from luigi_repro.runcachekey import ActionKey
from luigi_repro.runcachestore import LocalStore


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runcache"
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE", str(folder))
    write_raw("a", "alpha\nbeta\ngamma\n")
    return folder


def entry_of(cache: Path, factor: int) -> Path:
    """The entry of RcScale(factor) (or of a subprocess pipeline's task with that factor)."""
    for path in (cache / "entries").rglob("*.json"):
        if json.loads(path.read_bytes())["task"]["params"].get("factor") == str(factor):
            return path
    raise AssertionError(f"no entry for factor {factor}")


def blobs(cache: Path) -> List[Path]:
    return sorted(p for p in (cache / "blobs").rglob("*") if not p.is_dir())


def finishes(call: Callable[[], Any], release: Path, seconds: float = 10) -> bool:
    """Does ``call`` return within ``seconds``? A call blocked on the FIFO ``release`` is let go
    (a writer opens and closes it) so that no thread stays stuck."""
    thread = threading.Thread(target=lambda: _swallow(call), daemon=True)
    thread.start()
    thread.join(seconds)
    done = not thread.is_alive()
    while thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(release, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(0.2)
    return done


def _swallow(call: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):  # only whether it returns counts here
        call()


def test_fifo_planted_as_entry_does_not_hang_a_lookup(tmp_path: Path) -> None:
    """13-01 (withstood since the FIFO fix on main): kept so that it stays so."""
    key = ActionKey({"attack": "fifo entry"})
    store = LocalStore(str(tmp_path / "shared"))
    path = tmp_path / "shared" / "entries" / key[7:9] / f"{key[7:]}.json"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    cache = RunCache(store, load_settings(), None)
    assert finishes(lambda: cache.lookup(key), path)


def test_fifo_planted_as_blob_does_not_hang_a_restore(tmp_path: Path) -> None:
    """13-02 (withstood since the FIFO fix on main): kept so that it stays so."""
    digest = "xxh3_128:" + "ab" * 16
    store = LocalStore(str(tmp_path / "shared"))
    path = tmp_path / "shared" / "blobs" / "xxh3_128" / "ab" / ("ab" * 16)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    dest = str(tmp_path / "restored.txt")
    assert finishes(lambda: store.get_file(BlobRef(digest, 6), dest, False), path)


def test_entry_with_wrong_blob_size_does_not_delete_a_good_blob(cache: Path) -> None:
    assert build(RcScale(1))
    assert build(RcScale(2))
    one, two = entry_of(cache, 1), entry_of(cache, 2)
    doc, other = json.loads(one.read_bytes()), json.loads(two.read_bytes())
    blob = other["outputs"][0]["blob"]
    doc["outputs"][0]["blob"] = dict(blob, size=blob["size"] + 1)  # parses; it lies
    one.write_text(json.dumps(doc))
    assert build(RcScale(1))
    runs()
    assert build(RcScale(2))
    assert runs() == [], "RcScale(2)'s own entry and blob were good: it must be restored"


#: What RcbEdited writes: a test changes it as a user edits the code.
RCB_WORDING = "made by the old code"


class RcbEdited(TaskWithCheckingInputHash):
    """A task whose code the closure walker cannot follow (simulated below)."""

    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> Any:
        return HashableLocalTarget("out/edited.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(f"{RCB_WORDING}, {self.factor}\n")


def test_edited_task_whose_code_cannot_be_fingerprinted_is_not_restored(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def walker_fails(*args: Any) -> Any:
        raise RuntimeError("the walker cannot follow this code")

    monkeypatch.setattr(codeclosure, "_compute", walker_fails)
    assert build(RcbEdited(1))
    assert build(RcbEdited(2))
    monkeypatch.setitem(globals(), "RCB_WORDING", "made by the new code")  # the user's edit
    assert build(RcbEdited(1))
    assert Path("out/edited.txt").read_text() == "made by the new code, 1\n"


def _subprocess_build(paths: List[Path], expr: str, env: Dict[str, str]) -> None:
    """Build in a fresh interpreter (an edited module or package, a new closure)."""
    script = f"import luigi, rcbattack13 as p\nluigi.build([{expr}], local_scheduler=True)\n"
    pythonpath = os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env, "PYTHONPATH": pythonpath},
        check=True,
        capture_output=True,
        timeout=120,
    )


def _install_fake_package(site: Path, version: str) -> None:
    for old in site.glob("rcbfakepkg*"):
        for item in sorted(old.rglob("*"), reverse=True):
            item.unlink() if item.is_file() else item.rmdir()
        old.rmdir()
    (site / "rcbfakepkg").mkdir(parents=True)
    (site / "rcbfakepkg" / "__init__.py").write_text(f"VERSION = {version!r}\n")
    info = site / f"rcbfakepkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: rcbfakepkg\nVersion: {version}\n")
    (info / "top_level.txt").write_text("rcbfakepkg\n")
    (info / "RECORD").write_text("rcbfakepkg/__init__.py,,\n")


def test_package_upgrade_under_on_env_change_rerun_computes_again(
    cache: Path, tmp_path: Path
) -> None:
    code, site = tmp_path / "code", tmp_path / "lib" / "site-packages"
    code.mkdir()
    (code / "rcbattack13.py").write_text(
        textwrap.dedent(
            """
            import luigi, rcbfakepkg
            from luigi_repro import HashableExternalFile, HashableLocalTarget
            from luigi_repro import TaskWithCheckingInputHash

            class RcbStamped(TaskWithCheckingInputHash):
                def requires(self):
                    return HashableExternalFile("raw/a.txt")

                def output(self):
                    return HashableLocalTarget("out/stamped.txt")

                def run(self):
                    with self.output().open("w") as sink:
                        sink.write("made with " + rcbfakepkg.VERSION + "\\n")
            """
        )
    )
    env = {"LUIGI_REPRO_ON_ENV_CHANGE": "rerun"}
    _install_fake_package(site, "1.0")
    _subprocess_build([code, site], "p.RcbStamped()", env)
    _install_fake_package(site, "2.0")
    _subprocess_build([code, site], "p.RcbStamped()", env)
    assert Path("out/stamped.txt").read_text() == "made with 2.0\n"


def test_process_with_another_signing_key_leaves_signed_entries_alone(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "team-key")
    assert build(RcScale(1))
    assert build(RcScale(2))
    signed = entry_of(cache, 1).read_bytes()
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "another-key")
    assert build(RcScale(1))
    assert entry_of(cache, 1).read_bytes() == signed


def test_blob_replaced_by_a_symlink_heals_after_one_run(cache: Path, tmp_path: Path) -> None:
    assert build(RcScale(1))
    assert build(RcScale(2))
    for blob in blobs(cache):
        copy = tmp_path / f"copy-{blob.name}"
        copy.write_bytes(blob.read_bytes())
        blob.unlink()
        blob.symlink_to(copy)
    runs()
    for _ in range(2):
        assert build(RcScale(1))
        assert build(RcScale(2))
    assert families(runs()) == ["RcScale"] * 2, "each action runs once, then is restored"


def test_huge_blob_is_refused_by_its_size_before_it_is_read(cache: Path) -> None:
    assert build(RcScale(1))
    assert build(RcScale(2))
    for blob in blobs(cache):
        blob.chmod(0o644)
        with open(blob, "r+b") as stream:
            stream.truncate(512 * 1024 * 1024)  # sparse: costs no disk until copied
    before = _bytes_read()
    assert build(RcScale(1))
    assert Path("out/scaled.txt").read_text() == "alpha\nbeta\ngamma\n"
    assert _bytes_read() - before < 64 * 1024 * 1024, "a 21-byte entry read 512 MiB"


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


class RcbLinkTree(TaskWithCheckingInputHash):
    """A folder output holding a symlink to a file of the user's."""

    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableDirectoryTarget:
        return HashableDirectoryTarget("out/tree")

    def run(self) -> None:
        log_run(self)
        with self.output().temporary_path() as folder:
            with open(os.path.join(folder, "data.txt"), "w") as sink:
                sink.write("x" * self.factor)
            os.symlink(os.path.abspath("raw/a.txt"), os.path.join(folder, "link"))


def test_symlink_inside_a_folder_output_never_becomes_a_symlink_blob(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUIGI_REPRO_RUN_CACHE_LINKS", "true")
    assert build(RcbLinkTree(1))
    linked = [blob for blob in blobs(cache) if blob.is_symlink()]
    assert not linked, "the cache holds a symlink to raw/a.txt, not its bytes"


def test_temporary_of_a_killed_store_is_removed_by_cache_gc(cache: Path) -> None:
    """13-13: a store killed mid-copy leaves its temporary in tmp/; runs never remove it (they
    cannot tell a dead writer from a slow one), ``cache gc`` does once it is old enough."""
    assert build(RcScale(1))
    dead = cache / "tmp" / "999999999-0123456789abcdef"  # a killed writer's
    dead.parent.mkdir(exist_ok=True)
    dead.write_bytes(b"half of a blob")
    for factor in (2, 1):
        assert build(RcScale(factor))
    assert dead.exists()
    time.sleep(1.5)  # older than the grace below (its inode change time cannot be faked)
    done = subprocess.run(
        [
            "luigi-repro",
            "cache",
            "gc",
            "--yes",
            "--max-size",
            "1GiB",
            "--grace",
            "1s",
            "--cache",
            str(cache),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not dead.exists()
    runs()
    assert build(RcScale(2))
    assert runs() == [], "the entries and blobs gc kept still restore"


class RcbSettings(luigi.Config):
    multiplier = luigi.IntParameter(default=1)


class RcbConfigured(TaskWithCheckingInputHash):
    """Its output depends on a configuration value (the README: make it a parameter)."""

    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> Any:
        return HashableLocalTarget("out/configured.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("x" * (self.factor * RcbSettings().multiplier))


def test_run_after_a_config_change_is_not_replaced_by_an_old_restore(cache: Path) -> None:
    config = luigi.configuration.get_config()
    config.set("RcbSettings", "multiplier", "1")
    try:
        assert build(RcbConfigured(1))
        assert build(RcbConfigured(2))
        config.set("RcbSettings", "multiplier", "3")
        assert build(RcbConfigured(1))  # the record names RcbConfigured(2): it must run
    finally:
        config.remove_section("RcbSettings")
    assert Path("out/configured.txt").read_text() == "xxx"


def test_entry_of_a_newer_schema_is_skipped_not_deleted(cache: Path) -> None:
    assert build(RcScale(1))
    assert build(RcScale(2))
    path = entry_of(cache, 1)
    doc = json.loads(path.read_bytes())
    doc["schema"] = 2
    path.write_text(json.dumps(doc))
    assert build(RcScale(1))
    assert status_of(RcScale(1)).ok
    assert json.loads(path.read_bytes())["schema"] == 2
