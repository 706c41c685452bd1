"""MegaDetector 1000's models as benchmark peers: each is built from its published definition (ultralytics /
yolov5 packages, random weights), run on a tiny letterboxed frame, and post-processed by the NMS MegaDetector
calls for it, with the candidate cap; ratios against every peer come out of one run. No duration is asserted."""

from __future__ import annotations

import pytest
import torch

try:
    import ultralytics.nn.tasks  # noqa: F401
    import yolov5.models.yolo  # noqa: F401
except ImportError as exc:  # a failure, not a skip: tools/setup_env.sh installs the bench extra
    raise ImportError(
        f"{exc}: pip install --no-deps yolov5==7.0.14 ultralytics && pip install -e '.[bench]' "
        "(or bash tools/setup_env.sh)"
    ) from None

from benchmarks.md1000 import PEERS, build_peer, cap_anchor_free_candidates, peer_frame, peer_postprocess
from benchmarks.runner import BenchmarkSettings, Row, peer_ratios


@pytest.mark.parametrize("name", ["cedar", "larch", "sorrel", "spruce"])
def test_each_peer_builds_runs_and_goes_through_megadetectors_nms(name):
    peer = PEERS[name]
    model = build_peer(name)
    frame = peer_frame(name, image_size=96)  # tiny input; 4:3 letterboxed to a multiple of the stride
    assert frame.shape == (96, 96, 3) and frame.shape[0] % peer.stride == 0
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        prediction = model(x)[0]
    cells = sum((96 // s) ** 2 for s in (8, 16, 32))
    if peer.library == "ultralytics":  # anchor-free: (B, 4 box + 3 classes, anchors)
        assert prediction.shape == (1, 7, cells)
    else:  # YOLOv5: 3 anchors per cell, 5 + 3 classes per row
        assert prediction.shape == (1, 3 * cells, 8)
    detections = peer_postprocess(name, 20)(prediction)
    assert len(detections) == 1 and detections[0].shape[1] == 6
    assert 0 < detections[0].shape[0] <= 20  # only the 20 capped candidates can survive
    assert set(detections[0][:, 5].tolist()) <= {0.0, 1.0, 2.0}


def test_published_sizes():
    assert {n: (p.architecture, p.image_size, p.stride) for n, p in PEERS.items() if n != "mdv5a"} == {
        "cedar": ("YOLOv9c", 640, 32),
        "larch": ("YOLO11L", 640, 32),
        "sorrel": ("YOLO11s", 960, 32),
        "spruce": ("YOLOv5s", 640, 32),
    }
    assert peer_frame("sorrel").shape == (736, 960, 3)  # 720 rows padded to the stride 32


def test_anchor_free_cap_keeps_the_best_anchors_only():
    prediction = torch.rand(2, 7, 300)
    capped = cap_anchor_free_candidates(prediction, 25)
    kept = capped[:, 4:].amax(1) > 0
    assert (kept.sum(1) == 25).all()
    best = prediction[:, 4:].amax(1)
    assert (best[kept].view(2, 25).min(1).values >= best[~kept].view(2, 275).max(1).values).all()
    assert torch.equal(capped[:, :4], prediction[:, :4])  # boxes untouched


def test_ratios_against_every_peer_and_settings():
    rows = [
        Row("cedar", "fp32", "inference", 640, 1, 1.0, None, 100.0, None),
        Row("ours", "fast", "inference", 1024, 1, 4.0, None, None, None),
    ]
    assert peer_ratios(rows, 1024, 1, "cedar", "fp32", 640)["images_per_second_fast_vs_cedar"] == pytest.approx(0.25)
    settings = BenchmarkSettings(peers=("mdv5a", "cedar", "spruce"), topk_candidates=100)
    settings.validate()
    assert [(s.model, s.mode) for s in settings.peer_specs()] == [
        ("mdv5a", "fp32"),
        ("cedar", "fp32"),
        ("spruce", "fp32"),
    ]
    with pytest.raises(ValueError, match="unknown MegaDetector peer"):
        BenchmarkSettings(peers=("redwood",), topk_candidates=100).validate()
    with pytest.raises(ValueError, match="candidate cap"):
        BenchmarkSettings(peers=("cedar",)).validate()


def test_tiny_run_reports_ratios_against_each_peer(tmp_path):
    import json

    from benchmarks.commands import benchmark

    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert (
            benchmark.main(
                [
                    "--tiny",
                    "--sizes",
                    "64",
                    "--tasks",
                    "inference",
                    "--vitdet-modes",
                    "",
                    "--ours-modes",
                    "parity",
                    "--peers",
                    "cedar,spruce",
                    "--topk-candidates",
                    "50",
                    "--warmup",
                    "1",
                    "--repeats",
                    "1",
                    "--no-accuracy",
                    "--threads",
                    "1",
                    "--json",
                    str(out),
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    models = {(r["model"], r["size"]) for r in result["rows"]}
    assert {("cedar", 320), ("spruce", 320), ("ours", 64)} <= models
    assert all(r["gflops"] for r in result["rows"] if r["model"] in ("cedar", "spruce"))  # GFLOP per frame
    for peer in ("cedar", "spruce"):
        assert result["ratios"][f"images_per_second_parity_vs_{peer}"] > 0
