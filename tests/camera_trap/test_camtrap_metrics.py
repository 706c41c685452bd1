"""Camera-trap metrics on toy cases whose numbers were worked out by hand (see the comments)."""

from __future__ import annotations

import json

import pytest

from ropevit_det.camera_trap.metrics import (
    EvalOptions,
    evaluate_results,
    format_table,
    plot_pr_curves,
    pr_curve,
    precision_at_recall,
    presence_metrics,
    recall_at_precision,
)
from ropevit_det.camera_trap.results.md_format import detection_entry, failure_entry, image_entry, make_info
from ropevit_det.camera_trap.results.writer import ResultsWriter
from tests.camtrap_helpers import MINI_COCO, write_json


def test_two_empty_frames_one_false_positive_is_50_percent():
    # Frames: animal 0.8, animal 0.1, empty 0.9, empty (no detection). Threshold 0.5.
    m = presence_metrics(
        [0.8, 0.1, 0.9, 0.0],
        [True, True, False, False],
        [False, False, True, True],
        threshold=0.5,
        target_precision=0.6,
        target_recall=0.5,
    )
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (1, 1, 1, 1)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["empty_frame_fp_rate"] == 0.5
    # PR points (threshold: P, R): 0.9: 0/1, 0; 0.8: 1/2, 1/2; 0.1: 2/3, 1.
    assert m["curve"]["threshold"] == [0.9, 0.8, 0.1]
    assert m["curve"]["precision"] == pytest.approx([0.0, 0.5, 2 / 3])
    assert m["curve"]["recall"] == pytest.approx([0.0, 0.5, 1.0])
    # AP = 0.5 * 0.5 + 0.5 * 2/3
    assert m["average_precision"] == pytest.approx(0.25 + 1 / 3)
    assert m["recall_at_precision"]["recall"] == 1.0 and m["recall_at_precision"]["threshold"] == 0.1
    assert m["precision_at_recall"]["precision"] == pytest.approx(2 / 3)


def test_operating_points_out_of_reach_and_ties():
    curve = pr_curve([0.5, 0.5, 0.2], [True, False, False])
    assert curve["threshold"].tolist() == [0.5, 0.2]  # tied scores form one point
    assert curve["precision"].tolist() == [0.5, 1 / 3]
    assert recall_at_precision(curve, 0.9) is None
    assert precision_at_recall(curve, 1.0)["precision"] == 0.5
    # No detection at all never counts as positive, so recall can stay below 1.
    assert precision_at_recall(pr_curve([0.0, 0.3], [True, True]), 1.0) is None


@pytest.fixture
def toy_files(tmp_path):
    """Ground truth with sequences, a species file, prefixes; results written with the real writer."""
    categories = [{"id": 0, "name": "empty"}, {"id": 1, "name": "human"}, {"id": 7, "name": "zebra"}]
    images = [
        {"id": "e1", "file_name": "survey/A/e1.jpg", "seq_id": "A", "width": 100, "height": 100},
        {"id": "a1", "file_name": "survey/A/a1.jpg", "seq_id": "A", "width": 100, "height": 100},
        {"id": "a2", "file_name": "survey/B/a2.jpg", "seq_id": "B", "width": 100, "height": 100},
        {"id": "e2", "file_name": "survey/C/e2.jpg", "seq_id": "C", "width": 100, "height": 100},
        {"id": "p1", "file_name": "survey/D/p1.jpg", "seq_id": "D", "width": 100, "height": 100},
        {"id": "f1", "file_name": "survey/D/f1.jpg", "seq_id": "D", "width": 100, "height": 100},
    ]
    annotations = [
        {"id": 1, "image_id": "e1", "category_id": 0},
        {"id": 2, "image_id": "a1", "category_id": 7, "bbox": [10, 10, 20, 20]},
        {"id": 3, "image_id": "a2", "category_id": 7, "bbox": [50, 50, 10, 10]},
        {"id": 4, "image_id": "e2", "category_id": 0},
        {"id": 5, "image_id": "p1", "category_id": 1},  # a person, labelled without a box
        {"id": 6, "image_id": "f1", "category_id": 7, "bbox": [0, 0, 5, 5]},
    ]
    gt = write_json(tmp_path / "gt.json", {"images": images, "annotations": annotations, "categories": categories})
    results = tmp_path / "results.json"
    with ResultsWriter(results, info=make_info("toy", typical_detection_threshold=0.5)) as writer:
        writer.add(image_entry("A/e1.jpg", [detection_entry(1, 0.9, [60, 60, 90, 90], 100, 100)]))
        writer.add(image_entry("A/a1.jpg", [detection_entry(1, 0.8, [10, 10, 30, 30], 100, 100)]))
        writer.add(image_entry("B/a2.jpg", [detection_entry(1, 0.1, [0, 0, 10, 10], 100, 100)]))
        writer.add(image_entry("C/e2.jpg", []))
        writer.add(image_entry("D/p1.jpg", []))
        writer.add(failure_entry("D/f1.jpg", "cannot read image"))
        writer.add(image_entry("X/not_in_gt.jpg", []))
    return results, gt


def test_results_against_cct_ground_truth(toy_files, tmp_path):
    results, gt = toy_files
    report = evaluate_results(results, gt, EvalOptions(target_precision=0.6, target_recall=0.5))
    assert report["threshold"] == 0.5  # from the results file's typical_detection_threshold
    m = report["matching"]
    assert (m["matched"], m["results_without_ground_truth"], m["failed_images"]) == (6, 1, 1)
    image = report["image_level"]
    # Images: e1 (empty, 0.9), a1 (zebra, 0.8), a2 (zebra, 0.1), e2 (empty, none), p1 (person only, none).
    assert (image["n"], image["n_positive"], image["n_empty"]) == (5, 2, 2)
    assert (image["tp"], image["fp"], image["fn"], image["tn"]) == (1, 1, 1, 2)
    assert image["empty_frame_fp_rate"] == 0.5
    assert image["precision"] == 0.5 and image["recall"] == 0.5
    seq = report["sequence_level"]
    # Sequences: A = {e1, a1} positive, score 0.9 -> TP; B = {a2} positive, 0.1 -> FN; C = {e2} empty -> TN;
    # D = {p1} (f1 failed) no animal -> TN.
    assert (seq["n"], seq["tp"], seq["fp"], seq["fn"], seq["tn"]) == (4, 1, 0, 1, 2)
    assert seq["precision"] == 1.0 and seq["recall"] == 0.5 and seq["empty_frame_fp_rate"] == 0.0
    boxes = report["boxes"]
    # p1 (label without box) is left out. Ranked detections: 0.9 FP (e1), 0.8 exact hit (a1), 0.1 miss (a2);
    # 2 GT boxes. Interpolated precision is 0.5 for recall 0..0.5 (51 of COCO's 101 recall points), 0 above:
    # AP = AP50 = 51 * 0.5 / 101.
    assert (
        boxes["n_images"] == 4 and boxes["n_gt_boxes"] == 2 and boxes["skipped_images"] == {"labels_without_boxes": 1}
    )
    assert boxes["AP50"] == pytest.approx(25.5 / 101, abs=1e-6)
    assert boxes["AP"] == pytest.approx(25.5 / 101, abs=1e-6)
    table = format_table(report)
    assert "empty-frame FP rate" in table and "sequence level" in table and "0.5000" in table
    png = plot_pr_curves(report, tmp_path / "pr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(report)  # JSON-ready


def test_person_category_and_threshold_override(toy_files):
    results, gt = toy_files
    report = evaluate_results(results, gt, EvalOptions(positive_class="person", threshold=0.05, box_ap=False))
    # No person detections: the one person frame (p1) is missed; all others are negatives.
    image = report["image_level"]
    assert (image["n_positive"], image["tp"], image["fn"], image["fp"]) == (1, 0, 1, 0)
    assert report["boxes"] is None


def test_mini_coco_ground_truth_without_sequences(tmp_path):
    gt = json.loads(MINI_COCO.read_text())
    results = tmp_path / "r.json"
    boxed = {a["image_id"]: a["bbox"] for a in gt["annotations"]}
    with ResultsWriter(results, info=make_info("oracle")) as writer:
        for im in gt["images"]:
            dets = []
            if im["id"] in boxed:
                x, y, w, h = boxed[im["id"]]
                dets.append(detection_entry(1, 0.9, [x, y, x + w, y + h], im["width"], im["height"]))
            writer.add(image_entry(im["file_name"], dets))
    report = evaluate_results(results, MINI_COCO)
    assert report["sequence_level"] is None
    image = report["image_level"]
    assert (image["n"], image["tp"], image["fp"], image["tn"]) == (21, 18, 0, 3)
    assert image["empty_frame_fp_rate"] == 0.0
    assert report["boxes"]["AP50"] == pytest.approx(1.0)


def test_unmatchable_results_are_an_error(toy_files, tmp_path):
    _, gt = toy_files
    other = tmp_path / "other.json"
    with ResultsWriter(other, info=make_info("m")) as writer:
        writer.add(image_entry("nowhere/zz.jpg", []))
    with pytest.raises(ValueError, match="no result"):
        evaluate_results(other, gt)
