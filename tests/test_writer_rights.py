"""A record written by another user can only make a check read what that user could read.

The check runs as root (an administrator auditing a shared folder); the records are planted by
``nobody`` and name a root-only secret: through a symlink inside a folder the neighbour owns, or
through a symlink swapped back and forth while audits run. The neighbour records their guess of
the secret as the fingerprint: an audit that said "up to date" would confirm the guess.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import luigi
import pytest

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    audit_paths,
)

NEIGHBOUR = 65534

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def area() -> Iterator[Path]:
    """A folder every user can reach (pytest's own are root-only), with a root-only secret."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root can plant records owned by another user")
    top = Path(tempfile.mkdtemp(prefix="luigi-repro-writer-"))
    try:
        top.chmod(0o755)
        (top / "private").mkdir(mode=0o700)
        (top / "private" / "secret").write_text("hunter2\n")
        (top / "private" / "secret").chmod(0o600)
        (top / "shared").mkdir()
        (top / "shared").chmod(0o1777)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


class Use(TaskWithCheckingInputHash):
    """Reads the raw file or folder ``source``; writes ``out``."""

    source = luigi.Parameter()
    out = luigi.Parameter()

    def requires(self) -> Any:
        return HashableExternalFile(self.source)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(self.out)

    def run(self) -> None:
        with self.output().open("w") as stream:
            stream.write("ok")


def record_guess(area: Path, named: Path, guess: Path) -> Path:
    """Build a task whose input is ``named`` (holding the guess), then hand its record to the
    neighbour as a plain location; returns the output."""
    out = area / "shared" / "out.txt"
    assert luigi.build(
        [Use(source=str(named), out=str(out))], local_scheduler=True, log_level="ERROR"
    )
    record = Path(f"{out}.repro.json")
    document = json.loads(record.read_text())
    for entry in document["inputs"]:
        entry["task_id"] = entry["task_family"] = entry["task_module"] = None
    record.unlink()
    record.write_text(json.dumps(document))
    for path in (record, guess, named):
        os.lchown(path, NEIGHBOUR, NEIGHBOUR)
    return out


def reasons(out: Path) -> tuple[bool, list[str]]:
    report = audit_paths([str(out)])
    return report.ok, [r.message for node in report.tasks.values() for r in node.reasons]


def test_a_link_inside_the_neighbours_folder_reaches_nothing_of_roots(area: Path) -> None:
    """The neighbour's folder holds a link to root's secret: the folder is reported as holding
    a file its writer cannot read, whether the guess is right or wrong."""
    data = area / "shared" / "data"
    data.mkdir()
    guess = data / "leak"
    guess.write_text("hunter2\n")  # the neighbour's guess, recorded as the folder's content
    out = record_guess(area, data, guess)
    guess.unlink()
    guess.symlink_to(area / "private" / "secret")
    os.lchown(guess, NEIGHBOUR, NEIGHBOUR)
    right = reasons(out)
    (area / "private" / "secret").write_text("wrong guess\n")
    wrong = reasons(out)
    assert right == wrong
    assert not right[0]
    assert "leak is not readable by the record's writer (uid 65534)" in right[1][0]


def test_a_link_swapped_while_audits_run_never_confirms_a_guess(area: Path) -> None:
    """A thread swaps the named link between a harmless file and root's secret while audits
    run: no audit ever says "up to date" (the secret is never read for the neighbour)."""
    shared = area / "shared"
    guess = shared / "guess"
    guess.write_text("hunter2\n")
    named = shared / "link"
    named.symlink_to(guess)
    out = record_guess(area, named, guess)
    guess.unlink()
    (shared / "allowed").write_text("harmless\n")
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for target in (shared / "allowed", area / "private" / "secret"):
                (shared / ".tmp").symlink_to(target)
                os.replace(shared / ".tmp", named)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        verdicts = [reasons(out)[0] for _ in range(150)]
    finally:
        stop.set()
        swapper.join()
    assert not any(verdicts)


def test_a_link_planted_in_a_declared_input_folder_is_not_followed(area: Path) -> None:
    """A neighbour drops a link to root's secret into a team folder that a task declares as
    input: the run describes the link instead of reading the secret, so the record (readable by
    the neighbour) holds no fingerprint of it."""
    from luigi_repro.fingerprint import hash_bytes

    incoming = area / "shared" / "incoming"
    incoming.mkdir()
    incoming.chmod(0o1777)
    (incoming / "a.csv").write_text("1,2\n")
    link = incoming / "zz"
    link.symlink_to(area / "private" / "secret")
    os.lchown(link, NEIGHBOUR, NEIGHBOUR)
    out = area / "shared" / "report.txt"
    task = Use(source=str(incoming), out=str(out))
    assert luigi.build([task], local_scheduler=True, log_level="ERROR")
    manifest = json.loads(Path(f"{out}.repro.json").read_text())["inputs"][0]["manifest"]
    assert set(manifest) == {"a.csv", "zz"}
    secret = (area / "private" / "secret").read_bytes()
    assert manifest["zz"] != hash_bytes(secret, manifest["zz"].split(":")[0])
    assert task.complete()
