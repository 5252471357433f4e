"""A run cache entry: which outputs one run of one action made, and where their bytes are kept.

An entry is found by the task's *action key* (:mod:`luigi_repro.runcachekey`) and names, for
each output, the fingerprint the record of that run gave it and the cached copies (*blobs*,
content-addressed by the digest of their bytes) that make it up: one blob for a file, one per
file for a folder. It is JSON, never pickle (a cache shared by a team is written by many hands),
size-capped and parsed strictly; with a signing key it carries an HMAC over its canonical JSON,
and a signed cache never restores an unsigned or forged entry.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import attrs

from luigi_repro.recordmodel import JSONValue, Key
from luigi_repro.recordsignature import sign_document, signature_matches

__all__ = [
    "ENTRY_SCHEMA",
    "MAX_ENTRY_BYTES",
    "BlobRef",
    "CachedOutput",
    "Entry",
    "EntryError",
    "dump_entry",
    "parse_entry",
]

ENTRY_SCHEMA = 1
_TOOL = "luigi_repro run cache"
#: An entry of a folder output of 100,000 files is about 15 MiB: 64 MiB is never a real one.
MAX_ENTRY_BYTES = 64 * 1024 * 1024


class EntryError(ValueError):
    """An entry that cannot be used (corrupt, truncated, of another schema, unsigned…).

    ``removable`` is False when the entry may be good for someone else: a newer luigi_repro
    (another schema, another kind of output) or a process holding the right signing key. Only a
    corrupt or truncated entry is removed (so the next run stores a good one); the others are
    left alone, or a teammate with a stale key would wipe the team's cache.
    """

    def __init__(self, problem: str, removable: bool = True) -> None:
        super().__init__(problem)
        self.removable = removable


@attrs.frozen
class BlobRef:
    """One cached file: the digest of its bytes (its name in the cache) and its size.

    ``etag`` is the S3 ETag of the blob as an S3 store wrote it (None elsewhere): a restore to an
    S3 output copies the blob on the server only if it still has that ETag.
    """

    digest: str
    size: int
    executable: bool = False
    etag: Optional[str] = None


@attrs.frozen
class CachedOutput:
    """One output of the cached run.

    ``fingerprint`` is what the run's record says of it (a table's data fingerprint, a folder's
    manifest fingerprint…), checked again after a restore; ``kind`` is ``file`` (``blob``),
    ``folder`` (``files``: relative path -> blob; ``folders``: empty folders), and ``target`` is
    the target's own description (``describe()``), which must match the restoring target's.
    """

    key: Key
    fingerprint: str
    size: int
    kind: str
    target: Optional[Mapping[str, JSONValue]] = None
    blob: Optional[BlobRef] = None
    files: Mapping[str, BlobRef] = attrs.field(factory=dict)
    folders: Tuple[str, ...] = ()

    def blobs(self) -> List[BlobRef]:
        """Every blob this output needs."""
        return [self.blob] if self.blob is not None else list(self.files.values())


@attrs.frozen
class Entry:
    """What the run cache keeps of one run."""

    action_key: str
    family: str
    task_id: str
    params: Mapping[str, JSONValue]
    code_fingerprint: str
    algorithm: str
    outputs: Tuple[CachedOutput, ...]
    created: str
    run_id: str
    host: str
    duration_s: float
    signature: Optional[str] = None
    schema: int = ENTRY_SCHEMA

    def blobs(self) -> List[BlobRef]:
        """Every blob of every output."""
        return [blob for output in self.outputs for blob in output.blobs()]

    @property
    def size(self) -> int:
        """Bytes of the outputs (shared blobs counted once per use)."""
        return sum(blob.size for blob in self.blobs())

    def has_outputs(self, keys: Iterable[Key]) -> bool:
        """Does the entry hold exactly these outputs (by ``output()`` key)? A restore needs it."""
        return sorted(repr(output.key) for output in self.outputs) == sorted(map(repr, keys))

    def fingerprint_of(self, key: Key) -> Optional[str]:
        """The fingerprint output ``key`` has once restored (its record's), or None."""
        return next((output.fingerprint for output in self.outputs if output.key == key), None)

    def origin(self) -> Dict[str, str]:
        """The run the entry came from, as records of restored outputs (``restored_from``)
        and ``verify`` name it."""
        return {
            "action_key": self.action_key,
            "run_id": self.run_id,
            "host": self.host,
            "created": self.created,
        }


# --- writing -----------------------------------------------------------------------------------


def _blob_doc(blob: BlobRef) -> Dict[str, Any]:
    doc: Dict[str, Any] = {"digest": blob.digest, "size": blob.size}
    if blob.executable:
        doc["executable"] = True
    if blob.etag is not None:
        doc["etag"] = blob.etag
    return doc


def _output_doc(output: CachedOutput) -> Dict[str, Any]:
    doc: Dict[str, Any] = {
        "key": list(output.key),
        "fingerprint": output.fingerprint,
        "size": output.size,
        "kind": output.kind,
        "target": None if output.target is None else dict(output.target),
    }
    if output.blob is not None:
        doc["blob"] = _blob_doc(output.blob)
    if output.kind == "folder":
        doc["files"] = {rel: _blob_doc(blob) for rel, blob in output.files.items()}
        doc["folders"] = list(output.folders)
    return doc


def _document(entry: Entry) -> Dict[str, Any]:
    return {
        "schema": entry.schema,
        "tool": _TOOL,
        "action_key": entry.action_key,
        "task": {
            "family": entry.family,
            "task_id": entry.task_id,
            "params": dict(entry.params),
            "code_fingerprint": entry.code_fingerprint,
        },
        "algorithm": entry.algorithm,
        "outputs": [_output_doc(output) for output in entry.outputs],
        "run": {
            "created": entry.created,
            "run_id": entry.run_id,
            "host": entry.host,
            "duration_s": entry.duration_s,
        },
    }


def dump_entry(entry: Entry, signing_key: Optional[bytes]) -> bytes:
    """The entry as compact UTF-8 JSON, signed when a key is given."""
    doc = _document(entry)
    if signing_key:
        doc["signature"] = sign_document(doc, signing_key)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


# --- reading -----------------------------------------------------------------------------------


def _field(doc: Mapping[str, Any], name: str, kind: Union[type, Tuple[type, ...]]) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise EntryError(f"its field {name!r} is missing or of the wrong type")
    return value


def _key(value: Any) -> Key:
    if not isinstance(value, list) or not all(
        isinstance(part, (str, int)) and not isinstance(part, bool) for part in value
    ):
        raise EntryError("an output's key is not a list of names and indexes")
    return tuple(value)


def _digest(value: Any) -> str:
    if not isinstance(value, str) or ":" not in value or "/" in value or len(value) > 200:
        raise EntryError("a blob digest is not of the form algorithm:hex")
    algorithm, _, hexpart = value.partition(":")
    if not algorithm.replace("_", "").isalnum() or not all(
        c in "0123456789abcdef" for c in hexpart
    ):
        raise EntryError("a blob digest is not of the form algorithm:hex")
    return value


def _blob(doc: Any) -> BlobRef:
    if not isinstance(doc, dict):
        raise EntryError("a blob is not an object")
    size = _field(doc, "size", int)
    if size < 0:
        raise EntryError("a blob has a negative size")
    etag = doc.get("etag")
    if etag is not None and (not isinstance(etag, str) or len(etag) > 200):
        raise EntryError("a blob's ETag is not a short string")
    return BlobRef(_digest(doc.get("digest")), size, doc.get("executable") is True, etag)


def _relative(path: Any) -> str:
    """A path inside a folder output: relative, normalised, never leaving the folder."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path:
        raise EntryError("a folder entry's path is not a relative path")
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise EntryError(f"a folder entry's path {path!r} leaves its folder")
    return path


def _output(doc: Any) -> CachedOutput:
    if not isinstance(doc, dict):
        raise EntryError("an output is not an object")
    kind = _field(doc, "kind", str)
    target = doc.get("target")
    if target is not None and not isinstance(target, dict):
        raise EntryError("an output's target description is not an object")
    common = {
        "key": _key(doc.get("key")),
        "fingerprint": _field(doc, "fingerprint", str),
        "size": _field(doc, "size", int),
        "kind": kind,
        "target": target,
    }
    if kind == "file":
        return CachedOutput(blob=_blob(doc.get("blob")), **common)
    if kind == "folder":
        files = _field(doc, "files", dict)
        folders = _field(doc, "folders", list)
        return CachedOutput(
            files={_relative(rel): _blob(blob) for rel, blob in files.items()},
            folders=tuple(_relative(rel) for rel in folders),
            **common,
        )
    raise EntryError(
        f"an output is of kind {kind!r}, which this version cannot restore", removable=False
    )


def parse_entry(data: bytes, signing_key: Optional[bytes]) -> Entry:
    """Parse and check an entry; :class:`EntryError` says why it cannot be used.

    With ``signing_key`` an entry must carry a valid signature: an unsigned one was written
    without the team's key and a forged one by someone without it.
    """
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryError(f"it is larger than {MAX_ENTRY_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EntryError("it is not valid JSON (truncated or corrupt)") from None
    if not isinstance(doc, dict) or doc.get("tool") != _TOOL:
        raise EntryError("it is not a luigi_repro run cache entry")
    if doc.get("schema") != ENTRY_SCHEMA:
        raise EntryError(
            f"it has schema {doc.get('schema')!r}, this version reads {ENTRY_SCHEMA}",
            removable=False,
        )
    signature = doc.get("signature")
    if signing_key:
        if not isinstance(signature, str):
            raise EntryError("it is not signed, and a signing key is configured", removable=False)
        if not signature_matches(doc, signature, signing_key):
            raise EntryError(
                "its signature does not match (forged, or signed with another key)",
                removable=False,
            )
    task = _field(doc, "task", dict)
    run = _field(doc, "run", dict)
    outputs = _field(doc, "outputs", list)
    return Entry(
        action_key=_field(doc, "action_key", str),
        family=_field(task, "family", str),
        task_id=_field(task, "task_id", str),
        params=_field(task, "params", dict),
        code_fingerprint=_field(task, "code_fingerprint", str),
        algorithm=_field(doc, "algorithm", str),
        outputs=tuple(_output(output) for output in outputs),
        created=_field(run, "created", str),
        run_id=_field(run, "run_id", str),
        host=_field(run, "host", str),
        duration_s=float(_field(run, "duration_s", (int, float))),
        signature=signature if isinstance(signature, str) else None,
    )
