"""A repeat-detection filtering folder's index, read without running anything in it.

MegaDetector decodes ``detectionIndex.json`` with ``jsonpickle``, which can build any callable named in the file and
run it. Filtering folders travel between reviewers, so the index is parsed as plain JSON and checked here (only the
classes MegaDetector's find step writes, each in its place) before MegaDetector sees it.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

from ...errors import UserInputError

INDEX_FILE = "detectionIndex.json"  # MegaDetector's name for the filtering folder's index
_MD_CORE = "megadetector.postprocessing.repeat_detection_elimination.repeat_detections_core"
# The only classes an index may instantiate, where: what MegaDetector's find step (and ours, for the
# CCT-location camera function) writes. Each is built by jsonpickle from its attributes alone (no
# constructor, no __setstate__), so with these and plain JSON, decoding runs no code of the file's choosing.
_INDEX_CLASSES = {
    "options": f"{_MD_CORE}.RepeatDetectionOptions",
    "camera function": f"{__package__}.rde.CameraByLocation",
    "suspicious detection": f"{_MD_CORE}.DetectionLocation",
    "instance": f"{_MD_CORE}.IndexedDetection",
}
# Attributes that hold one of those objects (or a list of them).
_NESTED_CLASSES = {"customDirNameFunction": _INDEX_CLASSES["camera function"], "instances": _INDEX_CLASSES["instance"]}
_JSONPICKLE_OBJECT, _JSONPICKLE_TUPLE = "py/object", "py/tuple"


class FilteringIndexError(UserInputError):
    """A filtering folder's index holds something MegaDetector's find step never writes (maybe code to run)."""


def read_filtering_index(path: str | Path) -> dict[str, Any]:
    """Parse a ``detectionIndex.json`` as plain JSON and check it holds only what the find step writes.

    Allowed: JSON values (dict keys may be ``json://<digits>``, a number), ``{"py/tuple": [...]}`` and
    ``{"py/object": NAME, ...attributes}`` with NAME one of
    the classes MegaDetector's index uses, each in its place (the options, their camera function, the
    suspicious detections and their instances); attribute names are plain (no ``_``/``__`` prefix). Tile names
    are file names inside the folder.

    Returns:
        The parsed JSON (tags left in place; nothing is instantiated).

    Raises:
        FilteringIndexError: anything else, naming the file and where in it.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError, RecursionError) as exc:
        raise FilteringIndexError(f"{path} cannot be read as JSON ({exc}); run the find step again") from None

    def refuse(where: str, what: str) -> FilteringIndexError:
        return FilteringIndexError(
            f"{path} is not an index the find step writes: {where} {what}; it is not "
            "used (a crafted index could run code). Run the find step again, or use a "
            "filtering folder from someone you trust"
        )

    def check(value: Any, where: str, allowed_class: str | None = None) -> None:
        if isinstance(value, list):
            for i, item in enumerate(value):
                check(item, f"{where}[{i}]", allowed_class)
            return
        if not isinstance(value, dict):
            return
        tags = [k for k in value if k.startswith("py/") or (k.startswith("json://") and not k[7:].isdigit())]
        if tags == [_JSONPICKLE_TUPLE] and len(value) == 1 and isinstance(value[_JSONPICKLE_TUPLE], list):
            check(value[_JSONPICKLE_TUPLE], where)
            return
        if tags == [_JSONPICKLE_OBJECT]:
            if value[_JSONPICKLE_OBJECT] != allowed_class:
                raise refuse(where, f"makes an object of {value[_JSONPICKLE_OBJECT]!r}")
            for key, item in value.items():
                if key != _JSONPICKLE_OBJECT:
                    if key.startswith("_"):
                        raise refuse(where, f"sets attribute {key!r}")
                    check(item, f"{where}.{key}", _NESTED_CLASSES.get(key))
            return
        if tags:
            unexpected = [t for t in tags if t not in (_JSONPICKLE_OBJECT, _JSONPICKLE_TUPLE)] or tags
            raise refuse(where, f"holds the jsonpickle tag {unexpected[0]!r}")
        for key, item in value.items():
            check(item, f"{where}.{key}")

    if (
        not isinstance(index, dict)
        or not isinstance(index.get("suspicious_detections"), list)
        or not isinstance(index.get("options"), dict)
        or index["options"].get(_JSONPICKLE_OBJECT) != _INDEX_CLASSES["options"]
    ):
        raise refuse("the top level", "lacks 'suspicious_detections' or MegaDetector's 'options'")
    for key, value in index.items():
        if key == "options":
            check(value, "options", _INDEX_CLASSES["options"])
        elif key == "suspicious_detections":
            for i_dir, per_dir in enumerate(value):
                if not isinstance(per_dir, list):
                    raise refuse(f"suspicious_detections[{i_dir}]", "is not a list")
                for i, detection in enumerate(per_dir):
                    where = f"suspicious_detections[{i_dir}][{i}]"
                    if (
                        not isinstance(detection, dict)
                        or detection.get(_JSONPICKLE_OBJECT) != _INDEX_CLASSES["suspicious detection"]
                    ):
                        raise refuse(where, "is not a suspicious detection")
                    check(detection, where, _INDEX_CLASSES["suspicious detection"])
                    tile = detection.get("sampleImageRelativeFileName")
                    if (
                        not isinstance(tile, str)
                        or tile != posixpath.basename(tile.replace("\\", "/"))
                        or tile in ("", ".", "..")
                    ):
                        raise refuse(where, f"names the tile {tile!r}, not a file name in the folder")
        else:
            check(value, key)
    # The find step never sets a list file; a set one would make the apply step read a file of the index's choice.
    if index["options"].get("filteredFileListToLoad") is not None:
        raise refuse("options.filteredFileListToLoad", "is set")
    return index
