"""The record's optional HMAC-SHA256 signature over its canonical JSON.

Writing signs and reading verifies with the same canonical form, so the form lives in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping

_SIGNATURE_PREFIX = "hmac-sha256:"


def _canonical(doc: Mapping[str, Any]) -> bytes:
    # ASCII-escaped, so that any string (even a lone surrogate from a hostile record) has a form.
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_document(doc: Mapping[str, Any], key: bytes) -> str:
    """The signature of ``doc`` (its own ``signature`` field left out) under ``key``."""
    return _SIGNATURE_PREFIX + hmac.new(key, _canonical(doc), hashlib.sha256).hexdigest()


def signature_matches(doc: Mapping[str, Any], signature: str, key: bytes) -> bool:
    """Does ``signature`` sign ``doc`` under ``key``? (Compared in constant time.)"""
    given = signature.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(given, sign_document(doc, key).encode())
