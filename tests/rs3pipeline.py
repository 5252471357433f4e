"""Tasks for the S3 run cache tests; every ``run()`` leaves a marker in the current folder.

Inputs and local outputs are under the current folder (so two working folders are two
checkouts at different absolute paths); S3 outputs go to ``s3://$RS3_BUCKET/$RS3_OUT/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import luigi

from luigi_repro import HashableLocalTarget, HashableS3Target, TaskWithCheckingInputHash

MARKERS = "ran"


def mark(task: luigi.Task) -> None:
    """Note in ``./ran/<family>`` that ``task`` ran here."""
    os.makedirs(MARKERS, exist_ok=True)
    with open(os.path.join(MARKERS, task.get_task_family()), "a") as stream:
        stream.write(task.task_id + "\n")


def ran(folder: Path) -> List[str]:
    """The families whose run() ran in ``folder``."""
    markers = folder / MARKERS
    return sorted(path.name for path in markers.iterdir()) if markers.is_dir() else []


class Rs3Raw(luigi.ExternalTask):
    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.abspath("raw.txt"))


class Rs3Upper(TaskWithCheckingInputHash):
    """A local output made from a local input."""

    def requires(self) -> luigi.Task:
        return Rs3Raw()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(os.path.abspath(os.path.join("out", "upper.txt")))

    def run(self) -> None:
        mark(self)
        with self.input().open("r") as source:
            text = source.read()
        with self.output().open("w") as sink:
            sink.write(text.upper())


class Rs3Shout(TaskWithCheckingInputHash):
    """An S3 output made from a local input."""

    def requires(self) -> luigi.Task:
        return Rs3Raw()

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{os.environ['RS3_BUCKET']}/{os.environ['RS3_OUT']}/shout")

    def run(self) -> None:
        mark(self)
        with self.input().open("r") as source:
            text = source.read()
        with self.output().open("w") as sink:
            sink.write(text.upper() + "!\n")
