"""``infer --tiles``: sliced inference (SAHI) finds small objects that plain inference at the same test size misses,
with boxes in full-image coordinates, through two processes and through a killed-then-resumed run; the results
pass MegaDetector's validator.

The model is the tests' trained shapes detector (test size 160 px, shapes of 20-72 px). The frames are 480 x 360
with shapes 30-40 px across: shrunk to 160 px for plain inference they are 7-13 px and lost; 160 px tiles see
them at the size the model learnt.
"""

from __future__ import annotations

import json
import signal
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ropevit_det.camera_trap.detection.tiling import (
    TiledDetector,
    TiledInputSpec,
    TilingSettings,
)
from ropevit_det.camera_trap.results.journal import existing_journals
from ropevit_det.cli import infer as cli
from ropevit_det.data.synthetic_frames import render_frame
from ropevit_det.engine.predictor import InputSpec
from tests.camtrap_helpers import validate_md
from tests.infer_helpers import kill_once_journaled, run_infer
from tests.trained_shapes import MODEL_OVERRIDES

HEIGHT, WIDTH = 360, 480
TILE_FLAGS = ["--tiles", "--tile-size", "160", "--tile-overlap", "0.25"]  # 12 tiles a frame


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shapes_detector) -> dict:
    root = tmp_path_factory.mktemp("tiles")
    card = root / "card"
    card.mkdir()
    truth = {}
    rng = np.random.default_rng(3)
    for index in range(3):
        pixels, objects = render_frame(rng, HEIGHT, WIDTH, [30, 34, 37, 40])
        name = f"frame_{index}.png"
        Image.fromarray(pixels).save(card / name)
        truth[name] = [o.box for o in objects]
    common = [
        "--config",
        shapes_detector.config_file,
        "--weights",
        str(shapes_detector.weights),
        "--input",
        str(card),
        "--class-names",
        "shape",
        "--threshold",
        "0.05",
        "--batch-size",
        "1",
        "--num-workers",
        "0",
        "--no-progress",
    ]
    return {"root": root, "truth": truth, "common": common}


def _found(results: dict, truth: dict, min_conf: float = 0.3, min_iou: float = 0.3) -> tuple[int, int]:
    """(objects matched by a detection of at least ``min_conf``, objects): boxes compared in full-image pixels.

    IoU 0.3, not COCO's 0.5: the briefly trained model's boxes are loose (often a few pixels too large on
    each side of a 30 px shape), and what is tested is where they are, not how tight."""
    found = total = 0
    for entry in results["images"]:
        boxes = [
            [x * WIDTH, y * HEIGHT, (x + w) * WIDTH, (y + h) * HEIGHT]
            for x, y, w, h in (d["bbox"] for d in entry["detections"] if d["conf"] >= min_conf)
        ]
        for gt in truth[entry["file"]]:
            total += 1
            found += any(_iou(gt, box) >= min_iou for box in boxes)
    return found, total


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _infer_here(setup: dict, name: str, *extra: str) -> dict:
    out = setup["root"] / f"{name}.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the spawned ranks run: the same kernels, the same rounding
    try:
        assert cli.main([*setup["common"], "--output", str(out), *extra, *MODEL_OVERRIDES]) == 0
    finally:
        torch.set_num_threads(threads)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def tiled(setup) -> dict:
    return _infer_here(setup, "tiled", *TILE_FLAGS)


def test_tiles_find_small_objects_that_plain_inference_misses_in_two_processes(setup, tiled):
    plain = _infer_here(setup, "plain")
    out = setup["root"] / "tiled_two.json"
    proc = run_infer(*setup["common"], "--output", str(out), *TILE_FLAGS, "--num-gpus", "2", *MODEL_OVERRIDES)
    assert proc.returncode == 0, proc.stderr[-4000:]
    two = json.loads(out.read_text())
    found_plain, total = _found(plain, setup["truth"])
    found_tiled, _ = _found(two, setup["truth"])
    assert total >= 10
    assert found_plain <= total // 4, (found_plain, total)
    assert found_tiled >= 0.8 * total, (found_tiled, total)
    # Two processes give the one-process tiled result, entry for entry.
    assert two["images"] == tiled["images"]
    assert two["info"]["detector_metadata"]["tiles"] == {
        "tile_size": 160,
        "overlap": 0.25,
        "full_frame": False,
        "merge": "nms",
    }
    assert validate_md(two)["errors"] == []
    # One merged box per object: no duplicates from the overlapping tiles (at the typical threshold).
    for entry in two["images"]:
        confident = [d for d in entry["detections"] if d["conf"] >= 0.3]
        assert len(confident) <= len(setup["truth"][entry["file"]]) + 1, entry


def test_killed_tiled_run_resumes_to_the_same_result(setup, tiled):
    out = setup["root"] / "killed.json"
    args = [*setup["common"], "--output", str(out), *TILE_FLAGS, "--checkpoint-every", "1", *MODEL_OVERRIDES]
    status = kill_once_journaled(args, out, 1, setup["root"] / "killed.log")
    assert status == -signal.SIGKILL
    assert not out.exists() and existing_journals(out)
    proc = run_infer(*setup["common"], "--output", str(out), *TILE_FLAGS, "--resume", *MODEL_OVERRIDES)
    assert proc.returncode == 0, proc.stderr[-4000:]
    resumed = json.loads(out.read_text())
    assert resumed["images"] == tiled["images"]
    assert validate_md(resumed)["errors"] == []


def test_tiles_plus_full_frame_map_boxes_from_a_reduced_decode_to_displayed_pixels():
    """Tiles cut from a decode at half the displayed size: their boxes come back in displayed pixels, shifted by
    each tile's offset; a box seen by two tiles and the full frame is merged into one."""
    seen = []

    def detector(inputs):  # one box at the same place of the image, whatever tile or frame it is seen in
        out = []
        for inp in inputs:
            seen.append((inp["height"], inp["width"]))
            from detectron2.structures import Boxes, Instances

            instances = Instances((inp["height"], inp["width"]))
            if inp["height"] == 100:  # a tile (decoded pixels): the object at decoded (110..130, 20..40)
                x0 = 110 - inp["offset_x"]
                boxes = [[x0, 20, x0 + 20, 40]] if 0 <= x0 and x0 + 20 <= 100 else []
            else:  # the full frame, in displayed pixels (twice the decoded size), more confident
                boxes = [[221, 41, 259, 79]]
            instances.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
            instances.scores = torch.full((len(boxes),), 0.9 if inp["height"] == 100 else 0.95)
            instances.pred_classes = torch.zeros(len(boxes), dtype=torch.int64)
            out.append(instances)
        return out

    class OffsetSpec(InputSpec):  # the tile's offset, for the fake detector above
        def __call__(self, image_rgb, original_hw):
            data = super().__call__(image_rgb, original_hw)
            data["offset_x"] = int(image_rgb[0, 0, 0]) if original_hw == (100, 100) else 0
            return data

    decoded = np.zeros((100, 250, 3), dtype=np.uint8)
    decoded[0, :, 0] = np.arange(250).clip(0, 255)  # each tile's first pixel says where it starts
    spec = TiledInputSpec(OffsetSpec(0, 0), TilingSettings(tile_size=100, overlap=0.5, full_frame=True))
    prepared = spec(decoded, (200, 500))  # displayed at twice the decoded size
    assert prepared["offsets"] == [(0, 0), (50, 0), (100, 0), (150, 0)]
    union = TiledDetector(detector, batch_size=3, merge="greedy_nmm")([prepared])[0]
    assert len(seen) == 5 and union.image_size == (200, 500)
    assert len(union) == 1  # two tiles and the full frame, merged into their union
    assert union.pred_boxes.tensor[0].tolist() == pytest.approx([220, 40, 260, 80])
    best = TiledDetector(detector, batch_size=3)([prepared])[0]  # nms: the most confident box is kept
    assert len(best) == 1 and best.pred_boxes.tensor[0].tolist() == pytest.approx([221, 41, 259, 79])
    assert best.scores.tolist() == pytest.approx([0.95])


def _write_video(path, frames: list[np.ndarray], fps: int = 2) -> None:
    """MPEG-4 at the frames' own size (FFmpeg's encoder, through PyAV)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.bit_rate = 4_000_000
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_video_frames_are_tiled_too(setup):
    names = sorted(setup["truth"])[:2]
    folder = setup["root"] / "videos"
    folder.mkdir()
    frames = [np.asarray(Image.open(setup["root"] / "card" / name).convert("RGB")) for name in names]
    _write_video(folder / "clip.mp4", frames)
    out = setup["root"] / "video.json"
    common = [a if a != str(setup["root"] / "card") else str(folder) for a in setup["common"]]
    assert cli.main([*common, "--output", str(out), *TILE_FLAGS, "--all-frames", *MODEL_OVERRIDES]) == 0
    results = json.loads(out.read_text())
    assert validate_md(results)["errors"] == []
    (entry,) = results["images"]
    assert entry["frames_processed"] == [0, 1]
    by_frame = {
        "images": [
            {"file": name, "detections": [d for d in entry["detections"] if d["frame_number"] == i]}
            for i, name in enumerate(names)
        ]
    }
    found, total = _found(by_frame, setup["truth"])
    assert found >= 0.7 * total, (found, total)  # MPEG-4 blurs the shapes a little


def test_missing_sahi_names_the_extra(monkeypatch):
    from ropevit_det.camera_trap.detection.tiling import require_sahi

    for name in ("sahi", "sahi.slicing", "sahi.postprocess", "sahi.postprocess.combine"):
        monkeypatch.setitem(sys.modules, name, None)  # import then raises ImportError, as when not installed
    with pytest.raises(ImportError, match=r"pip install -e '\.\[tiles\]'"):
        require_sahi()
    with pytest.raises(ImportError, match="tiles"):
        TiledDetector(lambda inputs: [], batch_size=1)


def test_bad_tile_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="overlap"):
        TilingSettings(overlap=1.0)
    with pytest.raises(ValueError, match="too small"):
        TilingSettings(tile_size=8)
    with pytest.raises(ValueError, match="merge"):
        TilingSettings(merge="union")
    with pytest.raises(SystemExit):
        cli.main(["--config", "x.yaml", "--weights", "w", "--input", "i", "--output", "o", "--tile-overlap", "1.5"])
