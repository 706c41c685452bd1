"""Class spaces for camera-trap data: a file's own species, or MegaDetector's animal/person/vehicle.

Pure Python (no detectron2), so the loader, the splitter and the metrics share one definition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

# MegaDetector's detection categories. The ids are the ones every MD results file uses
# ("1" animal, "2" person, "3" vehicle); Timelapse and AddaxAI key their UI on these names.
MD_CLASSES: tuple[str, ...] = ("animal", "person", "vehicle")
MD_CATEGORY_IDS: dict[str, int] = {"animal": 1, "person": 2, "vehicle": 3}
IGNORE = "ignore"
MAPPING_TARGETS = frozenset(MD_CLASSES) | {IGNORE}

# Names (normalised: lower case, letters and digits only) that mean "nothing in the frame".
EMPTY_NAMES = frozenset({"empty", "blank", "nothing", "none", "novisibleanimal"})
# Default mapping for MegaDetector mode: everything is an animal except these.
_PERSON_NAMES = frozenset({"human", "humans", "person", "people", "homosapiens", "hunter", "poacher"})
_VEHICLE_NAMES = frozenset(
    {
        "vehicle",
        "vehicles",
        "car",
        "cars",
        "truck",
        "trucks",
        "motorcycle",
        "motorbike",
        "bicycle",
        "bike",
        "atv",
        "tractor",
        "bus",
    }
)


def normalize_name(name: str) -> str:
    """Lower-case a category name and drop everything but letters and digits ("Homo sapiens" -> "homosapiens")."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_empty_category(name: str) -> bool:
    """Whether a category name marks an empty frame (CCT's category 0 ``empty``, "blank", ...)."""
    return normalize_name(name) in EMPTY_NAMES


def default_md_class(name: str) -> str:
    """MegaDetector class for a species name when the user gives no mapping file.

    Args:
        name: a category name from a CCT/COCO file (not an empty category).
    """
    key = normalize_name(name)
    if key in _PERSON_NAMES:
        return "person"
    if key in _VEHICLE_NAMES:
        return "vehicle"
    return "animal"


def load_md_mapping(mapping_file: str | Path | None) -> dict[str, str]:
    """Read a user mapping ``{species_name: "animal" | "person" | "vehicle" | "ignore"}``.

    Args:
        mapping_file: path of a JSON object; None gives an empty mapping (defaults apply).

    Returns:
        The mapping with keys normalised by :func:`normalize_name`, so "Homo sapiens" matches "homo_sapiens".
    """
    if mapping_file is None:
        return {}
    path = Path(mapping_file)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"class mapping file {path} does not exist") from None
    except OSError as exc:  # a folder, no permission
        raise ValueError(
            f"class mapping file {path} cannot be read ({exc.strerror or exc}); pass a .json file"
        ) from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError (a binary file)
        raise ValueError(f"class mapping file {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(
            f"class mapping file {path} must hold a JSON object {{species_name: class}}, got {type(raw).__name__}"
        )
    mapping: dict[str, str] = {}
    for species, target in raw.items():
        if target not in MAPPING_TARGETS:
            raise ValueError(
                f"class mapping file {path}: {species!r} maps to {target!r}; "
                f"allowed targets are {sorted(MAPPING_TARGETS)}"
            )
        mapping[normalize_name(species)] = target
    return mapping


def mapped_md_class(name: str, mapping: Mapping[str, str]) -> str:
    """MegaDetector class (or "ignore") for a category name: the user mapping first, then the default."""
    return mapping.get(normalize_name(name), default_md_class(name))
