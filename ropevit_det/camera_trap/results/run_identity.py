"""What makes two runs the same run: the identity stored with a journal and in a results file's ``info``.

A resumed run appends to the entries of the run it continues, so both must have been made the same way: the
same weights (by content, not by name), the same resolved config, thresholds, input root, shard, classes and
code version. The identity is a flat dict of those; :func:`identity_differences` names what differs.
``merge`` compares only the :data:`DETECTOR_KEYS` (shards and folders differ by design).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["DETECTOR_KEYS", "IDENTITY_KEY", "file_sha256", "identity_differences", "text_sha256"]

IDENTITY_KEY = "run_identity"  # the key in a journal header and in a results file's info
# What says "the same detector": merge refuses files that differ in any of these.
DETECTOR_KEYS = (
    "weights_sha256",
    "config_sha256",
    "score_threshold",
    "detection_categories",
    "classifier",
    "classifier_sha256",
)
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks (weights files are large; nothing is held in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def identity_differences(
    found: Mapping[str, Any] | None, wanted: Mapping[str, Any] | None, keys: tuple[str, ...] | None = None
) -> list[str]:
    """``"key: A (there) vs B (here)"`` for each key whose values differ; empty when either has no identity."""
    if not found or not wanted:
        return []
    names = keys if keys is not None else tuple(sorted(set(found) | set(wanted)))
    return [
        f"{key}: {_short(found.get(key))} there, {_short(wanted.get(key))} here"
        for key in names
        if found.get(key) != wanted.get(key)
    ]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
