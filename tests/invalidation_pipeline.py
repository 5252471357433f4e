"""A small pipeline for the ``invalidate`` and ``gc`` tests, built in fresh processes.

Each ``run()`` appends its task's printed form to ``runs.log`` in the working folder, so a test
sees exactly which tasks a build ran.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

import luigi
import luigi.format

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    HashableS3Target,
    TaskWithCheckingInputHash,
)


def log_run(task: luigi.Task) -> None:
    with open("runs.log", "a", encoding="utf-8") as stream:
        stream.write(f"{task!r}\n")


class M12Clean(TaskWithCheckingInputHash):
    """Two outputs: a file and a folder."""

    name = luigi.Parameter()

    def requires(self) -> Any:
        return HashableExternalFile(f"raw/{self.name}.txt")

    def output(self) -> Dict[str, HashableLocalTarget]:
        return {
            "text": HashableLocalTarget(f"out/clean-{self.name}.txt"),
            "parts": HashableLocalTarget(f"out/parts-{self.name}"),
        }

    def run(self) -> None:
        log_run(self)
        with self.input().open() as source:
            text = source.read().lower()
        with self.output()["text"].open("w") as target:
            target.write(text)
        with self.output()["parts"].temporary_path() as folder:
            os.makedirs(folder)
            for index, line in enumerate(text.splitlines()):
                with open(os.path.join(folder, f"part-{index}"), "w") as part:
                    part.write(line)


class M12Merge(TaskWithCheckingInputHash):
    def requires(self) -> List[M12Clean]:
        return [M12Clean(name="a"), M12Clean(name="b")]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/merged.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as target:
            for outputs in self.input():
                with outputs["text"].open() as source:
                    target.write(source.read())


class M12Report(TaskWithCheckingInputHash):
    def requires(self) -> M12Merge:
        return M12Merge()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/report.txt")

    def run(self) -> None:
        log_run(self)
        with self.input().open() as source, self.output().open("w") as target:
            target.write(f"{len(source.read())} characters\n")


class M12Upload(TaskWithCheckingInputHash):
    """An S3 output made from a local one."""

    bucket = luigi.Parameter()

    def requires(self) -> M12Clean:
        return M12Clean(name="a")

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/clean-a.txt", format=luigi.format.Nop)

    def run(self) -> None:
        log_run(self)
        with self.input()["text"].open() as source, self.output().open("w") as target:
            target.write(source.read().encode())
