"""A pipeline whose inputs and outputs live on S3, built by several workers at once.

Raw objects ``raw/<name>.txt`` in the bucket named by ``$PIPELINE_BUCKET``; three stages per
name and a summary over a list of names, so that summaries over overlapping lists share tasks.
Every run appends its task_id to ``runs.log`` in the current folder (one host in the tests).
"""

from __future__ import annotations

import os
from typing import Dict, List

import luigi
from luigi.contrib.s3 import S3Target
from pipelines import log_run

from luigi_repro import HashableS3Target, TaskWithCheckingInputHash


def bucket() -> str:
    return os.environ["PIPELINE_BUCKET"]


class Raw(luigi.ExternalTask):
    name = luigi.Parameter()

    def output(self) -> S3Target:
        return S3Target(f"s3://{bucket()}/raw/{self.name}.txt")


class Tokenize(TaskWithCheckingInputHash):
    name = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return Raw(self.name)

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{bucket()}/out/tokens_{self.name}.txt")

    def run(self) -> None:
        log_run(self)
        words = self.input().open("r").read().split()
        with self.output().open("w") as sink:
            sink.write("\n".join(word.lower() for word in words) + "\n")


class Count(TaskWithCheckingInputHash):
    name = luigi.Parameter()

    def requires(self) -> luigi.Task:
        return Tokenize(self.name)

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{bucket()}/out/count_{self.name}.txt")

    def run(self) -> None:
        log_run(self)
        tokens = self.input().open("r").read().split()
        with self.output().open("w") as sink:
            sink.write(f"{len(tokens)}\n")


class Summary(TaskWithCheckingInputHash):
    names = luigi.ListParameter()

    def requires(self) -> Dict[str, luigi.Task]:
        return {name: Count(name) for name in self.names}

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{bucket()}/out/summary_{'-'.join(self.names)}.txt")

    def run(self) -> None:
        log_run(self)
        counts: List[str] = [
            f"{name} {self.input()[name].open('r').read().strip()}" for name in self.names
        ]
        with self.output().open("w") as sink:
            sink.write("\n".join(counts) + "\n")
