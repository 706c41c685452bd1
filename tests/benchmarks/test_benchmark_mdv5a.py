"""MegaDetector v5a as the benchmark's peer: a tiny YOLOv5 built from the same yolov5 code and definition
(yolov5x6.yaml at small multiples) runs one forward and MegaDetector's own post-processing, the candidate cap
holds, and the ratios against it are ours / MegaDetector. No duration is asserted."""

from __future__ import annotations

import json
import math

import pytest
import torch

try:
    import yolov5.models.yolo  # noqa: F401
except ImportError as exc:  # a failure, not a skip: tools/setup_env.sh installs the bench extra
    raise ImportError(
        f"{exc}: pip install --no-deps yolov5==7.0.14 ultralytics && pip install -e '.[bench]' "
        "(or bash tools/setup_env.sh)"
    ) from None

from benchmarks.megadetector import (
    MDV5A_STRIDE,
    build_mdv5a,
    cap_yolo_candidates,
    letterboxed_frame,
    mdv5a_postprocess,
)
from benchmarks.runner import BenchmarkSettings, Row, compute_ratios


def test_tiny_yolov5_runs_megadetectors_forward_and_postprocessing():
    model = build_mdv5a(tiny=True)
    frame = letterboxed_frame(320)
    # a 4:3 frame (240 x 320 at this long side), padded by yolov5's letterbox to a multiple of the stride 64
    assert frame.shape == (256, 320, 3)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        prediction = model(x)[0]
    # 4 output levels (P3-P6) x 3 anchors; 5 + 3 classes (animal, person, vehicle) per row
    cells = sum(math.ceil(256 / s) * math.ceil(320 / s) for s in (8, 16, 32, MDV5A_STRIDE))
    assert prediction.shape == (1, 3 * cells, 8)
    detections = mdv5a_postprocess(50)(prediction)
    assert len(detections) == 1 and detections[0].shape[1] == 6
    assert 0 < detections[0].shape[0] <= 50  # only the 50 candidates can survive
    assert set(detections[0][:, 5].tolist()) <= {0.0, 1.0, 2.0}


def test_candidate_cap_keeps_the_best_rows_only():
    prediction = torch.rand(2, 500, 8)
    capped = cap_yolo_candidates(prediction, 40)
    assert ((capped[..., 4] > 0).sum(1) == 40).all()
    score = prediction[..., 4] * prediction[..., 5:].max(-1).values
    kept = capped[..., 4] > 0
    assert (score[kept].view(2, 40).min(1).values >= score[~kept].view(2, 460).max(1).values).all()
    assert torch.equal(cap_yolo_candidates(prediction, 0), prediction)


def test_ratios_against_mdv5a():
    rows = [
        Row("mdv5a", "fp32", "inference", 1280, 1, 4.0, 1000.0, 1.0, 0.1),
        Row("mdv5a", "fp32", "backbone", 1280, 1, 3.0, 900.0, 1.0, 0.1),
        Row("ours", "fast", "inference", 1024, 1, 2.0, 1500.0, 1.0, 0.1),
        Row("ours", "parity", "inference", 1024, 1, 8.0, 1200.0, 1.0, 0.1),
        Row("ours", "int8", "inference", 1024, 1, 5.0, 1100.0, None, None),
    ]
    ratios = compute_ratios(rows, 1024, 1, mdv5a_mode="fp32", mdv5a_size=1280)
    assert ratios["inference_fast_vs_mdv5a"] == pytest.approx(0.5)
    assert ratios["images_per_second_fast_vs_mdv5a"] == pytest.approx(2.0)
    assert ratios["images_per_second_int8_vs_mdv5a"] == pytest.approx(0.8)
    assert ratios["inference_mem_parity_vs_mdv5a"] == pytest.approx(1.2)
    assert ratios["inference_speedup_int8_over_parity"] == pytest.approx(1.6)
    assert "backbone_fast_vs_mdv5a" not in ratios  # not measured, not invented


def test_the_peer_needs_a_candidate_cap():
    with pytest.raises(ValueError, match="candidate cap"):
        BenchmarkSettings(mdv5a_modes=("fp32",), topk_candidates=0).validate()


def test_tiny_run_with_the_peer_writes_its_rows_and_ratios(tmp_path):
    from benchmarks.commands import benchmark

    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        benchmark.main(
            [
                "--tiny",
                "--sizes",
                "64",
                "--warmup",
                "1",
                "--repeats",
                "1",
                "--threads",
                "1",
                "--tasks",
                "backbone,inference",
                "--vitdet-modes",
                "",
                "--mdv5a-modes",
                "fp32",
                "--ours-modes",
                "int8",
                "--boxes-only",
                "--topk-candidates",
                "100",
                "--no-accuracy",
                "--json",
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    peer = [r for r in result["rows"] if r["model"] == "mdv5a"]
    assert {r["task"] for r in peer} == {"backbone", "inference"} and all(r["size"] == 320 for r in peer)
    assert all(r["seconds_median"] > 0 and r["gflops"] > 0 for r in peer)
    assert result["ratios"]["images_per_second_int8_vs_mdv5a"] > 0
    assert result["ratios_at"]["mdv5a"] == "fp32 at 320 px"


def test_interleaved_run_measures_every_model_in_every_round(tmp_path):
    from benchmarks.commands import benchmark

    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        benchmark.main(
            [
                "--tiny",
                "--sizes",
                "64",
                "--warmup",
                "1",
                "--repeats",
                "2",
                "--threads",
                "1",
                "--tasks",
                "inference",
                "--vitdet-modes",
                "",
                "--mdv5a-modes",
                "fp32",
                "--ours-modes",
                "parity,int8",
                "--boxes-only",
                "--topk-candidates",
                "100",
                "--no-accuracy",
                "--interleave",
                "--json",
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["mode"]) for r in rows] == [("mdv5a", "fp32"), ("ours", "parity"), ("ours", "int8")]
    assert all(len(r["seconds_all"]) == 2 and r["peak_mem_mb"] is None for r in rows)


def test_interleaved_run_measures_the_exported_model_on_the_cpu_runtimes(tmp_path):
    """Modes ort / openvino: the ONNX export of the same model at the benchmark size, run as `infer --backend
    onnxruntime|openvino` runs it; inference rows only (no backbone row), ratios like the other modes."""
    import importlib.util

    from benchmarks.commands import benchmark

    runtimes = ["ort"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        benchmark.main(
            [
                "--tiny",
                "--sizes",
                "64",
                "--warmup",
                "1",
                "--repeats",
                "2",
                "--threads",
                "1",
                "--tasks",
                "backbone,inference",
                "--vitdet-modes",
                "",
                "--mdv5a-modes",
                "fp32",
                "--ours-modes",
                ",".join(["parity", *runtimes]),
                "--boxes-only",
                "--topk-candidates",
                "100",
                "--no-accuracy",
                "--interleave",
                "--json",
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    for mode in runtimes:
        rows = [r for r in result["rows"] if r["mode"] == mode]
        assert [(r["model"], r["task"], r["size"], r["precision"]) for r in rows] == [("ours", "inference", 64, "fp32")]
        assert len(rows[0]["seconds_all"]) == 2 and rows[0]["seconds_median"] > 0
        for ratio in (
            f"inference_speedup_{mode}_over_parity",
            f"inference_{mode}_vs_mdv5a",
            f"images_per_second_{mode}_vs_mdv5a",
        ):
            assert result["ratios"][ratio] > 0, ratio
        assert f"backbone_{mode}_vs_mdv5a" not in result["ratios"]  # no backbone row: not invented
    assert "onnxruntime" in result["modes"]["ours/ort"]


def test_runtime_modes_need_the_inference_task_and_the_cpu():
    with pytest.raises(ValueError, match="inference"):
        BenchmarkSettings(ours_modes=("ort",), tasks=("backbone",)).validate()
    with pytest.raises(ValueError, match="CPU"):
        BenchmarkSettings(ours_modes=("ort",), tasks=("inference",), device="cuda").validate()


def test_settings_errors_name_the_field_and_the_cli_names_the_flag(capsys):
    from benchmarks.commands import benchmark
    from benchmarks.runner import SettingsError

    with pytest.raises(SettingsError, match="topk_candidates must be >= 0") as info:
        BenchmarkSettings(topk_candidates=-1).validate()
    assert info.value.field == "topk_candidates" and "--" not in str(info.value)  # the library's terms
    for argv, flag in (
        (["--topk-candidates", "-1"], "--topk-candidates"),
        (["--mdv5a-modes", "fp32"], "--topk-candidates"),
        (["--ours-modes", "ort", "--tasks", "backbone"], "--tasks"),
    ):
        assert benchmark.main(["--tiny", "--vitdet-modes", "", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and f"(set by {flag})" in err, (argv, err)
