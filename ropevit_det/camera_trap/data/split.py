"""Split a COCO Camera Traps file by camera location.

Frames from one camera share background, lighting and often the same animals, so a random image split puts
near-duplicates in train and val and overstates accuracy. Camera-trap work splits by ``location``: no camera
appears in two splits.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .cct_checks import check_cct_consistency

logger = logging.getLogger(__name__)

# Images without a location are one group, so they stay together (they may all come from one camera).
UNKNOWN_LOCATION = "__unknown_location__"


@dataclass
class SplitSummary:
    """Per split: locations, image and annotation counts."""

    locations: dict[str, list[str]]
    images: dict[str, int]
    annotations: dict[str, int]

    def table(self) -> str:
        total = sum(self.images.values()) or 1
        rows = [f"{'split':<6} {'locations':>9} {'images':>8} {'fraction':>8} {'annotations':>11}"]
        for name in self.locations:
            rows.append(
                f"{name:<6} {len(self.locations[name]):>9} {self.images[name]:>8} "
                f"{self.images[name] / total:>8.3f} {self.annotations[name]:>11}"
            )
        return "\n".join(rows)


def location_of(image: dict[str, Any]) -> str:
    """The image's location as a string; :data:`UNKNOWN_LOCATION` when missing or empty."""
    location = image.get("location")
    return UNKNOWN_LOCATION if location is None or str(location).strip() == "" else str(location)


def _fill(order: list[str], sizes: dict[str, int], target: float) -> list[str]:
    """Take whole locations (in ``order``) while each one brings the image count closer to ``target``.

    Greedy, not optimal: it keeps the split near its fraction without searching subsets. If no location
    fits, the smallest is taken, so a requested split is never empty.
    """
    taken, count = [], 0
    for loc in order:
        if count + sizes[loc] - target < target - count:  # |new - target| < |old - target|, since count < target
            taken.append(loc)
            count += sizes[loc]
        if count >= target:
            break
    if not taken and order:
        taken.append(min(order, key=lambda loc: (sizes[loc], order.index(loc))))
    return taken


def split_by_location(
    data: dict[str, Any],
    *,
    val_fraction: float,
    test_fraction: float = 0.0,
    seed: int = 0,
    source: str = "the CCT data",
) -> tuple[dict[str, dict[str, Any]], SplitSummary]:
    """Split a CCT dict into train / val (/ test) with disjoint locations.

    Locations are sorted, shuffled with ``seed``, then whole locations are given to test and val until each
    is as close as it gets to its fraction of the images; the rest is train. Same input and seed, same split.

    Args:
        data: a parsed CCT file (``images``, ``annotations``, ``categories``; other keys are copied).
        val_fraction: target fraction of images in val (0 < f < 1).
        test_fraction: target fraction in test; 0 makes no test split.
        seed: shuffling seed.
        source: how errors name the data (e.g. ``"CCT file cct.json"``).

    Returns:
        ``({"train": cct, "val": cct[, "test": cct]}, summary)``.

    Raises:
        ValueError: a fraction is out of range, too few locations, or the data's ids or boxes are inconsistent
            (a duplicated image id would put its annotations in two splits; see
            :func:`ropevit_det.camera_trap.data.cct_checks.check_cct_consistency`).
    """
    if not 0 < val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"need 0 < val_fraction < 1, 0 <= test_fraction < 1 and val_fraction + test_fraction < 1; "
            f"got val_fraction {val_fraction}, test_fraction {test_fraction}: pass fractions of the "
            "images, e.g. 0.2"
        )
    check_cct_consistency(data, source)
    by_location: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for image in data["images"]:
        by_location[location_of(image)].append(image)
    if UNKNOWN_LOCATION in by_location:
        logger.warning(
            "%d images have no 'location'; they form one group %r that goes to a single split",
            len(by_location[UNKNOWN_LOCATION]),
            UNKNOWN_LOCATION,
        )
    split_names = ["train", "val"] + (["test"] if test_fraction > 0 else [])
    if len(by_location) < len(split_names):
        raise ValueError(
            f"only {len(by_location)} location(s) ({sorted(by_location)}), cannot make "
            f"{len(split_names)} location-disjoint splits"
        )

    order = sorted(by_location)
    random.Random(seed).shuffle(order)
    sizes = {loc: len(images) for loc, images in by_location.items()}
    total = len(data["images"])
    assignment: dict[str, list[str]] = {}
    for name, fraction in (("test", test_fraction), ("val", val_fraction)):
        if fraction > 0:
            # Leave at least one location for train.
            assignment[name] = _fill(order[:-1] if len(order) > 1 else order, sizes, fraction * total)
            order = [loc for loc in order if loc not in assignment[name]]
    assignment["train"] = order
    if not order:
        raise ValueError("no location left for train; lower val_fraction / test_fraction")

    anns_by_image: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in data.get("annotations", []):
        anns_by_image[ann["image_id"]].append(ann)
    splits: dict[str, dict[str, Any]] = {}
    summary = SplitSummary({}, {}, {})
    for name in split_names:
        locations = sorted(assignment[name])
        chosen = set(locations)
        images = [im for im in data["images"] if location_of(im) in chosen]  # original order
        annotations = [ann for im in images for ann in anns_by_image.get(im["id"], [])]
        split = {k: v for k, v in data.items() if k not in ("images", "annotations")}
        split["images"], split["annotations"] = images, annotations
        splits[name] = split
        summary.locations[name] = locations
        summary.images[name] = len(images)
        summary.annotations[name] = len(annotations)
    return splits, summary
