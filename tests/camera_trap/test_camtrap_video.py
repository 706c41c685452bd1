"""Videos and capture times in batch inference: videos made here from the sample frames at a known frame rate
(one cut short, one not a video at all), frames given a known EXIF time; the MegaDetector validator on the output."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from PIL import Image

from ropevit_det.camera_trap.detection.batch_loop import run_inference
from ropevit_det.camera_trap.detection.categories import detection_classes
from ropevit_det.camera_trap.inputs.exif import capture_datetime
from ropevit_det.camera_trap.inputs.video import FrameSampling, VideoReader
from ropevit_det.camera_trap.results.md_format import make_info
from ropevit_det.camera_trap.results.video_entries import INCOMPLETE_FIELD
from ropevit_det.camera_trap.results.writer import ResultsWriter
from ropevit_det.engine.predictor import Detector, InputSpec
from tests.camtrap_helpers import MINI_IMAGES, validate_md
from tests.conftest import CONFIGS, tiny_cfg

QUICK = CONFIGS / "quick_schedules" / "ropevit_mrcnn_instant_test.yaml"
FPS, FRAMES, SIZE = 4, 12, (160, 120)
SHOT_AT = "2024:06:01 12:34:56"
EXIF_IFD, DATETIME_ORIGINAL = 0x8769, 0x9003


def _frames() -> list[np.ndarray]:
    names = sorted(p.name for p in MINI_IMAGES.iterdir())[:FRAMES]
    return [np.asarray(Image.open(MINI_IMAGES / n).convert("RGB").resize(SIZE)) for n in names]


def make_video(path: Path, frames: list[np.ndarray], *, fps: int = FPS, creation_time: str | None = None) -> Path:
    """Encode ``frames`` with FFmpeg's own MPEG-4 encoder; mp4 with its index first, so a cut file still plays."""
    options = {"movflags": "faststart"} if path.suffix.lower() == ".mp4" else {}
    with av.open(str(path), "w", options=options) as container:
        if creation_time:
            container.metadata["creation_time"] = creation_time
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.bit_rate = 2_000_000  # every frame carries real data, so a cut file keeps several of them
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for folder in ("cam1", "cam2", "cam3"):
        (root / folder).mkdir()
    frames = _frames()
    make_video(root / "cam1/clip.mp4", frames, creation_time="2024-06-01T12:34:56.000000Z")
    make_video(root / "cam1/UPPER.AVI", frames[:5])
    whole = make_video(root / "cut_source.mp4", frames).read_bytes()
    (root / "cam2/cut.mp4").write_bytes(whole[: len(whole) * 6 // 10])  # a card pulled mid-write
    (root / "cut_source.mp4").unlink()
    (root / "cam2/not_a_video.mov").write_bytes(b"\x00\x00\x00\x18ftypqt  " + b"\x17" * 300)
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = SHOT_AT
    Image.fromarray(frames[0]).save(root / "cam3/timed.jpg", exif=exif)
    Image.fromarray(frames[1]).save(root / "cam3/untimed.jpg")
    return root


FILES = [
    "cam1/UPPER.AVI",
    "cam1/clip.mp4",
    "cam2/cut.mp4",
    "cam2/not_a_video.mov",
    "cam3/timed.jpg",
    "cam3/untimed.jpg",
]


def _run(card: Path, out: Path, **options) -> dict:
    cfg = tiny_cfg(
        QUICK,
        [
            "MODEL.ROI_HEADS.NUM_CLASSES",
            "2",
            "TEST.DETECTIONS_PER_IMAGE",
            "3",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "0.0",
        ],
    )
    # Random weights: the boxes do not matter here, their bookkeeping does. Seeded, so that two runs of this file
    # (default and --all-frames) see the same model and can be compared detection by detection.
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    classes = detection_classes(2, ["animal", "person"])
    with ResultsWriter(out, info=make_info("tiny"), detection_categories=classes.categories) as writer:
        summary = run_inference(
            Detector(model),
            InputSpec.from_cfg(cfg),
            card,
            FILES,
            writer,
            classes,
            threshold=0.0,
            batch_size=3,
            num_workers=1,
            progress=False,
            **options,
        )
    return {"data": json.loads(out.read_text()), "summary": summary}


@pytest.fixture(scope="module")
def every_third(card, tmp_path_factory) -> dict:
    return _run(card, tmp_path_factory.mktemp("out") / "results.json", sampling=FrameSampling(every_n_frames=3))


def _entries(run: dict) -> dict[str, dict]:
    return {e["file"]: e for e in run["data"]["images"]}


def test_video_entries_follow_the_megadetector_convention(every_third):
    report = validate_md(every_third["data"])
    assert report["errors"] == [] and report["warnings"] == []
    clip = _entries(every_third)["cam1/clip.mp4"]
    assert clip["frame_rate"] == FPS and clip["frames_processed"] == [0, 3, 6, 9]
    # Default: the most confident detection per category over all frames, each with its frame number.
    categories = [d["category"] for d in clip["detections"]]
    assert 1 <= len(categories) <= 2 and len(set(categories)) == len(categories)
    assert all(d["frame_number"] in clip["frames_processed"] for d in clip["detections"])
    upper = _entries(every_third)["cam1/UPPER.AVI"]  # upper-case extension, another container
    assert upper["frame_rate"] == FPS and upper["frames_processed"] == [0, 3]
    assert every_third["summary"].frames == 4 + 2 + len(_entries(every_third)["cam2/cut.mp4"]["frames_processed"])


def test_default_keeps_each_categorys_most_confident_detection_of_all_frames(card, every_third, tmp_path):
    """As MegaDetector's frame_results_to_video_results: per category, the --all-frames run's best detection."""
    everything = _entries(_run(card, tmp_path / "all.json", sampling=FrameSampling(every_n_frames=3), all_frames=True))
    videos = ["cam1/UPPER.AVI", "cam1/clip.mp4", "cam2/cut.mp4"]
    for file in videos:
        default, full = _entries(every_third)[file], everything[file]
        assert default["frames_processed"] == full["frames_processed"]
        assert {d["category"] for d in default["detections"]} == {d["category"] for d in full["detections"]}
        for det in default["detections"]:
            of_category = [d for d in full["detections"] if d["category"] == det["category"]]
            best = max(d["conf"] for d in of_category)
            # Ties (confidences are rounded) go to the earliest frame.
            expected = min((d for d in of_category if d["conf"] == best), key=lambda d: d["frame_number"])
            assert det == expected, f"{file}: {det} is not the best {det['category']} detection {expected}"
    assert sum(len(everything[f]["detections"]) for f in videos) > sum(
        len(_entries(every_third)[f]["detections"]) for f in videos
    )  # the default did drop detections


def test_broken_videos_become_failures_or_partial_entries(every_third):
    entries = _entries(every_third)
    cut = entries["cam2/cut.mp4"]
    assert "failure" not in cut and cut["detections"] is not None
    assert 1 <= len(cut["frames_processed"]) < 4 and "of the 12 frames" in cut[INCOMPLETE_FIELD]
    assert cut["frames_processed"] == [0, 3, 6, 9][: len(cut["frames_processed"])]
    junk = entries["cam2/not_a_video.mov"]
    assert junk["detections"] is None and "cannot open video" in junk["failure"] and junk["frames_processed"] == []
    assert INCOMPLETE_FIELD not in entries["cam1/clip.mp4"]


def test_capture_times_from_exif_and_from_the_container(every_third, card):
    entries = _entries(every_third)
    assert entries["cam3/timed.jpg"]["datetime"] == SHOT_AT  # EXIF DateTimeOriginal, as MD writes it
    assert entries["cam1/clip.mp4"]["datetime"] == SHOT_AT  # the mp4's creation_time
    assert "datetime" not in entries["cam3/untimed.jpg"] and "datetime" not in entries["cam1/UPPER.AVI"]
    with Image.open(card / "cam3/untimed.jpg") as img:
        assert capture_datetime(img) is None


def test_all_frames_and_time_sampling(card, tmp_path):
    run = _run(card, tmp_path / "all.json", sampling=FrameSampling(every_seconds=0.5), all_frames=True)
    clip = _entries(run)["cam1/clip.mp4"]
    assert clip["frames_processed"] == [0, 2, 4, 6, 8, 10]  # one frame every 0.5 s at 4 fps
    # Every sampled frame keeps its 3 detections, best first.
    assert sorted({d["frame_number"] for d in clip["detections"]}) == clip["frames_processed"]
    assert len(clip["detections"]) == 3 * len(clip["frames_processed"])
    confs = [d["conf"] for d in clip["detections"]]
    assert confs == sorted(confs, reverse=True)
    assert validate_md(run["data"])["errors"] == []


def test_reader_counts_frames_and_reports_its_rate(card):
    reader = VideoReader(card / "cam1/clip.mp4", FrameSampling(every_n_frames=5))
    numbers = [n for n, frame in reader.frames()]
    assert numbers == [0, 5, 10] and reader.frames_read == FRAMES and reader.frame_rate == FPS
    assert reader.failure is None and reader.incomplete is None
    with pytest.raises(ValueError, match="not both"):
        FrameSampling(every_n_frames=2, every_seconds=1.0)


def test_command_line_video_flags(card, tmp_path):
    from ropevit_det.cli import infer as cli
    from tests.checkpoint_helpers import make_birder_net, save_birder_pt

    weights = save_birder_pt(make_birder_net(), tmp_path)
    out = tmp_path / "cli.json"
    base = [
        "--config",
        str(QUICK),
        "--weights",
        str(weights),
        "--input",
        str(card / "cam1"),
        "--threshold",
        "0",
        "--class-names",
        "animal",
        "--num-workers",
        "0",
        "--no-progress",
        "--output",
        str(out),
    ]
    overrides = ["MODEL.ROI_HEADS.NUM_CLASSES", "1", "TEST.DETECTIONS_PER_IMAGE", "2"]
    assert cli.main([*base, "--frame-sample", "5", "--all-frames", *overrides]) == 0
    clip = {e["file"]: e for e in json.loads(out.read_text())["images"]}["clip.mp4"]
    assert clip["frames_processed"] == [0, 5, 10] and len(clip["detections"]) == 2 * 3
    with pytest.raises(SystemExit, match="--frame-sample / --time-sample: sample frames by count or by time"):
        cli.main([*base, "--overwrite", "--frame-sample", "5", "--time-sample", "1", *overrides])
