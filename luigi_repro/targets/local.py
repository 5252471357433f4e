"""``HashableLocalTarget``: a drop-in ``luigi.LocalTarget`` that can vouch for its content.

It *is* a ``LocalTarget`` (same constructor, formats, ``fs``, atomic ``open('w')``), so user code
and other libraries see no difference. It adds the :class:`HashableTarget` contract: raw bytes are
fingerprinted whatever the ``format``; a path that is a folder is fingerprinted by its manifest;
the record is ``<path>.repro.json`` and the lock ``.<name>.repro.lock`` beside it.

Unlike Luigi's, its ``temporary_path()`` may replace an existing output, so a rerun never has to
delete the previous result first, and a failed run leaves the previous output in place.

Output folders may be shared with other users, so the temporary names of ``open('w')`` and
``temporary_path()`` are unguessable, ``open('w')`` creates its temporary exclusively without
following a symlink (Luigi's follows one planted at its name), and a temporary found replaced by
a symlink is never moved into place. With ``[luigi_repro] fsync`` the new content is on disk
before it replaces the old.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat as stat_module
from typing import Any, Dict, Hashable, Iterator, Optional, Tuple, cast

import luigi
import luigi.format

from luigi_repro.atomicfiles import discard
from luigi_repro.config import Settings
from luigi_repro.errors import RecordError, TemporaryReplaced
from luigi_repro.fingerprint import describe_special, hash_bytes
from luigi_repro.folderprint import (
    STAMPS_FORMAT,
    baseline_from_state,
    fingerprint_directory,
    stamp_state,
)
from luigi_repro.fsclock import fs_now_ns
from luigi_repro.localpath import physical_path
from luigi_repro.locking import (
    atomic_replace,
    atomic_write,
    fsync_tree,
    lock_file_for,
    make_folders,
)
from luigi_repro.plainfiles import NotPlainFile, read_plain, refusal
from luigi_repro.record import oversize
from luigi_repro.runtime import runtime
from luigi_repro.statcache import (
    CachedFingerprint,
    PersistentStatCache,
    StatKey,
    fingerprint_file,
)
from luigi_repro.targets.atomicfile import AtomicFile, unused_temporary_name
from luigi_repro.targets.base import (
    FingerprintContext,
    HashableTarget,
    Observation,
    register_adapter,
    register_uri_resolver,
)
from luigi_repro.writerrights import foreign_link_refusal

__all__ = ["HashableLocalTarget"]


def file_hint(previous: Optional[Observation], kind: str = "file") -> Optional[CachedFingerprint]:
    """The cached fingerprint in a previous observation's state, if it is of ``kind``.

    The kind keeps a table fingerprint (``"table-file"``) from ever standing for the bytes of
    the same file, or the other way round.
    """
    if previous is None or previous.state.get("kind") != kind:
        return None
    try:
        stat = StatKey.from_json(previous.state.get("stat"))
        taken_at = previous.state.get("taken_at_ns")
        if not isinstance(taken_at, int):
            return None
        return CachedFingerprint(previous.fingerprint, stat.size, stat, taken_at)
    except ValueError:
        return None


@functools.cache
def _reads_only_its_files(cls: type) -> bool:
    """Are ``exists()``, ``observe()`` and the record reading of ``cls`` luigi_repro's own?"""
    return all(
        getattr(cls, name).__module__.startswith("luigi_repro.")
        for name in ("exists", "observe", "read_record_bytes")
    )


class HashableLocalTarget(HashableTarget, luigi.LocalTarget):
    """A local file or folder output whose content is fingerprinted and vouched for by a record.

    Same constructor as ``luigi.LocalTarget``: ``(path=None, format=None, is_tmp=False)``.
    """

    def __init__(
        self,
        path: Optional[Any] = None,
        format: Optional[luigi.format.Format] = None,  # noqa: A002 - Luigi's own argument name
        is_tmp: bool = False,
    ) -> None:
        luigi.LocalTarget.__init__(self, path, format, is_tmp)

    # --- the HashableTarget contract -----------------------------------------------------------

    @property
    def uri(self) -> str:
        """The absolute path of the file the OS opens (see :func:`physical_path`)."""
        path = self.path
        cwd = "" if os.path.isabs(path) else os.getcwd()
        cached: Optional[Tuple[str, str, str]] = self.__dict__.get("_luigi_repro_uri")
        if cached is not None and cached[0] == path and cached[1] == cwd:
            return cached[2]
        uri = physical_path(path)
        if ".." not in path.split(os.sep):  # else it depends on symlinks, which may move
            self.__dict__["_luigi_repro_uri"] = (path, cwd, uri)
        return uri

    def exists(self) -> bool:
        return bool(luigi.LocalTarget.exists(self))

    def observe(
        self, context: FingerprintContext, previous: Optional[Observation] = None
    ) -> Observation:
        if context.full:
            previous = None
        cache = None if context.full else context.cache
        st = os.lstat(self.path)
        link = stat_module.S_ISLNK(st.st_mode)
        if link:
            st = os.stat(self.path)
        context.counters.files_statted += 1
        holds_data = stat_module.S_ISDIR(st.st_mode) or stat_module.S_ISREG(st.st_mode)
        refused = refusal(st, self.path) if holds_data else None
        if link:
            refused = refused or foreign_link_refusal(self.path)
        if refused is not None:
            raise NotPlainFile(f"{self.path} {refused}")  # a file or folder of /proc, /sys…
        if stat_module.S_ISDIR(st.st_mode):
            return self._observe_folder(context, previous, cache)
        if not stat_module.S_ISREG(st.st_mode):
            # A pipe or device would block or never end: describe it rather than read it.
            described = hash_bytes(describe_special(self.path), context.algorithm)
            return Observation(described, 0, {"kind": "special"}, None, True)
        entry = fingerprint_file(
            self.path,
            context.algorithm,
            hint=file_hint(previous),
            cache=cache,
            racy_window_ns=context.racy_window_ns,
            counters=context.counters,
            stat=st,
        )
        state: Dict[str, Any] = {}
        if entry.stat is not None:
            state = {"kind": "file", "stat": entry.stat.to_json(), "taken_at_ns": entry.taken_at_ns}
        return Observation(entry.fingerprint, entry.size, state, None, entry.stat is not None)

    def _observe_folder(
        self,
        context: FingerprintContext,
        previous: Optional[Observation],
        cache: Optional[PersistentStatCache],
    ) -> Observation:
        """A folder's manifest, reusing every fingerprint whose file's stamp is unchanged.

        Without a record (an input), the baseline is what this process last saw of the folder.
        """
        remembered = None
        if previous is None and cache is not None:
            remembered = cache.folders.recall(self.uri, context.algorithm)
            if remembered is not None:
                fingerprint, manifest, state = remembered
                previous = Observation(fingerprint, 0, state, manifest)
        baseline = None
        if previous is not None:
            baseline = baseline_from_state(
                previous.fingerprint,
                previous.state,
                previous.manifest,
                context.algorithm,
                context.racy_window_ns,
            )
        result = fingerprint_directory(
            self.path,
            context.algorithm,
            baseline=baseline,
            cache=cache,
            racy_window_ns=context.racy_window_ns,
            counters=context.counters,
            exclude=context.is_bookkeeping,
        )
        if previous is not None and result.unchanged and result.fingerprint == previous.fingerprint:
            # Every file matched its stamp: what the record holds still describes the folder.
            state = previous.state
            if state.get("format") != STAMPS_FORMAT:
                state = stamp_state(result, context.racy_window_ns)
            manifest = previous.manifest if previous.manifest is not None else result.files
            return Observation(result.fingerprint, result.size, state, manifest, result.stable)
        observation = Observation(
            fingerprint=result.fingerprint,
            size=result.size,
            state=stamp_state(result, context.racy_window_ns),
            manifest=result.manifest(),
            stable=result.stable,
        )
        if cache is not None and (remembered is not None or previous is None):
            cache.folders.remember(
                self.uri,
                context.algorithm,
                observation.fingerprint,
                result.manifest(),
                observation.state,
            )
        return observation

    def settled_token(self, observation: Observation, racy_window_ns: int) -> Optional[Hashable]:
        hint = file_hint(observation, str(observation.state.get("kind")))
        if hint is None or hint.stat is None or hint.is_racy(racy_window_ns):
            return None
        return (self.uri, hint.stat)

    def still_settled(self, token: Hashable) -> bool:
        path, stat = cast(Tuple[str, StatKey], token)
        try:
            return StatKey.of(os.stat(path)) == stat
        except OSError:
            return False

    def watch_paths(self, settings: Settings) -> Optional[Tuple[str, ...]]:
        """The file and its record, when this class reads nothing else to answer.

        A subclass whose ``exists()``, ``observe()`` or record reading is its own may look at
        other files (a ``.done`` marker): it is revalidated by replaying what it saw instead.
        """
        if not _reads_only_its_files(type(self)):
            return None
        return (self.uri, physical_path(self.record_location(settings)))

    def change_token(self) -> Optional[Hashable]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        if not stat_module.S_ISDIR(st.st_mode):
            return StatKey.of(st)
        entries = [("", StatKey.of(st))]
        for folder, _, files in os.walk(self.path):
            for name in files:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    entries.append((os.path.relpath(path, self.path), StatKey.of(os.stat(path))))
        return tuple(sorted(entries))

    def record_location(self, settings: Settings) -> str:
        return self.path.rstrip("/") + settings.record_suffix

    def record_token(self, settings: Settings) -> Optional[Tuple[Any, ...]]:
        location = physical_path(self.record_location(settings))
        try:
            st = os.stat(location)
        except OSError:
            return None
        if fs_now_ns(location, st.st_dev) - st.st_mtime_ns < settings.racy_window_ns:
            return None  # may still be replaced within the timestamp granularity
        return (location, StatKey.of(st))

    def read_record_bytes(self, settings: Settings) -> Optional[bytes]:
        """The record's bytes, read only from a regular file no bigger than ``max_record_bytes``.

        Records sit in shared folders: a pipe, ``/dev/zero`` or a huge file there must cost a
        check one refusal, not a hang or the machine's memory. The owner of what was read is
        kept (:meth:`record_writer`), since a record may only name what its writer could read.
        """
        location = self.record_location(settings)
        cap = settings.max_record_bytes
        try:
            data, st = read_plain(location, cap)
        except FileNotFoundError:
            return None
        except NotPlainFile as exc:
            raise RecordError(location, str(exc).replace(location + " ", "it ", 1)) from None
        if len(data) > cap or st.st_size > cap:
            raise RecordError(location, oversize(max(st.st_size, len(data)), cap))
        self.__dict__["_luigi_repro_record_writer"] = (location, st.st_uid, st.st_gid)
        return data

    def record_writer(self, settings: Settings) -> Optional[Tuple[int, int]]:
        written = self.__dict__.get("_luigi_repro_record_writer")
        if written is None or written[0] != self.record_location(settings):
            return None
        return (written[1], written[2])

    def write_record_bytes(self, settings: Settings, data: bytes) -> None:
        # Records are only written under the output's run lock: one writer at a time.
        location = self.record_location(settings)
        make_folders(os.path.dirname(location))
        atomic_write(location, data, fsync=settings.fsync)

    def remove_record(self, settings: Settings) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.record_location(settings))

    def lock_name(self) -> str:
        return lock_file_for(self.path)

    # --- LocalTarget behaviour that changes ----------------------------------------------------

    def open(self, mode: str = "r") -> Any:
        """Like ``LocalTarget.open``; writing goes through a temporary no one else can plant."""
        if mode.replace("b", "").replace("t", "") != "w":
            return luigi.LocalTarget.open(self, mode)
        make_folders(os.path.dirname(os.path.normpath(self.path)))
        return self.format.pipe_writer(AtomicFile(self.path, runtime().records().fsync))

    @contextlib.contextmanager
    def temporary_path(self) -> Iterator[str]:
        """Like ``LocalTarget.temporary_path()``, but the result may replace an existing output.

        If the block raises, the temporary file or folder is removed and the previous output is
        left untouched; so it is if the temporary was replaced by a symlink meanwhile
        (:class:`TemporaryReplaced`).
        """
        slashless = self.path.rstrip("/").rstrip("\\")
        trailing = self.path[len(slashless) :]
        folder = os.path.dirname(slashless)
        if folder:  # os.makedirs: never through a symlink that points nowhere
            self.fs.mkdir(folder, parents=True, raise_if_exists=False)
        tmp_slashless = unused_temporary_name(slashless)
        try:
            yield tmp_slashless + trailing
            if os.path.islink(tmp_slashless):
                raise TemporaryReplaced(tmp_slashless, slashless)
            fsync = runtime().records().fsync
            if fsync and os.path.lexists(tmp_slashless):
                fsync_tree(tmp_slashless)
            atomic_replace(tmp_slashless, slashless, fsync=fsync)
        except BaseException:
            discard(tmp_slashless)  # nothing there once it was moved into place
            raise

    def remove(self) -> None:
        """Remove the output and its record."""
        luigi.LocalTarget.remove(self)
        runtime().records().remove(self)

    def move(self, new_path: str, raise_if_exists: bool = False) -> None:
        """Move the output; its record stays behind no longer, since it vouched for this path."""
        luigi.LocalTarget.move(self, new_path, raise_if_exists=raise_if_exists)
        runtime().records().remove(self)


def _adapt_local(target: Any) -> Optional[HashableTarget]:
    if isinstance(target, luigi.LocalTarget):
        return HashableLocalTarget(target.path, format=target.format)
    return None


def _resolve_local(uri: str) -> Optional[HashableTarget]:
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    if os.path.isabs(uri) and "\0" not in uri:
        return HashableLocalTarget(uri)
    return None


register_adapter("local", _adapt_local, priority=10)
register_uri_resolver("local", _resolve_local)
