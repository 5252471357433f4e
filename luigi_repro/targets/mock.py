"""``HashableMockTarget``: ``luigi.mock.MockTarget`` for users' own tests, with records.

Content and records live in Luigi's in-memory mock file system (a ``multiprocessing`` manager
dict), so they are shared with forked workers exactly like ``MockTarget``'s data. The record of
``/x`` is the mock file ``/x.repro.json``. Content is small and in memory, so it is hashed on
every check rather than cached.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Hashable, Iterator, Optional

from luigi.mock import MockTarget

from luigi_repro.config import Settings
from luigi_repro.fingerprint import hash_bytes
from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    Observation,
    register_adapter,
    register_uri_resolver,
)

__all__ = ["HashableMockTarget"]

PREFIX = "mock:"


class HashableMockTarget(HashableTarget, MockTarget):
    """Same constructor as ``MockTarget``: ``(fn, is_tmp=None, mirror_on_stderr=False, format)``."""

    def __init__(
        self,
        fn: str,
        is_tmp: Optional[bool] = None,
        mirror_on_stderr: bool = False,
        format: Any = None,  # noqa: A002 - Luigi's own argument name
    ) -> None:
        MockTarget.__init__(self, fn, is_tmp, mirror_on_stderr, format)

    @property
    def uri(self) -> str:
        return PREFIX + str(self.path)

    def exists(self) -> bool:
        return bool(MockTarget.exists(self))

    def _data(self) -> Any:
        return self.fs.get_all_data()

    def observe(
        self, context: FingerprintContext, previous: Optional[Observation] = None
    ) -> Observation:
        data = self._data().get(self.path)
        if data is None:
            raise FileNotFoundError(self.uri)
        context.counters.files_hashed += 1
        context.counters.bytes_hashed += len(data)
        return Observation(hash_bytes(bytes(data), context.algorithm), len(data), {})

    def change_token(self) -> Optional[Hashable]:
        return None  # the mock keeps only content: a rewrite with the same bytes leaves no trace

    def record_location(self, settings: Settings) -> str:
        return str(self.path) + settings.record_suffix

    def read_record_bytes(self, settings: Settings) -> Optional[bytes]:
        data = self._data().get(self.record_location(settings))
        return None if data is None else bytes(data)

    def write_record_bytes(self, settings: Settings, data: bytes) -> None:
        self._data()[self.record_location(settings)] = data  # one assignment: atomic

    def remove_record(self, settings: Settings) -> None:
        self._data().pop(self.record_location(settings), None)

    @contextlib.contextmanager
    def temporary_path(self) -> Iterator[str]:
        """A temporary mock path; on success its content replaces the output (even an
        existing one); on failure it is dropped and the previous output stays."""
        tmp = f"{self.path}-luigi-tmp-{random.randrange(0, 10_000_000_000):010}"
        data = self._data()
        try:
            yield tmp
        except BaseException:
            data.pop(tmp, None)
            raise
        if tmp not in data:
            raise FileNotFoundError(f"nothing was written to the temporary path {tmp}")
        data[self.path] = data.pop(tmp)


def _adapt_mock(target: Any) -> Optional[HashableTarget]:
    if type(target) is MockTarget:
        return HashableMockTarget(target.path, format=target.format)
    return None


def _resolve_mock(uri: str) -> Optional[HashableTarget]:
    return HashableMockTarget(uri[len(PREFIX) :]) if uri.startswith(PREFIX) else None


register_adapter("mock", _adapt_mock, priority=20)
register_uri_resolver("mock", _resolve_mock)
