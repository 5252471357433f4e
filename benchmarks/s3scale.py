"""What a warm check and an audit of many S3 outputs under one prefix cost, in requests and time.

moto's S3 server is started on 127.0.0.1 (as the tests do) and a pipeline of N tasks, each
writing one object under ``parts/`` from one raw object, plus a root made from all of them, is
built at two sizes. Requests are counted in the server's log. Per size:

- a warm ``complete()`` of the root inside a check epoch (one listing of ``parts/`` answers for
  every output and record; record bodies are remembered by ETag), and the same check outside an
  epoch, object by object, as every check was before;
- the first check of a process that did not build (no record body remembered yet);
- ``luigi-repro verify`` of the root's output inside a check epoch.

The log-log slope of the warm check's seconds between the two sizes says how it grows.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import luigi

from benchmarks.common import Results, environment
from luigi_repro import TaskWithCheckingInputHash
from luigi_repro.cli import main
from luigi_repro.runtime import reset
from luigi_repro.targets import HashableS3Target, s3, s3listing
from luigi_repro.targets.s3listing import check_epoch

NAME = "s3scale"

#: Tasks (S3 outputs under one prefix): normal and --quick.
SIZES = {False: (250, 1000), True: (60, 240)}


class Seed(luigi.ExternalTask):
    bucket = luigi.Parameter()

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/raw/seed.txt")


class Part(TaskWithCheckingInputHash):
    bucket = luigi.Parameter()
    number = luigi.IntParameter()

    def requires(self) -> luigi.Task:
        return Seed(self.bucket)

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/parts/part-{self.number:05}.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(f"{self.input().open('r').read()} {self.number}\n")


class Gather(TaskWithCheckingInputHash):
    bucket = luigi.Parameter()
    count = luigi.IntParameter()

    def requires(self) -> List[Part]:
        return [Part(self.bucket, number) for number in range(self.count)]

    def output(self) -> HashableS3Target:
        return HashableS3Target(f"s3://{self.bucket}/parts/all.txt")

    def run(self) -> None:
        with self.output().open("w") as sink:
            sink.write(f"{self.count} parts\n")


def _moto_server(folder: Path) -> Any:
    """The tests' loopback moto server (tests/servers.py), started."""
    path = Path(__file__).resolve().parents[1] / "tests" / "servers.py"
    spec = importlib.util.spec_from_file_location("luigi_repro_test_servers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MotoServer(folder).start()


def _counted(server: Any, bucket: str, action: Callable[[], Any]) -> Tuple[int, float]:
    """Requests on ``bucket`` and seconds that ``action`` took."""
    mark = server.log_mark()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    return len(server.requests_since(mark, bucket)), seconds


def _check(bucket: str, count: int, listings: bool) -> None:
    with check_epoch() if listings else _without_listings():
        if not Gather(bucket, count).complete():
            raise AssertionError("the built pipeline should be complete")


@contextlib.contextmanager
def _without_listings() -> Iterator[None]:
    """Every prefix counts as unlistable: each object is asked about on its own, as before."""
    saved = s3listing.MAX_LISTED_PAGES
    s3listing.MAX_LISTED_PAGES = 0
    try:
        yield
    finally:
        s3listing.MAX_LISTED_PAGES = saved


def _verify(bucket: str) -> None:
    with check_epoch(), contextlib.redirect_stdout(io.StringIO()):
        if main(["verify", "--format", "json", f"s3://{bucket}/parts/all.txt"]) != 0:
            raise AssertionError("the built pipeline should verify")


def _measure(server: Any, count: int) -> Dict[str, Tuple[int, float]]:
    import boto3

    bucket = f"bench-{count}-{os.getpid()}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="raw/seed.txt", Body=b"seed")
    if not luigi.build([Gather(bucket, count)], local_scheduler=True, log_level="WARNING"):
        raise AssertionError("the build failed")
    reset()
    first = _counted(server, bucket, lambda: _check(bucket, count, True))
    figures = {"first check, no record body remembered": first}
    figures["warm check, object by object"] = _counted(
        server, bucket, lambda: _check(bucket, count, False)
    )
    figures["warm check"] = _counted(server, bucket, lambda: _check(bucket, count, True))
    figures["verify"] = _counted(server, bucket, lambda: _verify(bucket))
    return figures


def run(results: Results, quick: bool) -> None:
    print(f"{NAME}: checks of many S3 outputs under one prefix (moto on 127.0.0.1)")
    measured: Dict[int, Dict[str, Tuple[int, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        server = _moto_server(Path(folder) / "moto")
        try:
            settings = dict(server.env(), LUIGI_REPRO_STAT_CACHE=f"{folder}/statcache.sqlite3")
            with environment(**settings), _chdir(folder):
                s3._clients.clear()  # a client made before the environment pointed here
                for count in SIZES[quick]:
                    measured[count] = _measure(server, count)
        finally:
            server.stop()
            s3._clients.clear()
    for count, figures in measured.items():
        for what, (requests, seconds) in figures.items():
            per_object = requests / count
            bounded = what in ("warm check", "verify")
            ok = requests <= 0.05 * count + 5 if bounded else None
            target = f"<= 0.05 + 5/{count}" if bounded else None
            results.add(
                NAME,
                f"{what}, {count} outputs: requests/object",
                per_object,
                "",
                target=target,
                ok=ok,
            )
            results.add(NAME, f"{what}, {count} outputs", seconds, "s")
    (small, large) = SIZES[quick]
    for what in ("warm check", "verify"):
        slope = math.log(measured[large][what][1] / measured[small][what][1]) / math.log(
            large / small
        )
        results.add(
            NAME,
            f"{what} time growth (log-log slope)",
            slope,
            "",
            target="<= 1.15",
            ok=slope <= 1.15,
        )


@contextlib.contextmanager
def _chdir(folder: str) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
