"""luigi_repro: Luigi tasks that are complete only when their outputs still match their inputs.

Swap ``luigi.Task`` for :class:`TaskWithCheckingInputHash` and ``luigi.LocalTarget`` for
:class:`HashableLocalTarget`; each output then carries a JSON record of the fingerprints of every
input, the parameters and the code that made it, and ``complete()`` re-verifies all of it,
through every upstream task.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

from luigi_repro.version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
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
        TargetMissing,
        UnsupportedTarget,
        UntrustedPickle,
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
    from luigi_repro.targets.dataframe import CsvTarget, FeatherTarget, ParquetTarget
    from luigi_repro.targets.mock import HashableMockTarget
    from luigi_repro.targets.objects import JsonTarget, PickleTarget
    from luigi_repro.targets.s3 import HashableS3Target
    from luigi_repro.task import (
        CheckingInputHashMixin,
        HashableExternalFile,
        HashableExternalTask,
        TaskWithCheckingInputHash,
        WrapperTask,
    )

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
    "JsonTarget",
    "Judge",
    "LockTimeout",
    "MissingDependency",
    "OutputNotWritten",
    "OutputUnstable",
    "ParameterError",
    "PickleTarget",
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
    "TargetMissing",
    "TaskReport",
    "TaskStatus",
    "TaskWithCheckingInputHash",
    "UnsupportedTarget",
    "UntrustedPickle",
    "WrapperTask",
    "__version__",
    "audit_paths",
    "judging",
    "load_settings",
    "verify",
]


#: Where each public name lives. Importing Luigi alone takes a few tenths of a second (it loads
#: its scheduler client and web stack), so nothing is imported until a name is first used: a
#: script or the ``luigi-repro`` command that needs only part of the API pays only for that part.
_HOME: Dict[str, str] = {
    "audit_paths": "luigi_repro.audit",
    "ReproConfig": "luigi_repro.config",
    "Settings": "luigi_repro.config",
    "load_settings": "luigi_repro.config",
    "ConfigError": "luigi_repro.errors",
    "InputChangedDuringRun": "luigi_repro.errors",
    "LockTimeout": "luigi_repro.errors",
    "MissingDependency": "luigi_repro.errors",
    "OutputNotWritten": "luigi_repro.errors",
    "OutputUnstable": "luigi_repro.errors",
    "ParameterError": "luigi_repro.errors",
    "RecordError": "luigi_repro.errors",
    "RecordRefused": "luigi_repro.errors",
    "ReproError": "luigi_repro.errors",
    "RunProtocolError": "luigi_repro.errors",
    "SigningKeyError": "luigi_repro.errors",
    "TargetMissing": "luigi_repro.errors",
    "UnsupportedTarget": "luigi_repro.errors",
    "UntrustedPickle": "luigi_repro.errors",
    "Judge": "luigi_repro.judge",
    "judging": "luigi_repro.judge",
    "Record": "luigi_repro.record",
    "Report": "luigi_repro.report",
    "TaskReport": "luigi_repro.report",
    "verify": "luigi_repro.report",
    "Reason": "luigi_repro.status",
    "ReasonKind": "luigi_repro.status",
    "Status": "luigi_repro.status",
    "TaskStatus": "luigi_repro.status",
    "HashableDirectoryTarget": "luigi_repro.targets",
    "HashableFileSystemTarget": "luigi_repro.targets",
    "HashableLocalTarget": "luigi_repro.targets",
    "HashableTarget": "luigi_repro.targets",
    "CsvTarget": "luigi_repro.targets.dataframe",
    "FeatherTarget": "luigi_repro.targets.dataframe",
    "ParquetTarget": "luigi_repro.targets.dataframe",
    "HashableMockTarget": "luigi_repro.targets.mock",
    "JsonTarget": "luigi_repro.targets.objects",
    "PickleTarget": "luigi_repro.targets.objects",
    "HashableS3Target": "luigi_repro.targets.s3",
    "CheckingInputHashMixin": "luigi_repro.task",
    "HashableExternalFile": "luigi_repro.task",
    "HashableExternalTask": "luigi_repro.task",
    "TaskWithCheckingInputHash": "luigi_repro.task",
    "WrapperTask": "luigi_repro.task",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use, then keep the name here."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
