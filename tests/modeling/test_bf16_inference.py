"""bf16 inference agrees with fp32 on a model whose detections are not noise (the briefly trained shapes
detector), both through the camera-trap ``Detector`` and through ``tools/infer.py --bf16``; the heads stay in
float32, and on the CPU the chunked attention kernel is the one that runs."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import ropevit_det.modeling.attention as attention_module
from ropevit_det.engine.predictor import Detector
from tests.trained_shapes import (
    MODEL_OVERRIDES,
    Detection,
    assert_matched,
    detections_of,
    load_shapes_model,
    shapes_inputs,
)

MIN_SCORE, MIN_IOU, MAX_SCORE_DIFF = 0.3, 0.9, 0.02


@pytest.fixture
def chunked_calls(monkeypatch) -> list[int]:
    """Counts the calls of the chunked CPU attention kernel (``attention()`` looks it up by module name)."""
    calls: list[int] = []
    original = attention_module.chunked_cpu_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(attention_module, "chunked_cpu_attention", counting)
    return calls


def assert_bf16_matches(reference: list[Detection], candidate: list[Detection]) -> None:
    checked = assert_matched(
        reference, candidate, min_score=MIN_SCORE, min_iou=MIN_IOU, max_score_diff=MAX_SCORE_DIFF, label="bf16"
    )
    assert checked, "the trained model gave no confident detection: the comparison would prove nothing"


def test_bf16_detector_matches_fp32_heads_stay_fp32_and_chunked_kernel_runs(shapes_detector, chunked_calls):
    _, model = load_shapes_model(shapes_detector)
    inputs = shapes_inputs(shapes_detector)
    head_dtypes: list[torch.dtype] = []
    hook = model.roi_heads.box_predictor.register_forward_hook(
        lambda _m, _i, out: head_dtypes.extend(t.dtype for t in out)
    )

    fp32 = Detector(model, "cpu", bf16=False)(inputs)
    assert not chunked_calls, "fp32 inference must keep SDPA (parity with birder)"
    head_dtypes.clear()
    bf16 = Detector(model, "cpu", bf16=True)(inputs)
    hook.remove()

    assert chunked_calls, "bf16 CPU inference did not take the chunked attention path"
    assert head_dtypes and all(d == torch.float32 for d in head_dtypes), head_dtypes
    for out in bf16:
        assert out.scores.dtype == torch.float32 and out.pred_boxes.tensor.dtype == torch.float32
    for ref, cand in zip(fp32, bf16):
        assert_bf16_matches(detections_of(ref), detections_of(cand))


def _md_detections(path, width: int, height: int) -> dict[str, list[Detection]]:
    """MegaDetector results (normalised x, y, w, h) back to pixel x1y1x2y2, per file."""
    results = {}
    for entry in json.loads(path.read_text())["images"]:
        dets = []
        for d in entry.get("detections") or []:
            x, y, w, h = d["bbox"]
            dets.append(([x * width, y * height, (x + w) * width, (y + h) * height], d["conf"], int(d["category"])))
        results[entry["file"]] = dets
    return results


def test_batch_job_bf16_matches_fp32(shapes_detector, chunked_calls, tmp_path):
    from ropevit_det.camera_trap.detection.batch_job import run_batch_job
    from ropevit_det.camera_trap.detection.job_settings import BatchJobSettings

    folder = shapes_detector.val_images[0].parent
    settings = dict(
        config_file=shapes_detector.config_file,
        weights=str(shapes_detector.weights),
        input=str(folder),
        class_names="shape",
        num_workers=0,
        threshold=0.05,
        progress=False,
        opts=MODEL_OVERRIDES,
    )
    assert run_batch_job(BatchJobSettings(**settings, output=str(tmp_path / "fp32.json"))).failures == 0
    assert not chunked_calls
    assert run_batch_job(BatchJobSettings(**settings, output=str(tmp_path / "bf16.json"), bf16=True)).failures == 0
    assert chunked_calls, "bf16 on the CPU did not take the chunked attention path"

    width, height = Image.open(shapes_detector.val_images[0]).size
    fp32 = _md_detections(tmp_path / "fp32.json", width, height)
    bf16 = _md_detections(tmp_path / "bf16.json", width, height)
    assert sorted(fp32) == sorted(bf16) and len(fp32) == len(shapes_detector.val_images)
    for name in fp32:
        assert_bf16_matches(fp32[name], bf16[name])
