"""Small pipelines the run-cache tests build: every task notes its runs in ``runs.log``.

A parameter (``factor``) that does not appear in the output's path is the everyday case the
run cache is for: switching it 1 -> 2 -> 1 rewrites the same files, and the second 1 has been
computed before.
"""

from __future__ import annotations

import os
from typing import Any, Dict

import luigi
from pipelines import log_run

from luigi_repro import (
    HashableDirectoryTarget,
    HashableExternalFile,
    HashableLocalTarget,
    TaskWithCheckingInputHash,
)


class RcScale(TaskWithCheckingInputHash):
    """Repeats every line of raw/a.txt ``factor`` times."""

    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/scaled.txt")

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source:
            lines = source.read().splitlines()
        with self.output().open("w") as sink:
            for line in lines:
                sink.write((line + "\n") * self.factor)


class RcCount(TaskWithCheckingInputHash):
    """Counts the scaled lines."""

    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return RcScale(self.factor)

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/count.txt")

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source:
            count = len(source.read().splitlines())
        with self.output().open("w") as sink:
            sink.write(f"{count}\n")


class RcSplit(TaskWithCheckingInputHash):
    """Two outputs and a folder: every line a file, grouped in sub-folders, one empty folder."""

    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return RcScale(self.factor)

    def output(self) -> Dict[str, Any]:
        return {
            "parts": HashableDirectoryTarget("out/parts"),
            "index": HashableLocalTarget("out/index.txt"),
        }

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source:
            lines = source.read().splitlines()
        with self.output()["parts"].temporary_path() as folder:
            os.mkdir(os.path.join(folder, "empty"))
            for number, line in enumerate(lines):
                group = os.path.join(folder, f"group{number % 2}")
                os.makedirs(group, exist_ok=True)
                with open(os.path.join(group, f"line{number}.txt"), "w") as part:
                    part.write(line + "\n")
        with self.output()["index"].open("w") as sink:
            sink.write("\n".join(f"line{n}" for n in range(len(lines))) + "\n")


class RcNeverCached(TaskWithCheckingInputHash):
    """Opts out: its runs are never kept (a random or huge output)."""

    run_cache = False
    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/never.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(str(self.factor))


class RcOtherWriter(TaskWithCheckingInputHash):
    """Another family writing RcScale's output path (a pipeline mistake a restore must not
    make worse)."""

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/scaled.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("other\n")


class RcDynamic(TaskWithCheckingInputHash):
    """Yields its input: the action key cannot cover it, so it is never cached."""

    factor = luigi.IntParameter()

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/dynamic.txt")

    def run(self) -> Any:
        log_run(self)
        source = yield HashableExternalFile("raw/a.txt")
        with source.open("r") as stream, self.output().open("w") as sink:
            sink.write(stream.read() * self.factor)


class RcTable(TaskWithCheckingInputHash):
    """A Parquet output, fingerprinted by the data it holds, and a JSON summary beside it."""

    factor = luigi.IntParameter()

    def requires(self) -> Any:
        return RcScale(self.factor)

    def output(self) -> Dict[str, Any]:
        from luigi_repro import JsonTarget, ParquetTarget

        return {"table": ParquetTarget("out/table.parquet"), "summary": JsonTarget("out/sum.json")}

    def run(self) -> None:
        import pandas

        log_run(self)
        with self.input().open("r") as source:
            words = source.read().split()
        frame = pandas.DataFrame({"word": words, "length": [len(w) for w in words]})
        self.output()["table"].dump(frame)
        self.output()["summary"].dump({"rows": len(frame), "factor": self.factor})
