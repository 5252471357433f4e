"""Another process holding a run-lock file, as a concurrent run would."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator

#: Holds an exclusive flock on the file named in argv[1] until its stdin closes.
_HOLD = """\
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def lock_held_elsewhere(path: str) -> Iterator[int]:
    """A child process holds an exclusive ``flock`` on ``path`` during the block; its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = holder.stdout.readline() if holder.stdout is not None else ""
        if line != "held\n":
            raise RuntimeError(f"the lock holder did not start: {line!r}")
        yield holder.pid
    finally:
        holder.communicate("")
