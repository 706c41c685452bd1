"""The --eval-only report: ViTDet-README-style rows (test sets, TTA) and the reproducibility record."""

from __future__ import annotations

import hashlib
import json

from ropevit_det.evaluation.report import results_table, write_eval_report

RESULTS = {
    "bbox": {"AP": 51.234, "AP50": 70.0},
    "segm": {"AP": 45.66},
    "bbox_TTA": {"AP": 52.0},
    "segm_TTA": {"AP": 46.04},
}


def test_table_rows_for_plain_and_tta_results():
    assert results_table(RESULTS, name="ropevit_mrcnn", pretrain="birder://x").splitlines() == [
        "| Name | pre-train | box AP | mask AP |",
        "| --- | --- | --- | --- |",
        "| ropevit_mrcnn | birder://x | 51.2 | 45.7 |",
        "| ropevit_mrcnn (TTA) | birder://x | 52.0 | 46.0 |",
    ]


def test_several_test_sets_get_a_row_each():
    rows = results_table({"a": {"bbox": {"AP": 1.0}}, "b": {"bbox": {"AP": 2.0}}}, name="n", pretrain="p").splitlines()
    assert rows[2:] == ["| n [a] | p | 1.0 | - |", "| n [b] | p | 2.0 | - |"]


def test_record_holds_metrics_hashes_and_versions(tmp_path):
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"not really weights")
    md, js = write_eval_report(
        tmp_path / "out",
        results=RESULTS,
        config_name="configs/ropevit_mrcnn.yaml",
        config_text="MODEL:\n  A: 1\n",
        weights=str(weights),
        pretrain="birder://x",
        datasets=["coco_2017_val"],
    )
    record = json.loads(js.read_text())
    assert record["metrics"] == RESULTS and record["datasets"] == ["coco_2017_val"]
    assert record["config_sha256"] == hashlib.sha256(b"MODEL:\n  A: 1\n").hexdigest()
    assert record["weights_sha256"] == hashlib.sha256(b"not really weights").hexdigest()
    assert record["code_version"].startswith(("git ", "ropevit_det ")) and "torch" in record["versions"]
    assert md.read_text().splitlines()[2] == "| ropevit_mrcnn | birder://x | 51.2 | 45.7 |"
