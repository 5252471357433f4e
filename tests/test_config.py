"""The [luigi_repro] options: defaults, luigi.cfg, environment overrides and validation."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterator, List, Tuple

import luigi.configuration
import pytest

from luigi_repro.config import (
    POLICIES,
    READ_POLICIES,
    Settings,
    default_stat_cache_path,
    load_settings,
)
from luigi_repro.errors import ConfigError, ReproError
from luigi_repro.fingerprint import ALGORITHMS, DEFAULT_ALGORITHM

SECTION = "luigi_repro"
SetOption = Callable[[str, str], None]


@pytest.fixture(autouse=True)
def _no_suite_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests see luigi_repro's own defaults, not the suite's shorter lock timeout."""
    monkeypatch.delenv("LUIGI_REPRO_LOCK_TIMEOUT", raising=False)


@pytest.fixture
def luigi_cfg() -> Iterator[SetOption]:
    """Set options in Luigi's [luigi_repro] section; they are removed again after the test."""
    config = luigi.configuration.get_config()
    added_section = not config.has_section(SECTION)
    if added_section:
        config.add_section(SECTION)
    saved: List[Tuple[str, object]] = []

    def set_option(option: str, value: str) -> None:
        previous = config.get(SECTION, option) if config.has_option(SECTION, option) else None
        saved.append((option, previous))
        config.set(SECTION, option, value)

    yield set_option
    for option, previous in reversed(saved):
        if previous is None:
            config.remove_option(SECTION, option)
        else:
            config.set(SECTION, option, previous)
    if added_section:
        config.remove_section(SECTION)


def config_error(monkeypatch: pytest.MonkeyPatch, option: str, value: str) -> ConfigError:
    """The ConfigError that load_settings raises with LUIGI_REPRO_<OPTION>=value."""
    monkeypatch.setenv("LUIGI_REPRO_" + option.upper(), value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    return info.value


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG cache folders are Linux's")
def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without configuration, load_settings gives the documented defaults."""
    monkeypatch.delenv("LUIGI_REPRO_STAT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    settings = load_settings()
    assert settings == Settings(
        hash_algorithm=DEFAULT_ALGORITHM,
        record_suffix=".repro.json",
        lock="file",
        lock_timeout=3600.0,
        racy_window_ns=2_000_000_000,
        stat_cache_path=str(tmp_path / "xdg" / "luigi_repro" / "statcache.sqlite3"),
        on_code_change="rerun",
        on_env_change="warn",
        undeclared_reads="warn",
        hmac_key_env="LUIGI_REPRO_HMAC_KEY",
    )
    assert settings.hash_algorithm == "xxh3_128"
    assert settings.signing_key is None


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG cache folders are Linux's")
def test_default_stat_cache_path_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default stat cache lives in XDG_CACHE_HOME, or ~/.cache when it is unset."""
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert default_stat_cache_path() == "/somewhere/cache/luigi_repro/statcache.sqlite3"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/someone")
    assert default_stat_cache_path() == "/home/someone/.cache/luigi_repro/statcache.sqlite3"


OVERRIDES = [
    ("hash_algorithm", "sha256", "hash_algorithm", "sha256"),
    ("hash_algorithm", "blake2b", "hash_algorithm", "blake2b"),
    ("record_suffix", ".prov.repro", "record_suffix", ".prov.repro"),
    ("lock", " file ", "lock", "file"),
    ("lock_timeout", "12.5", "lock_timeout", 12.5),
    ("lock_timeout", "0", "lock_timeout", 0.0),
    ("racy_window", "0.25", "racy_window_ns", 250_000_000),
    ("racy_window", "0", "racy_window_ns", 0),
    ("stat_cache", "/var/cache/repro.sqlite3", "stat_cache_path", "/var/cache/repro.sqlite3"),
    ("on_code_change", "warn", "on_code_change", "warn"),
    ("on_code_change", "IGNORE", "on_code_change", "ignore"),
    ("on_env_change", "rerun", "on_env_change", "rerun"),
    ("undeclared_reads", " Track ", "undeclared_reads", "track"),
    ("hmac_key_env", "MY_REPRO_KEY", "hmac_key_env", "MY_REPRO_KEY"),
]


@pytest.mark.parametrize(
    ("option", "value", "attribute", "expected"),
    [pytest.param(*case, id=f"{case[0]}={case[1]}") for case in OVERRIDES],
)
def test_environment_override(
    monkeypatch: pytest.MonkeyPatch, option: str, value: str, attribute: str, expected: object
) -> None:
    """Each option is read from LUIGI_REPRO_<OPTION>."""
    monkeypatch.setenv("LUIGI_REPRO_" + option.upper(), value)
    assert getattr(load_settings(), attribute) == expected


@pytest.mark.parametrize(
    ("option", "value", "attribute", "expected"),
    [pytest.param(*case, id=f"{case[0]}={case[1]}") for case in OVERRIDES],
)
def test_luigi_config(
    monkeypatch: pytest.MonkeyPatch,
    luigi_cfg: SetOption,
    option: str,
    value: str,
    attribute: str,
    expected: object,
) -> None:
    """Each option is read from the [luigi_repro] section of Luigi's configuration."""
    monkeypatch.delenv("LUIGI_REPRO_STAT_CACHE")
    luigi_cfg(option, value)
    assert getattr(load_settings(), attribute) == expected


def test_settings_are_read_afresh() -> None:
    """Each load_settings call sees the configuration as it is now, not as it was first read."""
    config = luigi.configuration.get_config()
    added_section = not config.has_section(SECTION)
    if added_section:
        config.add_section(SECTION)
    try:
        config.set(SECTION, "hash_algorithm", "sha256")
        assert load_settings().hash_algorithm == "sha256"
        config.set(SECTION, "hash_algorithm", "blake2b")
        assert load_settings().hash_algorithm == "blake2b"
    finally:
        config.remove_option(SECTION, "hash_algorithm")
        if added_section:
            config.remove_section(SECTION)
    assert load_settings().hash_algorithm == DEFAULT_ALGORITHM


def test_environment_wins_over_luigi_config(
    monkeypatch: pytest.MonkeyPatch, luigi_cfg: SetOption
) -> None:
    """An environment variable overrides the same option set in Luigi's configuration."""
    luigi_cfg("hash_algorithm", "sha256")
    luigi_cfg("lock_timeout", "5")
    monkeypatch.setenv("LUIGI_REPRO_HASH_ALGORITHM", "blake2b")
    settings = load_settings()
    assert settings.hash_algorithm == "blake2b"
    assert settings.lock_timeout == 5.0


def test_invalid_luigi_config_value(luigi_cfg: SetOption) -> None:
    """An unusable value in Luigi's configuration is a ConfigError too."""
    luigi_cfg("on_env_change", "sometimes")
    with pytest.raises(ConfigError, match="on_env_change"):
        load_settings()


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_known_algorithm_is_accepted(monkeypatch: pytest.MonkeyPatch, algorithm: str) -> None:
    """Every algorithm luigi_repro can fingerprint with is a valid hash_algorithm."""
    monkeypatch.setenv("LUIGI_REPRO_HASH_ALGORITHM", algorithm)
    assert load_settings().hash_algorithm == algorithm


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("option", ["on_code_change", "on_env_change"])
def test_every_policy_is_accepted(
    monkeypatch: pytest.MonkeyPatch, option: str, policy: str
) -> None:
    """rerun, warn and ignore are valid for both change policies."""
    monkeypatch.setenv("LUIGI_REPRO_" + option.upper(), policy)
    assert getattr(load_settings(), option) == policy


@pytest.mark.parametrize("policy", READ_POLICIES)
def test_every_undeclared_reads_policy_is_accepted(
    monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    """warn, track, error and ignore are valid for undeclared_reads."""
    monkeypatch.setenv("LUIGI_REPRO_UNDECLARED_READS", policy)
    assert load_settings().undeclared_reads == policy


INVALID = [
    ("hash_algorithm", "md5"),
    ("hash_algorithm", ""),
    ("hash_algorithm", "sha-256"),
    ("record_suffix", ""),
    ("record_suffix", "/repro.json"),
    ("record_suffix", ".repro/x.json"),
    ("record_suffix", " .repro.json"),
    ("record_suffix", ".json"),
    ("record_suffix", "repro.json"),
    ("lock", "zookeeper://localhost:2181"),
    ("lock", ""),
    ("lock_timeout", "-1"),
    ("lock_timeout", "-0.5"),
    ("lock_timeout", "ten"),
    ("lock_timeout", ""),
    ("lock_timeout", "nan"),
    ("lock_timeout", "inf"),
    ("racy_window", "-2"),
    ("racy_window", "soon"),
    ("on_code_change", "explode"),
    ("on_code_change", ""),
    ("on_env_change", "maybe"),
    ("undeclared_reads", "rerun"),
    ("undeclared_reads", ""),
    ("hmac_key_env", ""),
    ("hmac_key_env", "   "),
]


@pytest.mark.parametrize(
    ("option", "value"), [pytest.param(*case, id=f"{case[0]}={case[1]!r}") for case in INVALID]
)
def test_invalid_value(monkeypatch: pytest.MonkeyPatch, option: str, value: str) -> None:
    """An unusable value is a ConfigError (a ValueError) with one sentence naming the option."""
    error = config_error(monkeypatch, option, value)
    assert isinstance(error, ValueError)
    assert isinstance(error, ReproError)
    assert error.option == option
    message = str(error)
    assert f"[luigi_repro] {option} " in message
    assert message.endswith(".")
    assert "\n" not in message
    assert not re.search(r"[.!?]\s+\S", message), "more than one sentence"


def test_invalid_algorithm_lists_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    """The error for an unknown algorithm lists the algorithms that would work."""
    message = str(config_error(monkeypatch, "hash_algorithm", "md5"))
    assert "'md5'" in message
    for algorithm in ALGORITHMS:
        assert algorithm in message


@pytest.mark.parametrize("value", ["off", "OFF", "none", "false", "0", " off "])
def test_stat_cache_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """stat_cache 'off' (or none/false/0) disables the persistent cache: the path is None."""
    monkeypatch.setenv("LUIGI_REPRO_STAT_CACHE", value)
    assert load_settings().stat_cache_path is None


def test_stat_cache_path_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A relative or ~ stat_cache path is resolved when the settings are read."""
    monkeypatch.setenv("LUIGI_REPRO_STAT_CACHE", "cache/fp.sqlite3")
    assert load_settings().stat_cache_path == os.path.join(os.getcwd(), "cache", "fp.sqlite3")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LUIGI_REPRO_STAT_CACHE", "~/fp.sqlite3")
    assert load_settings().stat_cache_path == str(tmp_path / "fp.sqlite3")


def test_signing_key_from_default_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The signing key is read from LUIGI_REPRO_HMAC_KEY by default; unset means no key."""
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "s3cret")
    assert load_settings().signing_key == b"s3cret"
    monkeypatch.delenv("LUIGI_REPRO_HMAC_KEY")
    assert load_settings().signing_key is None


def test_signing_key_from_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """hmac_key_env names the variable that holds the key; other variables are not read."""
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY_ENV", "TEAM_RECORD_KEY")
    monkeypatch.setenv("LUIGI_REPRO_HMAC_KEY", "not this one")
    monkeypatch.delenv("TEAM_RECORD_KEY", raising=False)
    settings = load_settings()
    assert settings.signing_key is None
    monkeypatch.setenv("TEAM_RECORD_KEY", "clé")
    assert settings.signing_key == "clé".encode()


def test_huge_racy_window_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A racy_window too large to count in nanoseconds is a ConfigError, not an OverflowError."""
    error = config_error(monkeypatch, "racy_window", "1e300")
    assert error.option == "racy_window"


def test_undeclared_reads_ignore_defaults_to_system_and_tool_configuration() -> None:
    """By default /etc and the hidden entries of the home folder are not data."""
    assert load_settings().undeclared_reads_ignore == ("/etc", os.path.expanduser("~/.*"))


def test_undeclared_reads_ignore_takes_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Folders and patterns are split at commas, ``~`` expanded, made absolute; empty is none."""
    monkeypatch.setenv("LUIGI_REPRO_UNDECLARED_READS_IGNORE", " ~/cache/ , /srv/*/conf,, rel")
    assert load_settings().undeclared_reads_ignore == (
        os.path.expanduser("~/cache"),
        "/srv/*/conf",
        os.path.abspath("rel"),
    )
    monkeypatch.setenv("LUIGI_REPRO_UNDECLARED_READS_IGNORE", "")
    assert load_settings().undeclared_reads_ignore == ()
