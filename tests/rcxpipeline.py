"""Tasks for the second round of run-cache attacks (tests/test_run_cache_attacks2.py); every
``run()`` notes itself in ``runs.log`` (:func:`pipelines.log_run`)."""

from __future__ import annotations

import os
from typing import Any

import luigi
from luigi.configuration import get_config
from pipelines import log_run

from luigi_repro import (
    HashableExternalFile,
    HashableLocalTarget,
    HashableS3Target,
    TaskWithCheckingInputHash,
)


class RcxUp(TaskWithCheckingInputHash):
    """Upper-cases raw/a.txt."""

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/up.txt")

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source, self.output().open("w") as sink:
            sink.write(source.read().upper())


class RcxDown(TaskWithCheckingInputHash):
    """Reverses RcxUp's output."""

    def requires(self) -> Any:
        return RcxUp()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/down.txt")

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source, self.output().open("w") as sink:
            sink.write(source.read()[::-1])


class RcxGreet(TaskWithCheckingInputHash):
    """Writes a word read from luigi.cfg the oldest way: no ``luigi.Config`` class."""

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/greet.txt")

    def run(self) -> None:
        log_run(self)
        word = get_config().get("rcx", "greeting", "hello")
        with self.output().open("w") as sink:
            sink.write(word + "\n")


class RcxShout(TaskWithCheckingInputHash):
    """An S3 output (``s3://$RCX_BUCKET/out/shout``) made from a local input."""

    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{os.environ['RCX_BUCKET']}/out/shout")

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source:
            text = source.read()
        with self.output().open("w") as sink:
            sink.write(text.upper() * self.factor)


class RcxInPlace(TaskWithCheckingInputHash):
    """Writes its output in place through its path, as much user code does (pandas to_csv…)."""

    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/inplace.txt")

    def run(self) -> None:
        log_run(self)
        with open(self.input().path) as source, open(self.output().path, "w") as sink:
            sink.write(source.read() * self.factor)
