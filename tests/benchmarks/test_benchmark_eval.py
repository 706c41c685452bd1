"""tools/benchmark_eval.py's pieces: the synthetic COCO set, the two COCO engines agreeing on it, and the
LSJ training mapper on generated JPEGs. Nothing here asserts a duration."""

from __future__ import annotations

import numpy as np

from benchmarks.eval_data import coco_eval_benchmark, loader_benchmark, synthetic_coco, write_synthetic_jpegs
from tests.conftest import CONFIGS


def test_synthetic_coco_has_the_asked_detection_budget() -> None:
    gt, dets = synthetic_coco(num_images=12, dets_per_image=30, seed=1)
    assert len(gt["images"]) == 12 and len(gt["categories"]) == 80
    assert len(dets) == 12 * 30
    per_image = np.bincount([d["image_id"] for d in dets])[1:]
    assert (per_image == 30).all()
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 640 and y + h <= 480


def test_faster_coco_eval_gives_pycocotools_ap() -> None:
    result = coco_eval_benchmark(num_images=30, dets_per_image=20, iou_types=("bbox", "segm"))
    for iou_type in ("bbox", "segm"):
        r = result["by_iou_type"][iou_type]
        assert 0.05 < r["AP"]["pycocotools"] < 0.95  # neither degenerate case: the set exercises matching
        assert r["max_abs_stat_difference"] < 1e-9
        assert r["speedup"] > 0


def test_lsj_mapper_runs_on_generated_jpegs(tmp_path) -> None:
    paths = write_synthetic_jpegs(tmp_path, 2)
    result = loader_benchmark(paths, CONFIGS / "ropevit_mrcnn.yaml", passes=1)
    assert result["images"] == 2
    # ViTDet's LSJ: a random scale, then a crop of at most 1024 x 1024 and no padding (the model pads).
    channels, height, width = result["output_size"]
    assert channels == 3 and 0 < height <= 1024 and 0 < width <= 1024
    assert result["images_per_second_per_worker"] > 0


def test_main_returns_an_exit_status(tmp_path, capsys):
    """One command shape: main(argv) -> int, errors as one line on stderr (it returned its result dict before)."""
    from benchmarks.commands import benchmark_eval

    out = tmp_path / "r.json"
    assert benchmark_eval.main(["--skip-coco", "--skip-loader", "--json", str(out)]) == 0
    assert out.is_file()
    assert benchmark_eval.main(["--iou-types", "bbox,keypoints", "--skip-loader"]) == 2
    assert capsys.readouterr().err.strip() == "error: --iou-types: unknown ['keypoints']; use bbox and/or segm"
