"""The conformance suite for local files, folders, mock targets and the generic adapter."""

from __future__ import annotations

from pathlib import Path

import luigi
import luigi.format
import pytest

from luigi_repro.targets import (
    HashableDirectoryTarget,
    HashableFileSystemTarget,
    HashableLocalTarget,
    HashableMockTarget,
    HashableTarget,
)
from luigi_repro.testing import Make, Put, TargetContract, write_bytes


class TestLocalFile(TargetContract):
    """HashableLocalTarget holding one file."""

    @pytest.fixture
    def make(self) -> Make:
        return lambda name: HashableLocalTarget(f"out/{name}.bin", format=luigi.format.Nop)

    @pytest.fixture
    def put(self) -> Put:
        return write_bytes


class TestDirectory(TargetContract):
    """HashableDirectoryTarget: a folder written whole through temporary_path()."""

    @pytest.fixture
    def make(self) -> Make:
        return lambda name: HashableDirectoryTarget(f"out/{name}/")

    @pytest.fixture
    def put(self) -> Put:
        def put(target: HashableTarget, data: bytes) -> None:
            assert isinstance(target, HashableDirectoryTarget)
            with target.temporary_path() as folder:
                Path(folder, "part-0.bin").write_bytes(data)
                Path(folder, "nested").mkdir()
                Path(folder, "nested", "part-1.bin").write_bytes(data[::-1])

        return put


class TestMock(TargetContract):
    """HashableMockTarget, in Luigi's in-memory mock file system."""

    cheap_recheck = False
    has_change_token = False

    @pytest.fixture
    def make(self) -> Make:
        return lambda name: HashableMockTarget(f"/mock/{name}", format=luigi.format.Nop)

    @pytest.fixture
    def put(self) -> Put:
        return write_bytes


class TestFileSystemAdapter(TargetContract):
    """The generic adapter, over a file system luigi_repro knows nothing about."""

    cheap_recheck = False
    has_change_token = False
    locatable = False  # its locations name a file system only its own target class can reach

    @pytest.fixture
    def make(self) -> Make:
        from test_backends import BoxTarget

        return lambda name: HashableFileSystemTarget(BoxTarget(f"box://fs/{name}.bin"))

    @pytest.fixture
    def put(self) -> Put:
        def put(target: HashableTarget, data: bytes) -> None:
            assert isinstance(target, HashableFileSystemTarget)
            local = Path("box-storage", target.path.split("://", 1)[1])
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)

        return put
