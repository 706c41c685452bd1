"""Sliced inference: a detector that runs on overlapping tiles of each image (and optionally the whole frame).

Small and distant animals cover a few dozen pixels of a 4K frame and vanish when the frame is shrunk to the
model's test size; cut into tiles, each tile is shrunk far less. The tiles are SAHI's (``sahi.slicing
.get_slice_bboxes``: fixed-size slices with an overlap, the last row and column shifted back inside the image)
and so is the merge (``sahi.postprocess.combine``, per class, overlap measured as intersection over the smaller
box, 0.5, as SAHI's sliced prediction does): ``nms`` (the default) keeps the most confident of the boxes of one
object seen by two tiles, or by a tile and the full frame; ``greedy_nmm`` (SAHI's own default) merges them into
their union. The union also takes in every low-score box that overlaps (MD files are written from low
thresholds), which inflates boxes; hence NMS by default.

The two halves keep the batch loop's interface, so every path of a run (several processes, shards, resume,
video frames, species crops from the full image, bf16, the CPU backends) works unchanged:

* :class:`TiledInputSpec` stands in for ``engine.predictor.InputSpec`` in the DataLoader workers: it cuts the
  decoded image into tiles and prepares each one (and the full frame) with the model's own ``InputSpec``;
* :class:`TiledDetector` stands in for ``engine.predictor.Detector``: it runs the wrapped detector on the tiles
  of a batch of images, ``batch_size`` tiles per call, shifts each tile's boxes to the full image, merges, and
  returns one ``Instances`` per image in displayed pixels, as the plain detector does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from detectron2.structures import Boxes, Instances

from ...engine.predictor import InputSpec

__all__ = ["TILES_EXTRA_HINT", "TiledDetector", "TiledInputSpec", "TilingSettings", "require_sahi"]

TILES_EXTRA_HINT = "tiling needs SAHI: pip install -e '.[tiles]' (or: pip install --no-deps sahi)"

# SAHI's match for sliced prediction: intersection over the smaller box, 0.5.
MATCH_METRIC = "IOS"
MATCH_THRESHOLD = 0.5
MERGES = ("nms", "greedy_nmm")  # sahi.postprocess.combine's NMSPostprocess, GreedyNMMPostprocess


def require_sahi() -> None:
    """Raise ``ImportError`` naming the extra to install when SAHI is missing."""
    try:
        import sahi.postprocess.combine
        import sahi.slicing  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{TILES_EXTRA_HINT} ({exc})") from exc


@dataclass(frozen=True, kw_only=True)
class TilingSettings:
    """How images are sliced.

    Args:
        tile_size: side of a square tile in decoded image pixels (an image smaller than a tile is one tile).
        overlap: fraction of a tile shared with its neighbour, in [0, 1).
        full_frame: also run the whole frame (at the model's test size): large animals that no tile holds
            whole are found there.
        merge: ``nms`` or ``greedy_nmm`` (see the module docstring).
    """

    tile_size: int = 1024
    overlap: float = 0.2
    full_frame: bool = False
    merge: str = "nms"

    def __post_init__(self) -> None:
        if self.tile_size < 32:
            raise ValueError(f"tile size {self.tile_size} px is too small; use at least 32 (e.g. 1024)")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"tile overlap {self.overlap} must be a fraction in [0, 1) (e.g. 0.2)")
        if self.merge not in MERGES:
            raise ValueError(f"tile merge {self.merge!r} is not one of {', '.join(MERGES)}")

    def tile_boxes(self, height: int, width: int) -> list[list[int]]:
        """SAHI's slices ``[x0, y0, x1, y1]`` of a ``height`` x ``width`` image."""
        from sahi.slicing import get_slice_bboxes

        return get_slice_bboxes(
            height,
            width,
            slice_height=self.tile_size,
            slice_width=self.tile_size,
            auto_slice_resolution=False,
            overlap_height_ratio=self.overlap,
            overlap_width_ratio=self.overlap,
        )


@dataclass(frozen=True)
class TiledInputSpec:
    """The detector inputs of one image: each tile (and the full frame) prepared by ``spec`` (picklable).

    Returns a dict with ``tiles`` (detectron2 input dicts, each with its tile's own size as ``height`` /
    ``width``), ``offsets`` (each tile's top-left corner in decoded pixels), ``full`` (the full frame's input,
    or None), the displayed ``height`` / ``width`` and the decoded image's ``decoded_hw``.
    """

    spec: InputSpec
    tiling: TilingSettings

    def __call__(self, image_rgb: np.ndarray, original_hw: tuple[int, int]) -> dict[str, Any]:
        height, width = image_rgb.shape[:2]
        boxes = self.tiling.tile_boxes(height, width)
        tiles, offsets = [], []
        for x0, y0, x1, y1 in boxes:
            tile = image_rgb[y0:y1, x0:x1]
            tiles.append(self.spec(tile, (y1 - y0, x1 - x0)))
            offsets.append((x0, y0))
        whole = len(boxes) == 1 and boxes[0] == [0, 0, width, height]
        # One tile that is the whole image already is the full frame, at a finer scale or the same one.
        full = self.spec(image_rgb, original_hw) if self.tiling.full_frame and not whole else None
        return {
            "tiles": tiles,
            "offsets": offsets,
            "full": full,
            "height": original_hw[0],
            "width": original_hw[1],
            "decoded_hw": (height, width),
        }


class TiledDetector:
    """Run ``detector`` on the tiles of each image and merge the boxes into one ``Instances`` per image.

    Args:
        detector: the wrapped detector (``engine.predictor.Detector`` or a CPU backend's): detectron2 input
            dicts in, ``Instances`` in each input's ``height`` / ``width`` out.
        batch_size: tiles per call of ``detector``.
        max_detections: keep at most this many merged boxes per image, best first (the model's
            ``TEST.DETECTIONS_PER_IMAGE``); 0 keeps all.
        merge: ``nms`` or ``greedy_nmm`` (see the module docstring).
    """

    def __init__(
        self,
        detector: Callable[[list[dict[str, Any]]], list[Instances]],
        *,
        batch_size: int = 4,
        max_detections: int = 100,
        merge: str = "nms",
    ) -> None:
        require_sahi()
        if batch_size < 1:
            raise ValueError(f"batch size {batch_size} must be >= 1")
        if merge not in MERGES:
            raise ValueError(f"tile merge {merge!r} is not one of {', '.join(MERGES)}")
        self.detector = detector
        self.merge = merge
        self.batch_size = batch_size
        self.max_detections = max_detections

    @property
    def device(self) -> torch.device:
        return getattr(self.detector, "device", torch.device("cpu"))

    def __call__(self, inputs: list[dict[str, Any]]) -> list[Instances]:
        if not inputs:
            return []
        # Every tile (and full frame) of the batch, with the image it belongs to and how its boxes map back.
        flat: list[dict[str, Any]] = []
        owners: list[tuple[int, tuple[float, float, float, float]]] = []  # (image, (dx, dy, sx, sy))
        for index, image in enumerate(inputs):
            decoded_h, decoded_w = image["decoded_hw"]
            # Tiles are in decoded pixels; the decoded image may be smaller than the displayed one (max_pixels).
            sx, sy = image["width"] / decoded_w, image["height"] / decoded_h
            for tile, (x0, y0) in zip(image["tiles"], image["offsets"]):
                flat.append(tile)
                owners.append((index, (x0, y0, sx, sy)))
            if image["full"] is not None:
                flat.append(image["full"])
                owners.append((index, (0.0, 0.0, 1.0, 1.0)))  # already in displayed pixels
        outputs: list[Instances] = []
        for start in range(0, len(flat), self.batch_size):
            outputs.extend(self.detector(flat[start : start + self.batch_size]))
        per_image: list[list[np.ndarray]] = [[] for _ in inputs]
        for (index, (dx, dy, sx, sy)), instances in zip(owners, outputs):
            boxes = instances.pred_boxes.tensor.float().numpy().astype(np.float64)
            boxes = (boxes + [dx, dy, dx, dy]) * [sx, sy, sx, sy]
            rows = np.column_stack([boxes, instances.scores.float().numpy(), instances.pred_classes.numpy()])
            per_image[index].append(rows)
        return [self._merge(rows, (image["height"], image["width"])) for rows, image in zip(per_image, inputs)]

    def _merge(self, parts: Sequence[np.ndarray], image_hw: tuple[int, int]) -> Instances:
        """SAHI's merge over the boxes of every tile of one image (rows: x0 y0 x1 y1 score class)."""
        from sahi.postprocess.combine import GreedyNMMPostprocess, NMSPostprocess
        from sahi.prediction import ObjectPrediction

        rows = np.concatenate(parts) if parts else np.zeros((0, 6))
        height, width = image_hw
        predictions = [
            ObjectPrediction(
                bbox=[float(v) for v in row[:4]],
                category_id=int(row[5]),
                score=float(row[4]),
                full_shape=[height, width],
            )
            for row in rows
            if row[2] > row[0] and row[3] > row[1]
        ]
        if predictions:
            kind = NMSPostprocess if self.merge == "nms" else GreedyNMMPostprocess
            merge = kind(match_threshold=MATCH_THRESHOLD, match_metric=MATCH_METRIC, class_agnostic=False)
            predictions = merge(predictions)
        predictions.sort(key=lambda p: -p.score.value)
        if self.max_detections > 0:
            predictions = predictions[: self.max_detections]
        result = Instances((height, width))
        boxes = [p.bbox.to_xyxy() for p in predictions]
        result.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        result.scores = torch.tensor([p.score.value for p in predictions], dtype=torch.float32)
        result.pred_classes = torch.tensor([p.category.id for p in predictions], dtype=torch.int64)
        return result
