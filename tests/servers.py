"""Real servers for the tests, started on 127.0.0.1 and stopped afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Iterator, List, Optional


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until ``url`` answers (any HTTP status), or fail if the server died or is late."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}: {output[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"no answer from {url} within {timeout} s")


class MotoServer:
    """moto's standalone S3-compatible server on loopback (a real socket, not patching)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> MotoServer:
        command: List[str] = [
            sys.executable,
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
        wait_for_http(self.url + "/moto-api/", self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()

    def env(self) -> Iterator[tuple[str, str]]:
        """Environment for boto3 (in this process and in workers) to use this server only."""
        yield "AWS_ENDPOINT_URL", self.url
        yield "AWS_ACCESS_KEY_ID", "testing"
        yield "AWS_SECRET_ACCESS_KEY", "testing"
        yield "AWS_DEFAULT_REGION", "us-east-1"
        yield "AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"
        yield "AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"
        yield "NO_PROXY", "127.0.0.1"
