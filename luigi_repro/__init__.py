"""luigi_repro: Luigi tasks that are complete only when their outputs still match their inputs.

Swap ``luigi.Task`` for :class:`TaskWithCheckingInputHash` and ``luigi.LocalTarget`` for
:class:`HashableLocalTarget`; each output then carries a JSON record of the fingerprints of every
input, the parameters and the code that made it, and ``complete()`` re-verifies all of it,
through every upstream task.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

import importlib
from typing import TYPE_CHECKING, Any

from luigi_repro.audit import audit_paths
from luigi_repro.config import ReproConfig, Settings, load_settings
from luigi_repro.errors import (
    ConfigError,
    InputChangedDuringRun,
    LockTimeout,
    MissingDependency,
    OutputNotWritten,
    OutputUnstable,
    ParameterError,
    RecordError,
    RecordRefused,
    ReproError,
    RunProtocolError,
    SigningKeyError,
    UnsupportedTarget,
)
from luigi_repro.judge import Judge, judging
from luigi_repro.record import Record
from luigi_repro.report import Report, TaskReport, verify
from luigi_repro.status import Reason, ReasonKind, Status, TaskStatus
from luigi_repro.targets import (
    HashableDirectoryTarget,
    HashableFileSystemTarget,
    HashableLocalTarget,
    HashableTarget,
)
from luigi_repro.task import (
    CheckingInputHashMixin,
    HashableExternalFile,
    HashableExternalTask,
    TaskWithCheckingInputHash,
    WrapperTask,
)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from luigi_repro.targets.dataframe import CsvTarget, FeatherTarget, ParquetTarget
    from luigi_repro.targets.mock import HashableMockTarget
    from luigi_repro.targets.s3 import HashableS3Target

__all__ = [
    "CheckingInputHashMixin",
    "CsvTarget",
    "FeatherTarget",
    "HashableDirectoryTarget",
    "HashableFileSystemTarget",
    "HashableMockTarget",
    "HashableS3Target",
    "ParquetTarget",
    "ConfigError",
    "HashableExternalFile",
    "HashableExternalTask",
    "HashableLocalTarget",
    "HashableTarget",
    "InputChangedDuringRun",
    "Judge",
    "LockTimeout",
    "MissingDependency",
    "OutputNotWritten",
    "OutputUnstable",
    "ParameterError",
    "Reason",
    "ReasonKind",
    "Record",
    "RecordError",
    "RecordRefused",
    "Report",
    "ReproConfig",
    "ReproError",
    "RunProtocolError",
    "SigningKeyError",
    "Settings",
    "Status",
    "TaskReport",
    "TaskStatus",
    "TaskWithCheckingInputHash",
    "UnsupportedTarget",
    "WrapperTask",
    "__version__",
    "audit_paths",
    "judging",
    "load_settings",
    "verify",
]


def __getattr__(name: str) -> Any:
    """Targets with optional dependencies, imported on first use."""
    from luigi_repro.targets import LAZY

    module = LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
