"""Processes that race: builders of one hot task, and a reader that never stops checking.

``python racers.py build`` builds ``Cold`` once (its upstream ``Hot`` sleeps while it runs, to
widen every race); ``python racers.py read STOPFILE`` parses every record and calls
``complete()`` in a loop until STOPFILE exists, then prints how many records it could not parse.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import luigi
from pipelines import log_run

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    RecordError,
    TaskWithCheckingInputHash,
)
from luigi_repro.record import parse_record


class Hot(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return HashableExternalFile("raw/hot.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/hot.txt")

    def run(self) -> None:
        log_run(self)
        text = self.input().open().read()
        time.sleep(0.05)
        with self.output().open("w") as sink:
            sink.write(text.upper())


class Cold(TaskWithCheckingInputHash):
    def requires(self) -> luigi.Task:
        return Hot()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/cold.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(self.input().open().read()[::-1])


def read_until(stop: Path) -> int:
    bad = 0
    while not stop.exists():
        for path in Path("out").glob("*.repro.json"):
            try:
                parse_record(path.read_bytes(), str(path))
            except FileNotFoundError:
                pass  # removed between listing and reading: the protocol's step 4
            except RecordError:
                bad += 1
        Cold().complete()
    return bad


if __name__ == "__main__":
    if sys.argv[1] == "build":
        ok = luigi.build([Cold()], local_scheduler=True, log_level="ERROR")
        sys.exit(0 if ok else 1)
    print(read_until(Path(sys.argv[2])), flush=True)
    sys.exit(0)
