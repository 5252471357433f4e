"""The ``[luigi_repro]`` section of ``luigi.cfg``, with environment overrides.

Every option can be set in the usual Luigi configuration file::

    [luigi_repro]
    hash_algorithm = xxh3_128
    lock_timeout = 600

on the ``luigi`` command line (``--luigi_repro-lock-timeout 600``), or by an environment variable
``LUIGI_REPRO_<OPTION>`` (``LUIGI_REPRO_LOCK_TIMEOUT=600``), which wins over both, so that one
run can be changed without editing shared files.
"""

from __future__ import annotations

import os
from typing import Dict, Hashable, Literal, Optional, Tuple, TypeVar

import attrs
import luigi
import luigi.configuration

from luigi_repro.errors import ConfigError, SigningKeyError
from luigi_repro.fingerprint import ALGORITHMS, DEFAULT_ALGORITHM
from luigi_repro.record import DEFAULT_MAX_RECORD_BYTES
from luigi_repro.statstore import default_stat_cache_path

__all__ = [
    "ChangePolicy",
    "POLICIES",
    "READ_POLICIES",
    "ReadPolicy",
    "ReproConfig",
    "Settings",
    "default_stat_cache_path",
    "load_settings",
]

#: What a check does when the code or the environment differs from the record
#: (``on_code_change``, ``on_env_change``).
ChangePolicy = Literal["rerun", "warn", "ignore"]
POLICIES: Tuple[ChangePolicy, ...] = ("rerun", "warn", "ignore")
#: What a run does with files it read without declaring them (``undeclared_reads``).
ReadPolicy = Literal["warn", "track", "error", "ignore"]
READ_POLICIES: Tuple[ReadPolicy, ...] = ("warn", "track", "error", "ignore")

_Choice = TypeVar("_Choice", bound=str)


#: Configuration that libraries read on their own (``/etc/mime.types``, ``~/.aws/config``), not
#: a task's data: never counted as undeclared reads unless the option says otherwise.
DEFAULT_READS_IGNORE = "/etc, ~/.*"


def _ignore_patterns(text: str) -> Tuple[str, ...]:
    """The comma-separated folders or glob patterns, ``~`` expanded, made absolute."""
    patterns = []
    for part in text.split(","):
        part = part.strip()
        if part:
            patterns.append(os.path.abspath(os.path.expanduser(part)).rstrip(os.sep) or os.sep)
    return tuple(patterns)


_BYTE_UNITS = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


class ReproConfig(luigi.Config):
    """The options of luigi_repro, read from the ``[luigi_repro]`` section."""

    hash_algorithm = luigi.Parameter(
        default=DEFAULT_ALGORITHM,
        description="Digest for new fingerprints: xxh3_128 (fast), sha256, blake2b or blake3.",
    )
    record_suffix = luigi.Parameter(
        default=".repro.json", description="Appended to an output's name to name its record."
    )
    lock = luigi.Parameter(
        default="file",
        description="Run-lock backend: 'file' (one host) or redis://host:port/db (several hosts).",
    )
    lock_timeout = luigi.Parameter(
        default="3600", description="Seconds to wait for another process's run lock."
    )
    racy_window = luigi.Parameter(
        default="2.0",
        description="A fingerprint taken less than this many seconds after the file's mtime is "
        "not trusted later.",
    )
    stat_cache = luigi.Parameter(
        default="",
        description="SQLite file caching fingerprints of files without a record; "
        "empty for the user's cache folder, 'off' to disable.",
    )
    on_code_change = luigi.Parameter(
        default="rerun", description="rerun | warn | ignore when a task's code changed."
    )
    on_env_change = luigi.Parameter(
        default="warn", description="rerun | warn | ignore when Python or package versions changed."
    )
    undeclared_reads = luigi.Parameter(
        default="warn",
        description="warn | track | error | ignore when run() reads files it does not declare.",
    )
    undeclared_reads_ignore = luigi.Parameter(
        default=DEFAULT_READS_IGNORE,
        description="Comma-separated folders (or glob patterns) whose files are never counted as "
        "undeclared reads: system and tool configuration, not data.",
    )
    max_record_bytes = luigi.Parameter(
        default=str(DEFAULT_MAX_RECORD_BYTES),
        description="Largest record read, in bytes (or with KiB, MiB, GiB); a bigger one is "
        "refused unread, so a huge file where a record belongs cannot exhaust memory.",
    )
    fsync = luigi.Parameter(
        default="true",
        description="Flush records and outputs to disk before renaming them into place (true), "
        "so a power loss cannot leave a record vouching for bytes never written; false on "
        "scratch disks.",
    )
    watch_changes = luigi.Parameter(
        default="true",
        description="Let a long-lived process watch the local files verdicts were decided "
        "from (inotify), so that a remembered verdict stands without a stat until one "
        "changes; false: replay every remembered verdict by stat.",
    )
    hmac_key_env = luigi.Parameter(
        default="LUIGI_REPRO_HMAC_KEY",
        description="Environment variable holding the key that signs and verifies records.",
    )
    require_signatures = luigi.Parameter(
        default="false",
        description="true: the signing key variable must be set (a CI job whose secret is "
        "missing stops instead of writing and trusting unsigned records).",
    )

    run_cache = luigi.Parameter(
        default="",
        description="Folder or s3://bucket/prefix keeping outputs by action key, so that a "
        "combination of inputs, parameters and code computed once is restored, never computed "
        "again; empty (default) for none.",
    )
    run_cache_links = luigi.Parameter(
        default="false",
        description="true: a local output on the run cache's file system is stored and "
        "restored as a hard link (instant, no space) instead of a copy; only for outputs "
        "nothing rewrites in place.",
    )

    @classmethod
    def get_task_family(cls) -> str:
        return "luigi_repro"


@attrs.frozen
class Settings:
    """Validated options, read once per check or run."""

    hash_algorithm: str = DEFAULT_ALGORITHM
    record_suffix: str = ".repro.json"
    lock: str = "file"
    lock_timeout: float = 3600.0
    racy_window_ns: int = 2_000_000_000
    stat_cache_path: Optional[str] = None
    on_code_change: ChangePolicy = "rerun"
    on_env_change: ChangePolicy = "warn"
    undeclared_reads: ReadPolicy = "warn"
    undeclared_reads_ignore: Tuple[str, ...] = attrs.field(
        factory=lambda: _ignore_patterns(DEFAULT_READS_IGNORE)
    )
    hmac_key_env: str = "LUIGI_REPRO_HMAC_KEY"
    require_signatures: bool = False
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    fsync: bool = True
    watch_changes: bool = True
    #: None (off), an absolute folder, or ``s3://bucket/prefix``.
    run_cache: Optional[str] = None
    run_cache_links: bool = False

    @property
    def signing_key(self) -> Optional[bytes]:
        """The HMAC key from the variable named by ``hmac_key_env``; None when it is not set.

        Fails closed (:class:`SigningKeyError`): a variable that is set but empty or blank is
        a missing secret, never "unsigned"; with ``require_signatures`` an unset one is too.
        """
        value = os.environ.get(self.hmac_key_env)
        if value is None:
            if self.require_signatures:
                raise SigningKeyError(
                    self.hmac_key_env,
                    "is not set, and require_signatures = true: set it to the team's key",
                )
            return None
        if not value.strip():
            raise SigningKeyError(
                self.hmac_key_env,
                "is set but empty: set it to the key, or unset it to work without signatures",
            )
        return value.encode("utf-8", "surrogateescape")


def _option(config: ReproConfig, name: str) -> str:
    env = os.environ.get("LUIGI_REPRO_" + name.upper())
    return env if env is not None else str(getattr(config, name))


#: Upper bounds that keep every duration representable (a year is plenty for both).
_MAX_SECONDS = 365 * 24 * 3600.0


def _number(name: str, text: str, minimum: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(name, text, "a number of seconds") from None
    if not minimum <= value <= _MAX_SECONDS:
        raise ConfigError(name, text, f"a number of seconds between {minimum:g} and one year")
    return value


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _flag(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in _TRUE + _FALSE:
        raise ConfigError(name, text, "true or false")
    return value in _TRUE


def _byte_count(name: str, text: str) -> int:
    """A size such as ``16777216``, ``512 KiB`` or ``16MiB``, at least 1 KiB."""
    value = text.strip().lower()
    number = value.rstrip("kmgib ")
    unit = value[len(number) :].strip()
    try:
        count = int(number) * _BYTE_UNITS[unit]
    except (ValueError, KeyError):
        raise ConfigError(
            name, text, "a number of bytes, optionally with KiB, MiB or GiB"
        ) from None
    if not 1024 <= count <= 1024**4:
        raise ConfigError(name, text, "a number of bytes between 1 KiB and 1 TiB")
    return count


def _choice(name: str, text: str, choices: Tuple[_Choice, ...]) -> _Choice:
    """The choice ``text`` names, typed as the choices are (a policy's Literal type)."""
    value = text.strip().lower()
    for choice in choices:
        if choice == value:
            return choice
    raise ConfigError(name, text, "one of " + ", ".join(choices))


_settings_cache: Dict[Hashable, Settings] = {}


_OPTIONS = (
    "hash_algorithm",
    "record_suffix",
    "lock",
    "lock_timeout",
    "racy_window",
    "stat_cache",
    "on_code_change",
    "on_env_change",
    "undeclared_reads",
    "undeclared_reads_ignore",
    "hmac_key_env",
    "require_signatures",
    "max_record_bytes",
    "fsync",
    "watch_changes",
    "run_cache",
    "run_cache_links",
)


#: The environment variables overriding each option, by name and as CPython stores them.
_ENV_NAMES = tuple("LUIGI_REPRO_" + name.upper() for name in _OPTIONS)
_ENV_RAW_NAMES = tuple(os.fsencode(name) for name in _ENV_NAMES)


def _env_overrides() -> Tuple[object, ...]:
    """The raw values of the ``LUIGI_REPRO_*`` overrides: a check asks for the settings at
    every ``complete()``, and decoding each variable would cost more than the lookup itself."""
    raw = getattr(os.environ, "_data", None)
    if isinstance(raw, dict) and os.name == "posix":
        return tuple(map(raw.get, _ENV_RAW_NAMES))
    return tuple(os.environ.get(name) for name in _ENV_NAMES)


def _settings_key() -> Optional[Hashable]:
    """Everything the settings are made from, cheaply: env overrides, the section, the CLI."""
    from luigi.cmdline_parser import CmdlineParser

    env = _env_overrides()
    config = luigi.configuration.get_config()
    sections = getattr(config, "_sections", None)  # ConfigParser's raw values: no interpolation
    if not isinstance(sections, dict):
        return None  # another parser (TOML): read the settings every time
    section = sections.get("luigi_repro")
    raw = tuple(sorted(section.items())) if isinstance(section, dict) else ()
    return (env, id(config), raw, id(CmdlineParser.get_instance()))


def load_settings() -> Settings:
    """Read and validate ``[luigi_repro]``; raise :class:`ConfigError` for an unusable value.

    The result is reused while the environment overrides, the configuration section and the
    command line it came from are unchanged (instantiating a ``luigi.Config`` costs far more).
    """
    key = _settings_key()
    cached = _settings_cache.get(key) if key is not None else None
    if cached is None:
        cached = _read_settings()
        if key is not None:
            if len(_settings_cache) > 64:
                _settings_cache.clear()
            _settings_cache[key] = cached
    return cached


def _run_cache(text: str) -> Optional[str]:
    """The run cache's location: None when off, ``s3://bucket/prefix``, or an absolute folder."""
    value = text.strip()
    if value.lower() in ("", "off", "none", "false", "0"):
        return None
    if value.startswith(("s3://", "s3a://", "s3n://")):
        bucket = value.split("://", 1)[1].split("/", 1)[0]
        if not bucket:
            raise ConfigError("run_cache", text, "a folder or s3://bucket/prefix")
        return "s3://" + value.split("://", 1)[1].rstrip("/")
    if "://" in value or "\0" in value:
        raise ConfigError("run_cache", text, "a folder or s3://bucket/prefix")
    return os.path.abspath(os.path.expanduser(value))


def _read_settings() -> Settings:
    config = ReproConfig()  # type: ignore[no-untyped-call]  # luigi's Task.__init__ is untyped
    algorithm = _option(config, "hash_algorithm").strip().lower()
    if algorithm not in ALGORITHMS:
        raise ConfigError("hash_algorithm", algorithm, "one of " + ", ".join(sorted(ALGORITHMS)))
    suffix = _option(config, "record_suffix")
    if (
        not suffix.startswith(".")
        or "repro" not in suffix.lower()
        or "/" in suffix
        or os.sep in suffix
        or suffix.strip() != suffix
    ):
        # "repro" keeps the suffix from meaning ordinary data files (".json") to luigi_repro.
        raise ConfigError(
            "record_suffix", suffix, "a file name suffix containing 'repro', like .repro.json"
        )
    lock = _option(config, "lock").strip()
    lock = lock.lower() if lock.lower() == "file" else lock
    if lock != "file" and not lock.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("lock", lock, "'file' or a redis://host:port/db URL")
    stat_cache = _option(config, "stat_cache").strip()
    if stat_cache.lower() in ("off", "none", "false", "0"):
        stat_cache_path: Optional[str] = None
    else:
        stat_cache_path = os.path.abspath(
            os.path.expanduser(stat_cache or default_stat_cache_path())
        )
    key_env = _option(config, "hmac_key_env").strip()
    if not key_env:
        raise ConfigError("hmac_key_env", key_env, "the name of an environment variable")
    return Settings(
        run_cache=_run_cache(_option(config, "run_cache")),
        run_cache_links=_flag("run_cache_links", _option(config, "run_cache_links")),
        hash_algorithm=algorithm,
        record_suffix=suffix,
        lock=lock,
        lock_timeout=_number("lock_timeout", _option(config, "lock_timeout"), 0.0),
        racy_window_ns=int(_number("racy_window", _option(config, "racy_window"), 0.0) * 1e9),
        stat_cache_path=stat_cache_path,
        on_code_change=_choice("on_code_change", _option(config, "on_code_change"), POLICIES),
        on_env_change=_choice("on_env_change", _option(config, "on_env_change"), POLICIES),
        undeclared_reads=_choice(
            "undeclared_reads", _option(config, "undeclared_reads"), READ_POLICIES
        ),
        undeclared_reads_ignore=_ignore_patterns(_option(config, "undeclared_reads_ignore")),
        hmac_key_env=key_env,
        require_signatures=_flag("require_signatures", _option(config, "require_signatures")),
        max_record_bytes=_byte_count("max_record_bytes", _option(config, "max_record_bytes")),
        fsync=_flag("fsync", _option(config, "fsync")),
        watch_changes=_flag("watch_changes", _option(config, "watch_changes")),
    )
