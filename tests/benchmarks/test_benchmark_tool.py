"""tools/benchmark.py's measuring machinery: FLOP counting, per-measurement peak memory, window choice,
and the shape of its JSON on a tiny run. Nothing here asserts a duration."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F

from benchmarks.measure import PeakMemory, count_flops
from benchmarks.models import auto_window_size
from benchmarks.runner import Row, compute_ratios


def test_flops_of_a_matmul_and_of_cpu_attention() -> None:
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    assert count_flops(lambda: a @ b) == 2 * 64 * 32 * 16
    q = torch.randn(1, 2, 50, 8)
    # torch counts no FLOPs for the CPU SDPA kernel by itself; ours must: QK^T and AV, 2 FLOPs per MAC each.
    assert count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == 2 * 2 * (1 * 2 * 50 * 50 * 8)


def test_cpu_attention_backward_flops_are_counted() -> None:
    q = torch.randn(1, 2, 50, 8, requires_grad=True)
    forward_and_backward = count_flops(lambda: F.scaled_dot_product_attention(q, q, q).sum().backward())
    assert forward_and_backward > 2 * 2 * (2 * 50 * 50 * 8)  # the backward adds more than the forward


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU peak uses /proc (Linux)")
def test_peak_memory_is_per_measurement() -> None:
    memory = PeakMemory(torch.device("cpu"))
    assert memory.cpu_supported
    memory.set_baseline()
    memory.reset_peak()
    big = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    del big
    first = memory.peak_mb()
    memory.reset_peak()
    small = torch.ones(2**20 // 4)  # 1 MiB
    del small
    second = memory.peak_mb()
    assert first >= 60
    assert second < first - 40  # the high-water mark was reset between the two measurements


def test_auto_window_wastes_few_padding_tokens() -> None:
    assert auto_window_size(1024) == 15  # grid 74: 75 = 5 x 15, where a window of 14 would pad to 84
    assert auto_window_size(448) == 16  # grid 32 = 2 x 16
    assert auto_window_size(224) == 16


def test_ratios_are_ours_over_vitdet() -> None:
    rows = [
        Row("vitdet", "fp32", "inference", 64, 1, 2.0, 100.0, 1.0, 0.1),
        Row("ours", "fast", "inference", 64, 1, 0.5, 80.0, 1.0, 0.1),
        Row("ours", "parity", "inference", 64, 1, 3.0, 90.0, 1.0, 0.1),
        Row("vitdet", "fp32", "train_step", 64, 1, 4.0, 200.0, 1.0, 0.1),
        Row("ours", "fast", "train_step", 64, 1, 2.0, 150.0, 1.0, 0.1),
    ]
    ratios = compute_ratios(rows, 64, 1)
    assert ratios["inference_fast_vs_vitdet"] == pytest.approx(0.25)
    assert ratios["inference_parity_vs_vitdet"] == pytest.approx(1.5)
    assert ratios["train_step_vs_vitdet"] == pytest.approx(0.5)
    assert ratios["train_mem_vs_vitdet"] == pytest.approx(0.75)
    assert ratios["train_step_parity_vs_vitdet"] is None  # not measured, not invented


def _load_tool():
    from benchmarks.commands import benchmark

    return benchmark


def test_tiny_run_writes_the_documented_json(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        _load_tool().main(
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
                "--train-batches",
                "2",
                "--ours-modes",
                "parity,fast",
                "--score-thresh",
                "0.05",
                "--json",
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)  # the tool sets it process-wide
    result = json.loads(out.read_text())
    assert {"rows", "ratios", "machine", "accuracy"} <= set(result)
    assert len(result["rows"]) == 3 * 3  # (vitdet fp32, ours parity, ours fast) x 3 tasks
    keys = {"model", "mode", "task", "size", "batch", "seconds_median", "peak_mem_mb", "gflops", "fraction_of_peak"}
    for row in result["rows"]:
        assert keys <= set(row)
        assert row["batch"] == (2 if row["task"] == "train_step" else 1)
        assert row["task"] in ("backbone", "inference", "train_step")
        assert row["seconds_median"] > 0 and row["gflops"] > 0 and row["fraction_of_peak"] > 0
        assert row["peak_mem_mb"] is not None
    for name in (
        "inference_fast_vs_vitdet",
        "inference_parity_vs_vitdet",
        "train_step_vs_vitdet",
        "train_mem_vs_vitdet",
    ):
        assert result["ratios"][name] > 0
    assert {"device", "threads", "torch"} <= set(result["machine"])
    assert result["machine"]["threads"] == 1
    # Load is read before the first model and again at the end (a shared machine's load says what times are worth).
    assert len(result["machine"]["load_average_at_start"]) == 3 and len(result["machine"]["load_average_at_end"]) == 3
    bf16_guard = [a for a in result["accuracy"] if a["mode"] == "bf16"][0]
    assert bf16_guard["passed"] is True
    assert "| ours | fast |" in capsys.readouterr().out


def test_candidate_cap_reaches_both_models() -> None:
    from benchmarks.models import OUR_MODES, VITDET_MODES, build_benchmark_model
    from ropevit_det.modeling.roi_heads import CandidateCappedFastRCNNOutputLayers

    for spec in (OUR_MODES["parity"], VITDET_MODES["fp32"]):
        model = build_benchmark_model(spec, 64, "cpu", 0.0, 0, tiny=True, topk_candidates=300)
        predictor = model.roi_heads.box_predictor
        assert isinstance(predictor, CandidateCappedFastRCNNOutputLayers) and predictor.test_topk_candidates == 300
    # Off by default: ViTDet keeps detectron2's own predictor class.
    default = build_benchmark_model(VITDET_MODES["fp32"], 64, "cpu", 0.0, 0, tiny=True)
    assert type(default.roi_heads.box_predictor).__name__ == "FastRCNNOutputLayers"
