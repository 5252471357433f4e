"""A pipeline and a build that kills itself (SIGKILL) at a chosen step of the run protocol.

``python faults.py POINT N`` builds ``Z`` and sends itself SIGKILL the N-th time the build
reaches POINT; nothing is cleaned up, exactly as after a real crash. ``random:SECONDS`` kills at
a random moment within SECONDS instead. The tests then check what the crash left behind.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from typing import Any, Callable, Dict

import luigi
from pipelines import log_run

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
    protocol,
)
from luigi_repro.protocol import RunProtocol
from luigi_repro.targets import local

POINTS = (
    "before-lock",
    "after-records-removed",
    "mid-output-write",
    "after-outputs-written",
    "before-records",
    "between-records",
    "mid-record-write",
    "after-records",
)


class A(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/a.txt")

    def run(self) -> None:
        log_run(self)
        text = self.input().open().read()
        with self.output().open("w") as sink:
            sink.write(text[: len(text) // 2])
            _reached("mid-output-write")
            sink.write(text[len(text) // 2 :].upper())


class M(TaskWithCheckingInputHash):
    """Two outputs, so that a crash can fall between writing their records."""

    def requires(self) -> luigi.Task:
        return A()

    def output(self) -> Dict[str, HashableLocalTarget]:
        return {"one": HashableLocalTarget("out/m1.txt"), "two": HashableLocalTarget("out/m2.txt")}

    def run(self) -> None:
        log_run(self)
        text = self.input().open().read()
        for key, suffix in (("one", "1"), ("two", "2")):
            with self.output()[key].open("w") as sink:
                sink.write(text + suffix)
                _reached("mid-output-write")


class Z(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return M()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/z.txt")

    def run(self) -> None:
        log_run(self)
        parts = self.input()
        with self.output().open("w") as sink:
            sink.write(parts["one"].open().read() + parts["two"].open().read())


def expected(raw: str) -> Dict[str, str]:
    """What each output must hold for a given raw input."""
    a = raw[: len(raw) // 2] + raw[len(raw) // 2 :].upper()
    return {"out/a.txt": a, "out/m1.txt": a + "1", "out/m2.txt": a + "2", "out/z.txt": f"{a}1{a}2"}


_target = ("", 0)
_seen: Dict[str, int] = {}


def _reached(point: str) -> None:
    _seen[point] = _seen.get(point, 0) + 1
    if point == _target[0] and _seen[point] == _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def _around(owner: Any, name: str, before: str = "", after: str = "") -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before:
            _reached(before)
        result = original(*args, **kwargs)
        if after and result is not False:
            _reached(after)
        return result

    setattr(owner, name, wrapped)


def _install() -> None:
    _around(RunProtocol, "begin", before="before-lock", after="after-records-removed")
    _around(RunProtocol, "finish", before="after-outputs-written", after="after-records")
    _around(protocol, "build_record", after="before-records")  # the record, not yet written
    original_write = local.HashableLocalTarget.write_record_bytes

    def write_record_bytes(self: Any, settings: Any, data: bytes) -> None:
        original_write(self, settings, data)
        _reached("between-records")

    local.HashableLocalTarget.write_record_bytes = write_record_bytes  # type: ignore[method-assign]
    original_atomic = local.atomic_write

    def atomic_write(path: str, data: bytes, *, fsync: bool = True) -> None:
        # The crash between writing the temporary file and renaming it into place.
        if _target[0] == "mid-record-write" and _seen.get("mid-record-write", 0) + 1 == _target[1]:
            from luigi_repro.locking import create_new_file, temporary_name

            _, fd = create_new_file(lambda: temporary_name(path))
            with os.fdopen(fd, "wb") as stream:
                stream.write(data[: len(data) // 2])
        _reached("mid-record-write")
        original_atomic(path, data, fsync=fsync)

    local.atomic_write = atomic_write  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    global _target
    point, count = argv[0], argv[1] if len(argv) > 1 else "1"
    if point.startswith("random:"):
        delay = random.uniform(0, float(point.split(":", 1)[1]))
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    else:
        _target = (point, int(count))
        _install()
    ok = luigi.build([Z()], local_scheduler=True, workers=1, log_level="ERROR")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
