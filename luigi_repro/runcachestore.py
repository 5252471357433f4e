"""Where the run cache keeps entries and blobs: the store contract and the local-folder store.

A store holds *entries* (small JSON documents named by action key) and *blobs* (files named by
the digest of their bytes). Its guarantees, whatever the backend:

* an entry is created only if none exists under its key (two workers storing one action leave
  one whole entry; a reader never sees half of one);
* a blob is only ever created whole, under the digest of what was written, and a blob read back
  is verified against its digest, so a corrupt blob never becomes an output;
* ``touch_entry`` marks an entry used, so ``cache gc`` evicts the least recently used first.

The local store is a folder (``[luigi_repro] run_cache = /shared/cache``)::

    entries/ab/<sha256 hex>.json    blobs/<algorithm>/cd/<hex>    tmp/  (same file system)

Blobs are read-only files. Nothing in the cache is flushed to disk (``fsync``): every blob is
hashed whenever it is restored and every entry parsed strictly, so a write torn by a power cut
costs a rerun, never a wrong restore — and storing a run costs about a copy.

With ``run_cache_links = true`` a local output on the same file system is stored and restored
as a hard link to its blob instead of a copy (instant, no extra space), for outputs that nothing
rewrites in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_module
from typing import Iterator, Optional, Protocol

import attrs

from luigi_repro.atomicfiles import discard, make_folders
from luigi_repro.fingerprint import algorithm_of
from luigi_repro.runcachecopy import SizeMismatch, SourceChanged, copy_verified, open_source
from luigi_repro.runcacheentry import BlobRef
from luigi_repro.statcache import CachedFingerprint, PersistentStatCache, fingerprint_file

__all__ = ["BlobCorrupt", "CacheStore", "LocalStore", "StoredItem", "blob_name", "entry_name"]


class BlobCorrupt(OSError):
    """A blob's bytes do not have the digest it is stored under (or it is gone)."""


@attrs.frozen
class StoredItem:
    """One entry or blob as a store lists it: its name, size and when it was last used."""

    name: str
    size: int
    last_used: float


def _hex(value: str, prefix: str) -> str:
    """The hex part of ``prefix:hex``; ValueError for anything a path could be made of."""
    algorithm, _, hexpart = value.partition(":")
    if (
        not hexpart
        or (algorithm != prefix and prefix)
        or not all(c in "0123456789abcdef" for c in hexpart)
    ):
        raise ValueError(f"{value!r} is not a valid cache name")
    return hexpart


def entry_name(action_key: str) -> str:
    """The relative name of the entry of ``action_key`` (``entries/ab/<hex>.json``)."""
    hexpart = _hex(action_key, "sha256")
    return f"entries/{hexpart[:2]}/{hexpart}.json"


def blob_name(digest: str) -> str:
    """The relative name of the blob with ``digest`` (``blobs/<algorithm>/cd/<hex>``)."""
    algorithm = algorithm_of(digest)
    if not algorithm.replace("_", "").isalnum():
        raise ValueError(f"{digest!r} is not a valid cache name")
    hexpart = _hex(digest, "")
    return f"blobs/{algorithm}/{hexpart[:2]}/{hexpart}"


def _plain_of_size(path: str, size: int) -> bool:
    """Is ``path`` a plain file of ``size`` bytes (a blob that may be the one named)?"""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat_module.S_ISREG(st.st_mode) and st.st_size == size


def listed_entry(relative: str) -> Optional[str]:
    """The action key of the entry a listing found at ``relative`` (``entries/…``), or None
    when that is not where such an entry is kept (a stray ``.DS_Store``, a misplaced copy)."""
    base = relative.rsplit("/", 1)[-1]
    if not base.endswith(".json"):
        return None
    key = "sha256:" + base[: -len(".json")]
    try:
        return key if entry_name(key) == relative else None
    except ValueError:
        return None


def listed_blob(relative: str) -> Optional[str]:
    """The digest of the blob a listing found at ``relative`` (``blobs/…``), or None."""
    parts = relative.split("/")
    if len(parts) != 4:
        return None
    digest = f"{parts[1]}:{parts[3]}"
    try:
        return digest if blob_name(digest) == relative else None
    except ValueError:
        return None


class CacheStore(Protocol):
    """What the run cache needs of a place to keep entries and blobs."""

    #: Where the store is, for messages: a folder or ``s3://bucket/prefix``.
    location: str

    def read_entry(self, action_key: str) -> Optional[bytes]:
        """The entry's bytes (at most ``limit``), or None when there is none."""

    def write_entry(self, action_key: str, data: bytes) -> bool:
        """Create the entry unless one exists; False when another writer's entry was there."""

    def remove_entry(self, action_key: str) -> None:
        """Delete the entry (no error when it is gone)."""

    def touch_entry(self, action_key: str) -> None:
        """Mark the entry used now (least-recently-used eviction)."""

    def has_blob(self, digest: str) -> bool:
        """Is a blob with this digest stored?"""

    def put_file(self, path: str, algorithm: str, expected: Optional[str] = None) -> BlobRef:
        """Store the local file ``path`` as a blob; its digest is computed while it is copied.

        Raises :class:`SourceChanged` when the file changed meanwhile or its digest is not
        ``expected``: then nothing is stored under a wrong name.
        """

    def get_file(self, blob: BlobRef, dest_path: str, fsync: bool) -> CachedFingerprint:
        """Create ``dest_path`` (which must not exist) with the blob's bytes, verified.

        Raises :class:`BlobCorrupt` (after removing the blob) when its bytes do not have its
        digest; the caller removes whatever was written at ``dest_path``.
        """

    def remove_blob(self, digest: str) -> None:
        """Delete the blob (no error when it is gone)."""

    def entries(self) -> Iterator[StoredItem]:
        """Every entry (name = action key)."""

    def blobs(self) -> Iterator[StoredItem]:
        """Every blob (name = digest)."""


class LocalStore:
    """A run cache in a local (or network-mounted) folder shared by processes and users."""

    def __init__(
        self,
        root: str,
        *,
        cache: Optional[PersistentStatCache] = None,
        racy_window_ns: int = 2_000_000_000,
        links: bool = False,
    ) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))
        self.location = self.root
        self._cache = cache
        self._racy_window_ns = racy_window_ns
        self._links = links

    # --- paths ----------------------------------------------------------------------------------

    def _path(self, relative: str) -> str:
        return os.path.join(self.root, *relative.split("/"))

    def _temporary(self) -> str:
        folder = os.path.join(self.root, "tmp")
        make_folders(folder)
        return os.path.join(folder, f"{os.getpid()}-{secrets.token_hex(8)}")

    def _publish(self, temporary: str, final: str) -> bool:
        """Link the finished ``temporary`` at ``final`` unless something is there already."""
        make_folders(os.path.dirname(final))
        try:
            os.link(temporary, final)
            return True
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    # --- entries --------------------------------------------------------------------------------

    def read_entry(self, action_key: str) -> Optional[bytes]:
        from luigi_repro.runcacheentry import MAX_ENTRY_BYTES

        try:
            fd = open_source(self._path(entry_name(action_key)))
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as stream:
            return stream.read(MAX_ENTRY_BYTES + 1)

    def write_entry(self, action_key: str, data: bytes) -> bool:
        final = self._path(entry_name(action_key))
        if os.path.lexists(final):
            return False
        temporary = self._temporary()
        try:
            with open(temporary, "xb") as stream:
                stream.write(data)
            return self._publish(temporary, final)
        finally:
            discard(temporary)  # gone already once published

    def remove_entry(self, action_key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(entry_name(action_key)))

    def touch_entry(self, action_key: str) -> None:
        with contextlib.suppress(OSError):
            os.utime(self._path(entry_name(action_key)))

    # --- blobs ----------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return os.path.isfile(self._path(blob_name(digest)))

    def put_file(self, path: str, algorithm: str, expected: Optional[str] = None) -> BlobRef:
        # A symlink inside a folder output stands for the file it points to: its bytes are kept
        # (a blob is never a link into someone's files), and only a plain file is hard-linked.
        plain = stat_module.S_ISREG(os.lstat(path).st_mode)
        source = path if plain else os.path.realpath(path)
        executable = bool(os.stat(source).st_mode & 0o111)
        temporary = self._temporary()
        try:
            if self._links and plain and self._link(source, temporary):
                seen = fingerprint_file(
                    temporary, algorithm, cache=self._cache, racy_window_ns=self._racy_window_ns
                )
            else:
                seen = copy_verified(source, temporary, algorithm, mode=0o444)
            if expected is not None and seen.fingerprint != expected:
                raise SourceChanged(errno.EAGAIN, "the file changed since it was recorded", path)
            final = self._path(blob_name(seen.fingerprint))
            if _plain_of_size(final, seen.size):
                # Reused: marked young, so a `cache gc` that found it unreferenced a moment ago
                # leaves it to the entry about to name it (a blob of another user may refuse).
                with contextlib.suppress(OSError):
                    os.utime(final)
            else:
                # New, or torn (a power cut leaves a short file under its name): replaced whole.
                make_folders(os.path.dirname(final))
                os.replace(temporary, final)
        finally:
            discard(temporary)
        return BlobRef(seen.fingerprint, seen.size, executable)

    def _link(self, source: str, dest: str) -> bool:
        try:
            os.link(source, dest, follow_symlinks=False)
            return True
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                return False
            raise

    def get_file(self, blob: BlobRef, dest_path: str, fsync: bool) -> CachedFingerprint:
        """Copy (or link) the blob to ``dest_path``, hashed every time.

        Never vouched for by the stat cache: blobs are not flushed to disk, and after a power
        cut a file can keep its size and times yet hold zeros. A blob whose size is not the
        entry's is not read at all (a huge file planted there costs nothing) and not removed:
        the entry may be what is wrong. A blob whose bytes do not match its name, or anything
        but a plain file at its name, is removed.
        """
        source = self._path(blob_name(blob.digest))
        algorithm = algorithm_of(blob.digest)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise BlobCorrupt(errno.ENOENT, "the cached file is gone", source) from None
        if not stat_module.S_ISREG(st.st_mode):
            self.remove_blob(blob.digest)
            raise BlobCorrupt(errno.EINVAL, "the cached file is not a plain file", source)
        if st.st_size != blob.size:
            raise BlobCorrupt(
                errno.EIO, f"the entry says {blob.size} bytes, the cache has {st.st_size}", source
            )
        try:
            if self._links and self._link(source, dest_path):
                seen = fingerprint_file(dest_path, algorithm, cache=None)
            else:
                seen = copy_verified(
                    source,
                    dest_path,
                    algorithm,
                    mode=0o777 if blob.executable else 0o666,
                    fsync=fsync,
                    expected_size=blob.size,
                )
        except FileNotFoundError:
            raise BlobCorrupt(errno.ENOENT, "the cached file is gone", source) from None
        except SizeMismatch as exc:
            raise BlobCorrupt(errno.EIO, str(exc), source) from None
        if seen.fingerprint != blob.digest:
            self.remove_blob(blob.digest)
            raise BlobCorrupt(
                errno.EIO, f"the cached file's bytes are {seen.fingerprint}, not its name", source
            )
        return seen

    def remove_blob(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(blob_name(digest)))

    # --- listing --------------------------------------------------------------------------------

    def _walk(self, top: str) -> Iterator[os.DirEntry[str]]:
        stack = [self._path(top)]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as found:
                    for item in found:
                        if item.is_dir(follow_symlinks=False):
                            stack.append(item.path)
                        elif item.is_file(follow_symlinks=False):
                            yield item
            except FileNotFoundError:
                continue

    def _relative(self, path: str) -> str:
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def entries(self) -> Iterator[StoredItem]:
        for item in self._walk("entries"):
            key = listed_entry(self._relative(item.path))
            if key is not None:
                with contextlib.suppress(FileNotFoundError):
                    st = item.stat(follow_symlinks=False)
                    yield StoredItem(key, st.st_size, st.st_mtime)

    def blobs(self) -> Iterator[StoredItem]:
        for item in self._walk("blobs"):
            digest = listed_blob(self._relative(item.path))
            if digest is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                st = item.stat(follow_symlinks=False)
                # A blob stored as a hard link keeps its output's old mtime; linking it changed
                # its ctime, which says when it arrived here (what `cache gc`'s grace counts).
                arrived = max(st.st_mtime, st.st_ctime)
                yield StoredItem(digest, st.st_size, arrived)
