"""Pipelines for the ``luigi-repro dag`` tests: a wide one of about 500 tasks, and one whose
labels hold everything a graph format could misread."""

from __future__ import annotations

from typing import Any, List

import luigi
from pipelines import log_run

from luigi_repro import HashableExternalFile, HashableLocalTarget, TaskWithCheckingInputHash

PARTS, PER_GROUP = 250, 25
GROUPS = PARTS // PER_GROUP


def part_file(index: int) -> str:
    return f"raw/part_{index}.txt"


class G12Part(TaskWithCheckingInputHash):
    """Copies one raw part."""

    index = luigi.IntParameter()

    def requires(self) -> Any:
        return HashableExternalFile(part_file(self.index))

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/part_{self.index}.txt")

    def run(self) -> None:
        log_run(self)
        with self.input().open("r") as source, self.output().open("w") as sink:
            sink.write(source.read())


class G12Group(TaskWithCheckingInputHash):
    """Joins PER_GROUP parts."""

    group = luigi.IntParameter()

    def requires(self) -> List[G12Part]:
        start = self.group * PER_GROUP
        return [G12Part(index) for index in range(start, start + PER_GROUP)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget(f"out/group_{self.group}.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            for target in self.input():
                sink.write(target.open("r").read())


class G12Total(TaskWithCheckingInputHash):
    """Joins every group: 1 + GROUPS + 2 * PARTS tasks in all, raw inputs included."""

    def requires(self) -> List[G12Group]:
        return [G12Group(group) for group in range(GROUPS)]

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/total.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write("".join(target.open("r").read() for target in self.input()))


#: A parameter value that would end a DOT string, add a Mermaid node, close an HTML element,
#: start a script or a Mermaid directive, or reverse the text around it.
_SYNTAX = '"]; evil -> n0; n0 --> x["</script><script>alert(1)</script>\\" \n'
HOSTILE = _SYNTAX + "%%{init}%% #quot; `a`\u202e"


class G12Hostile(TaskWithCheckingInputHash):
    """A task whose label holds :data:`HOSTILE`."""

    text = luigi.Parameter(default=HOSTILE)

    def requires(self) -> Any:
        return HashableExternalFile("raw/a.txt")

    def output(self) -> HashableLocalTarget:
        return HashableLocalTarget("out/hostile.txt")

    def run(self) -> None:
        log_run(self)
        with self.output().open("w") as sink:
            sink.write(self.input().open("r").read())
