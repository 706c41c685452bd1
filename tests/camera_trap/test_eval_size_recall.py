"""``eval-camtrap`` reports box recall at the threshold per COCO size band (area in full-image pixels): a small
box missed, a medium one found, a large one found by a detection of the wrong class only (not counted)."""

from __future__ import annotations

import json

from ropevit_det.camera_trap.metrics.ground_truth import GroundTruthImage
from ropevit_det.camera_trap.metrics.size_recall import recall_by_size, size_band
from ropevit_det.cli import eval_camtrap
from tests.camtrap_helpers import write_json

W, H = 1000, 500
CATEGORIES = {"1": "animal", "2": "person", "3": "vehicle"}


def _norm(x, y, w, h):
    return [x / W, y / H, w / W, h / H]


def test_size_bands_are_cocos():
    assert [size_band(a) for a in (0, 31 * 31, 32 * 32, 95 * 95, 96 * 96, 1e9)] == [
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "large",
    ]


def test_recall_by_size_counts_matches_at_the_threshold_per_band():
    gt = GroundTruthImage(
        file_name="a.jpg",
        labels={"animal"},
        has_unboxed_label=False,
        only_ignored=False,
        width=W,
        height=H,
        seq_id=None,
        boxes=[
            ("animal", [10, 10, 20, 20]),  # small: found only below the threshold
            ("animal", [100, 100, 50, 50]),  # medium: found
            ("animal", [300, 100, 200, 200]),
        ],
    )  # large: only a person box on it
    entry = {
        "file": "a.jpg",
        "detections": [
            {"category": "1", "conf": 0.1, "bbox": _norm(10, 10, 20, 20)},
            {"category": "1", "conf": 0.9, "bbox": _norm(101, 101, 50, 50)},
            {"category": "1", "conf": 0.8, "bbox": _norm(102, 100, 50, 50)},  # a duplicate finds nothing more
            {"category": "2", "conf": 0.9, "bbox": _norm(300, 100, 200, 200)},
        ],
    }
    out = recall_by_size([(gt, entry)], CATEGORIES, {}, threshold=0.5)
    assert {band: (out[band]["boxes"], out[band]["found"]) for band in ("small", "medium", "large")} == {
        "small": (1, 0),
        "medium": (1, 1),
        "large": (1, 0),
    }
    assert out["medium"]["recall"] == 1.0 and out["small"]["recall"] == 0.0
    assert recall_by_size([(gt, entry)], CATEGORIES, {}, threshold=0.05)["small"]["found"] == 1


def test_eval_camtrap_prints_and_writes_recall_by_size(tmp_path, capsys):
    gt = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [300, 100, 200, 200]},
        ],
        "categories": [{"id": 1, "name": "animal"}],
    }
    results = {
        "info": {"format_version": "1.4", "detector": "test"},
        "detection_categories": CATEGORIES,
        "images": [
            {"file": "a.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": _norm(300, 100, 200, 200)}]}
        ],
    }
    report = tmp_path / "report.json"
    assert (
        eval_camtrap.main(
            [
                "--results",
                str(write_json(tmp_path / "r.json", results)),
                "--gt",
                str(write_json(tmp_path / "gt.json", gt)),
                "--threshold",
                "0.5",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    by_size = json.loads(report.read_text())["recall_by_size"]
    assert by_size["small"] == {"boxes": 1, "found": 0, "recall": 0.0}
    assert by_size["large"] == {"boxes": 1, "found": 1, "recall": 1.0}
    assert "box size (COCO area bands)" in capsys.readouterr().out
