"""The command's wall time, counted from the start of the process rather than of ``main()``.

A user timing ``luigi-repro verify`` sees the interpreter start and every import too, so the
summary line reports that. On Linux the process start is read from ``/proc/self/stat`` (field 22,
in clock ticks since boot, the same clock as ``CLOCK_BOOTTIME``), which includes the interpreter's
own start; elsewhere, or when ``main()`` is called from Python rather than as the command, the
clock starts when ``main()`` is entered.
"""

from __future__ import annotations

import os
import time
from typing import Optional

__all__ = ["CommandClock"]


def process_age() -> Optional[float]:
    """Seconds since this process started, or None where the kernel does not say."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:
        return None
    try:
        with open("/proc/self/stat", "rb") as stream:
            stat = stream.read()
        ticks_per_second = os.sysconf("SC_CLK_TCK")
        # The name in parentheses may hold spaces; the fields after it start at field 3.
        start_ticks = int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    age = time.clock_gettime(boottime) - start_ticks / ticks_per_second
    return age if age >= 0 else None


class CommandClock:
    """Started when ``main()`` is entered; ``as_command`` counts from the process start."""

    def __init__(self, as_command: bool) -> None:
        #: True for the ``luigi-repro`` command (a process of its own), False from Python.
        self.as_command = as_command
        self._started = time.perf_counter()
        age = process_age() if as_command else None
        if age is not None:
            self._started -= age

    def seconds(self) -> float:
        """Wall seconds since the command started."""
        return time.perf_counter() - self._started
