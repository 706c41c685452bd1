"""Glance, then look (``infer --glance``): on the demo domain (the briefly trained shapes detector of conftest.py)
frames with shapes are escalated and get exactly the single-pass detections, empty frames (the domain's
background alone) stop after the glance; the batch job writes each image's passes, MegaDetector's validator
accepts the entries, and a resumed run keeps the record of the images done before."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ropevit_det.camera_trap.detection.glance import (
    DEFAULT_ESCALATION_THRESHOLD,
    FULL,
    GLANCE,
    GlanceDetector,
    glance_input,
    passes_of,
)
from ropevit_det.camera_trap.metrics.glance_report import glance_report
from ropevit_det.data.synthetic import empty_frame
from ropevit_det.engine.predictor import Detector
from tests.camtrap_helpers import validate_md
from tests.trained_shapes import MODEL_OVERRIDES, detections_of, load_shapes_model, shapes_inputs

DEMO_GLANCE = 128  # px: the demo frames are 160 (the demo model's 2 blocks miss some shapes at 96 and 112 px)


def _empty_inputs(count: int) -> list[dict]:
    frames = [torch.from_numpy(empty_frame(160, seed=50 + i)).permute(2, 0, 1).contiguous() for i in range(count)]
    return [{"image": f, "height": 160, "width": 160} for f in frames]


@pytest.fixture(scope="module")
def demo(shapes_detector):
    _, model = load_shapes_model(shapes_detector)
    return Detector(model, "cpu"), shapes_inputs(shapes_detector)


def test_glance_input_is_small_and_keeps_the_displayed_size():
    image = torch.randint(0, 255, (3, 120, 160), dtype=torch.uint8)
    small = glance_input({"image": image, "height": 600, "width": 800}, 80)
    assert small["image"].shape == (3, 60, 80) and small["image"].dtype == torch.uint8
    assert (small["height"], small["width"]) == (600, 800)  # boxes come back in the displayed pixels
    assert glance_input({"image": image}, 400)["image"] is image  # never enlarged


def test_same_detections_as_single_pass_on_frames_with_shapes_and_no_full_pass_on_empty_frames(demo):
    detector, shapes = demo
    empty = _empty_inputs(12)
    single = detector(shapes)
    glancing = GlanceDetector(detector, glance_size=DEMO_GLANCE)
    looked = glancing(shapes + empty)
    for reference, candidate in zip(single, looked[: len(shapes)]):
        assert passes_of(candidate) == [GLANCE, FULL]
        assert detections_of(candidate) == detections_of(reference)  # the full pass's own output
    skipped = [c for c in looked[len(shapes) :] if passes_of(c) == [GLANCE]]
    for candidate in skipped:  # what the glance left: nothing at the escalation threshold
        assert not (candidate.scores >= DEFAULT_ESCALATION_THRESHOLD).any()
    # Most empty frames stop at the glance (on 40 such frames, 33 did: benchmarks/commands/benchmark_glance.py)
    assert len(skipped) >= 9, f"only {len(skipped)} of 12 empty frames skipped the full pass"
    assert (glancing.glanced, glancing.escalated) == (len(shapes) + 12, len(shapes) + 12 - len(skipped))
    assert passes_of(single[0]) is None  # single-pass output carries no record


def test_batch_job_records_passes_and_resume_keeps_them(shapes_detector, tmp_path):
    from ropevit_det.camera_trap.detection.batch_job import run_batch_job
    from ropevit_det.camera_trap.detection.job_settings import BatchJobSettings

    folder = tmp_path / "frames"
    folder.mkdir()
    for path in shapes_detector.val_images[:2]:
        (folder / f"shape_{path.name}").write_bytes(path.read_bytes())
    for i in range(2):
        Image.fromarray(empty_frame(160, seed=90 + i)).save(folder / f"empty_{i}.png")
    out = tmp_path / "md.json"
    settings = dict(
        config_file=shapes_detector.config_file,
        weights=str(shapes_detector.weights),
        input=str(folder),
        output=str(out),
        class_names="shape",
        num_workers=0,
        progress=False,
        opts=MODEL_OVERRIDES,
        glance=DEMO_GLANCE,
    )
    run_batch_job(BatchJobSettings(**settings))
    first = {im["file"]: im for im in json.loads(out.read_text())["images"]}
    assert len(first) == 4
    for f, im in first.items():
        assert im["passes"] == (["glance", "full"] if f.startswith("shape_") else im["passes"])
        assert im["passes"] in (["glance"], ["glance", "full"])
    # A resumed run: two more frames arrive; the entries done before keep their record, the new ones get theirs.
    path = shapes_detector.val_images[2]
    (folder / f"shape_{path.name}").write_bytes(path.read_bytes())
    Image.fromarray(empty_frame(160, seed=99)).save(folder / "empty_9.png")
    run_batch_job(BatchJobSettings(**settings, resume=True))
    results = json.loads(out.read_text())
    resumed = {im["file"]: im for im in results["images"]}
    assert len(resumed) == 6
    for f, im in first.items():
        assert resumed[f]["passes"] == im["passes"]
    assert resumed["empty_9.png"]["passes"] in (["glance"], ["glance", "full"])
    assert resumed[f"shape_{path.name}"]["passes"] == ["glance", "full"]
    validation = validate_md(out)  # MegaDetector's own validator accepts the extra key
    assert not validation["errors"], validation["errors"]


def test_glance_report_suggests_the_threshold_that_loses_nothing():
    def results(images):
        return {
            "images": [
                {"file": f, "detections": [{"category": "1", "conf": c, "bbox": [0, 0, 0.1, 0.1]} for c in confs]}
                for f, confs in images.items()
            ]
        }

    full = results({"a": [0.9], "b": [0.5, 0.3], "c": [0.1], "d": []})
    glance = results({"a": [0.4], "b": [0.08], "c": [0.06], "d": [0.02]})
    report = glance_report(full, glance, typical_threshold=0.2, thresholds=(0.02, 0.05, 0.1, 0.5))
    rows = {r.threshold: r for r in report.rows}
    assert rows[0.05].escalation_rate == 0.75 and rows[0.05].detections_lost == 0
    assert rows[0.1].detections_lost == 2 and rows[0.1].recall_lost == pytest.approx(2 / 3)
    assert report.suggested_threshold == 0.05
    escalated = {"images": [{"file": "a", "detections": [], "passes": ["glance", "full"]}]}
    with pytest.raises(ValueError, match="--glance-threshold 2"):
        glance_report(full, escalated, typical_threshold=0.2)


def test_infer_flags_reach_the_settings(tmp_path):
    from ropevit_det.camera_trap.inputs.video import FrameSampling
    from ropevit_det.cli.infer import build_parser, job_settings

    args = build_parser().parse_args(
        [
            "--config",
            "demo/ropevit_shapes_cpu.yaml",
            "--weights",
            "w.pth",
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "o.json"),
            "--glance",
            "448",
            "--glance-threshold",
            "0.1",
        ]
    )
    settings = job_settings(args, None, FrameSampling())
    assert (settings.glance, settings.glance_threshold) == (448, 0.1)
    with pytest.raises(ValueError, match="glance_size"):
        GlanceDetector(lambda x: x, glance_size=8)
    assert np.isfinite(DEFAULT_ESCALATION_THRESHOLD)


def test_eval_camtrap_glance_report_from_two_results_files(tmp_path, capsys):
    from ropevit_det.cli.eval_camtrap import main

    def write(name, images):
        path = tmp_path / name
        path.write_text(
            json.dumps(
                {
                    "info": {"format_version": "1.4", "detector_metadata": {"typical_detection_threshold": 0.2}},
                    "detection_categories": {"1": "animal"},
                    "images": [
                        {"file": f, "detections": [{"category": "1", "conf": c, "bbox": [0, 0, 0.1, 0.1]} for c in cs]}
                        for f, cs in images.items()
                    ],
                }
            )
        )
        return str(path)

    full = write("full.json", {"a.jpg": [0.9], "b.jpg": [0.4], "c.jpg": []})
    glance = write("glance.json", {"a.jpg": [0.3], "b.jpg": [0.04], "c.jpg": []})
    out = tmp_path / "report.json"
    assert main(["--results", full, "--glance-report", glance, "--json", str(out)]) == 0
    assert "Suggested --glance-threshold: 0.03" in capsys.readouterr().out  # 0.05 would lose b.jpg's 0.4
    report = json.loads(out.read_text())
    assert report["suggested_threshold"] == 0.03 and report["detections"] == 2
    with pytest.raises(SystemExit, match="--gt is required"):
        main(["--results", full])
