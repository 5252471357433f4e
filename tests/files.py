"""Files the fingerprint and stat cache tests write: made with their folders, in one call."""

from __future__ import annotations

import os


def write(path: str, data: bytes) -> str:
    """Create ``path`` (and its folders) holding ``data``; return the path."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as stream:
        stream.write(data)
    return path
