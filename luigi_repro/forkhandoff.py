"""Handing remembered verdicts to a forked child, exact to the last event.

Luigi runs each task in a forked child when it has several workers, and the child asks
``complete()`` of the task's dependencies first. The child inherits the parent's remembered
statuses, but not the right to read the parent's inotify queue (a read would take the events
from the parent). Trusting nothing it inherited makes the child replay every task upstream by
stat, and a chain of N tasks costs O(N²) in the children.

So a fork is a hand-over, in four steps:

1. the parent, just before the fork, holds its memory and its watch still and takes in every
   queued event (``before``);
2. the child makes every inherited watch again on an inotify instance of its own and says it is
   ready (``after_in_child``);
3. the parent, which waited for that, drains what came in between and sends it to the child
   (``after_in_parent``), then lets go;
4. the child marks what the parent sent, and from then on its own queue tells it the rest.

Every change lands in one of the two queues, so the child trusts exactly what it may. Whenever a
step fails (no watches to copy, a busy lock, a child that does not answer in time) the child
falls back to trusting nothing unreplayed, as before.

One thing is not handed over: the watches on the files themselves, which only add a write made
through a hard link created after the file was first watched (a folder's watch sees every write
through the names in it). Making them again would cost ~10 µs per file at every fork; the
parent keeps them, so such a write is seen by the parent and every later child, but not by a
child already running.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import threading
import time
from typing import TYPE_CHECKING, Optional

import attrs

from luigi_repro.watch import Changes

if TYPE_CHECKING:
    from luigi_repro.memory import VerdictMemory

__all__ = ["decode", "encode"]

#: How long the parent waits for another thread to let go of the memory before a fork.
HOLD_SECONDS = 1.0
#: How long either side waits for the other during a hand-over.
ANSWER_SECONDS = 10.0

_READY = b"R"
_GIVE_UP = b"X"


@attrs.define
class _Handover:
    ready_r: int
    ready_w: int
    gap_r: int
    gap_w: int


class _Pending(threading.local):
    """The hand-over a thread is forking with. Per thread: two threads may fork at once (the
    second waits for the memory the first holds), and the forking thread is the one that goes
    on in the child."""

    handover: Optional[_Handover] = None


_pending = _Pending()


def encode(changes: Changes) -> bytes:
    """``changes`` as bytes (paths never hold a NUL)."""
    if changes.everything:
        body = b"E"
    else:
        items = [b"p" + os.fsencode(path) for path in sorted(changes.paths)]
        items += [b"t" + os.fsencode(tree) for tree in sorted(changes.trees)]
        body = b"C" + b"\0".join(items)
    return struct.pack(">Q", len(body)) + body


def decode(body: bytes) -> Changes:
    """The inverse of :func:`encode` (without its length prefix)."""
    if body[:1] != b"C":
        return Changes(everything=True)
    changes = Changes()
    for item in body[1:].split(b"\0") if len(body) > 1 else ():
        kind, path = item[:1], os.fsdecode(item[1:])
        if kind == b"p":
            changes.paths.add(path)
        elif kind == b"t":
            changes.trees.add(path)
        else:
            return Changes(everything=True)
    return changes


def _memory() -> Optional[VerdictMemory]:
    from luigi_repro import runtime as runtime_module

    current = runtime_module._runtime
    return None if current is None else current.memory


def _before() -> None:
    _pending.handover = None
    memory = _memory()
    try:
        if memory is None or not memory.hold_for_fork(HOLD_SECONDS):
            return
    except Exception:  # noqa: BLE001 - a fork must never fail because of luigi_repro
        return
    try:
        ready_r, ready_w = os.pipe()
        gap_r, gap_w = os.pipe()
    except OSError:
        memory.release_after_fork()
        return
    _pending.handover = _Handover(ready_r, ready_w, gap_r, gap_w)


def _after_in_parent() -> None:
    handover, _pending.handover = _pending.handover, None
    if handover is None:
        return
    memory = _memory()
    assert memory is not None  # it was there a moment ago, in this same process
    _close(handover.ready_w, handover.gap_r)
    deadline = time.monotonic() + ANSWER_SECONDS
    try:
        answer = _read(handover.ready_r, 1, deadline)
        gap = memory.watch.drain_held()
        memory.take_in_held(gap)
        if answer == _READY:
            _write(handover.gap_w, encode(gap), deadline)
    except Exception:  # noqa: BLE001 - the child then waits out and trusts nothing
        pass
    finally:
        _close(handover.ready_r, handover.gap_w)
        memory.release_after_fork()


def _after_in_child() -> None:
    handover, _pending.handover = _pending.handover, None
    memory = _memory()
    if memory is None:
        if handover is not None:
            _close(handover.ready_r, handover.ready_w, handover.gap_r, handover.gap_w)
        return
    if handover is None:
        memory.after_fork(handed=False)
        return
    _close(handover.ready_r, handover.gap_w)
    deadline = time.monotonic() + ANSWER_SECONDS
    answered = False
    try:
        lost = memory.after_fork(handed=True)
        if lost.everything:
            return
        os.write(handover.ready_w, _READY)
        answered = True
        (length,) = struct.unpack(">Q", _read(handover.gap_r, 8, deadline))
        gap = decode(_read(handover.gap_r, length, deadline))
    except Exception:  # noqa: BLE001 - whatever went wrong, nothing inherited is trusted
        gap = Changes(everything=True)
    finally:
        if not answered:  # the parent waits for a word: never let it wait in vain
            with contextlib.suppress(OSError):
                os.write(handover.ready_w, _GIVE_UP)
        _close(handover.ready_w, handover.gap_r)
    memory.take_in_held(gap)


def _read(fd: int, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("no answer from the other side of a fork")
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError("the other side of a fork went away")
        data += chunk
    return data


def _write(fd: int, data: bytes, deadline: float) -> None:
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([], [fd], [], left)[1]:
            raise TimeoutError("the child of a fork does not read")
        view = view[os.write(fd, view[: select.PIPE_BUF]) :]


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child
    )
