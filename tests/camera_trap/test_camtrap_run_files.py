"""One odd file never stops or hangs a batch run, and a frame's detections do not depend on its batch (issue 19).

Each case is one entry (or a counted skip) and the run goes on; a ``--resume`` afterwards completes. The cases:
an image so narrow that resizing rounds its short side to 0, a FIFO named ``.jpg``, a folder that cannot be
listed, a read that stalls, a decoding process that dies on one file. Tests run as root here, so a folder that
cannot be listed is made by refusing ``os.scandir`` on it (what a permission error looks like to the code).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from ropevit_det.camera_trap.detection import worker_inputs
from ropevit_det.camera_trap.detection.batch_job import run_batch_job
from ropevit_det.camera_trap.detection.batch_loop import run_inference
from ropevit_det.camera_trap.detection.categories import detection_classes
from ropevit_det.camera_trap.detection.job_settings import BatchJobSettings
from ropevit_det.camera_trap.detection.worker_inputs import (
    DetectorInputDataset,
    make_input_loader,
)
from ropevit_det.camera_trap.inputs.decoding import read_image_rgb
from ropevit_det.camera_trap.inputs.listing import list_inputs, scan_inputs
from ropevit_det.camera_trap.inputs.read_guard import ReadTimeoutError, read_deadline
from ropevit_det.camera_trap.results.md_format import make_info
from ropevit_det.camera_trap.results.writer import ResultsWriter
from ropevit_det.engine.predictor import Detector, InputSpec, load_detector
from tests.camtrap_helpers import save_rgb
from tests.checkpoint_helpers import make_birder_net, save_birder_pt
from tests.conftest import CONFIGS

QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
OVERRIDES = ["MODEL.ROI_HEADS.NUM_CLASSES", "1", "TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.SFP.SQUARE_PAD", "0"]
SPEC = InputSpec(min_size=160, max_size=224)  # the quick config's test sizes: 1 x 4000 px resizes to 0 x 224


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_birder_pt(make_birder_net(), tmp_path_factory.mktemp("weights"))


def _settings(weights: Path, input_dir: Path, output: Path, **kwargs) -> BatchJobSettings:
    base = {
        "config_file": str(QUICK),
        "weights": str(weights),
        "input": str(input_dir),
        "output": str(output),
        "opts": OVERRIDES,
        "class_names": "animal",
        "threshold": 0.0,
        "typical_threshold": 0.0,
        "progress": False,
    }
    return BatchJobSettings(**{**base, **kwargs})


def _entries(output: Path) -> dict[str, dict]:
    return {entry["file"]: entry for entry in json.loads(output.read_text())["images"]}


def _refuse_listing(monkeypatch, folder: Path) -> None:
    """``os.scandir`` on ``folder`` fails as it does for a folder without read permission (root reads any)."""
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(os.fspath(path)).resolve() == folder.resolve():
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_an_image_that_resizes_to_nothing_is_one_failure_entry(tmp_path):
    save_rgb(tmp_path / "narrow.jpg", 4000, 1)
    save_rgb(tmp_path / "wide.jpg", 64, 48)
    dataset = DetectorInputDataset(tmp_path, ["narrow.jpg", "wide.jpg"], SPEC, keep_image=False)
    narrow, wide = make_input_loader(dataset, batch_size=2, num_workers=1)  # in a worker, as in a run
    assert narrow.model_input is None
    assert "cannot prepare the image of 4000x1 pixels for the detector (ValueError" in narrow.failure
    assert wide.failure is None and wide.model_input["image"].shape == (3, 160, 213)


def test_fifos_are_skipped_at_listing_and_never_block_a_read(tmp_path, caplog):
    save_rgb(tmp_path / "a.jpg", 8, 8)
    os.mkfifo(tmp_path / "x.jpg")
    with caplog.at_level(logging.WARNING):
        _, files = list_inputs(tmp_path)
    assert files == ["a.jpg"]
    assert scan_inputs(tmp_path).not_regular == ["x.jpg"]
    assert "skipped 1 files that are not regular files" in caplog.text

    listed = tmp_path / "todo.txt"
    listed.write_text(f"{tmp_path / 'a.jpg'}\n{tmp_path / 'x.jpg'}\n")
    assert list_inputs(listed)[1] == ["a.jpg"]  # a list file naming a FIFO: skipped too

    # A FIFO that appears after the listing: the reader must return, not wait for a writer that never comes.
    result: list = []
    reader = threading.Thread(target=lambda: result.append(read_image_rgb(tmp_path / "x.jpg")), daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # unblock the thread so the test process can end, then fail
        with open(tmp_path / "x.jpg", "wb"):
            pass
        pytest.fail("reading a FIFO named .jpg blocked")
    assert result[0].image is None and "not a regular file (a FIFO)" in result[0].failure


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch, caplog):
    save_rgb(tmp_path / "open/a.jpg", 8, 8)
    save_rgb(tmp_path / "locked/b.jpg", 8, 8)
    _refuse_listing(monkeypatch, tmp_path / "locked")
    with caplog.at_level(logging.WARNING):
        _, files = list_inputs(tmp_path)
    assert files == ["open/a.jpg"]
    assert "1 folders could not be listed" in caplog.text and "locked (Permission denied)" in caplog.text
    _refuse_listing(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError, match="could not be listed"):
        list_inputs(tmp_path)


def test_a_stalled_read_becomes_a_failure_after_its_time_limit(tmp_path, monkeypatch):
    with pytest.raises(ReadTimeoutError), read_deadline(0.2):
        time.sleep(5)
    save_rgb(tmp_path / "a.jpg", 8, 8)
    save_rgb(tmp_path / "slow.jpg", 8, 8)
    real_read = worker_inputs.read_image_rgb

    def read(path, max_pixels):
        if Path(path).name == "slow.jpg":
            time.sleep(30)  # a share that stopped answering
        return real_read(path, max_pixels)

    monkeypatch.setattr(worker_inputs, "read_image_rgb", read)
    dataset = DetectorInputDataset(tmp_path, ["a.jpg", "slow.jpg"], SPEC, keep_image=False, read_timeout=0.5)
    start = time.monotonic()
    items = list(make_input_loader(dataset, batch_size=2, num_workers=0))
    assert time.monotonic() - start < 10
    assert items[0].failure is None and "reading took more than 0.5 s" in items[1].failure


@pytest.fixture(scope="module")
def tiny_detector(weights):
    from ropevit_det.camera_trap.detection.job_settings import build_job_cfg

    cfg = build_job_cfg(_settings(weights, Path("."), Path("r.json"), device="cpu"))
    model, _ = load_detector(cfg)
    return Detector(model, "cpu"), InputSpec.from_cfg(cfg)


def test_a_decoder_that_kills_its_worker_costs_one_entry(tmp_path, monkeypatch, tiny_detector):
    detector, spec = tiny_detector
    names = ["a.jpg", "b.jpg", "crash.jpg", "d.jpg", "e.jpg"]
    for name in names:
        save_rgb(tmp_path / "in" / name, 40, 30)
    real_read = worker_inputs.read_image_rgb

    def read(path, max_pixels):
        if Path(path).name == "crash.jpg":
            os._exit(139)  # as a segfault in a native decoder ends the process: no exception, no message
        return real_read(path, max_pixels)

    monkeypatch.setattr(worker_inputs, "read_image_rgb", read)  # forked workers inherit the patch
    classes = detection_classes(1, ["animal"])
    output = tmp_path / "results.json"
    with ResultsWriter(output, info=make_info("tiny"), detection_categories=classes.categories) as writer:
        summary = run_inference(
            detector,
            spec,
            tmp_path / "in",
            names,
            writer,
            classes,
            threshold=0.0,
            batch_size=2,
            num_workers=2,
            progress=False,
        )
    entries = _entries(output)
    assert sorted(entries) == names and summary.failed_files == ["crash.jpg"]
    assert entries["crash.jpg"]["detections"] is None and "decoding process died" in entries["crash.jpg"]["failure"]
    assert all(entries[n]["detections"] is not None for n in names if n != "crash.jpg")

    # --resume afterwards, with one more image: the failure stays one entry and the run completes.
    save_rgb(tmp_path / "in" / "f.jpg", 40, 30)
    with ResultsWriter(output, info=make_info("tiny"), detection_categories=classes.categories, resume=True) as writer:
        run_inference(
            detector,
            spec,
            tmp_path / "in",
            [*names, "f.jpg"],
            writer,
            classes,
            threshold=0.0,
            batch_size=2,
            num_workers=2,
            progress=False,
        )
    assert sorted(_entries(output)) == [*names, "f.jpg"]


def test_narrow_image_fifo_and_unlistable_folder_then_resume(tmp_path, monkeypatch, caplog, weights):
    """The whole batch job: each odd file is one entry or one counted skip, and --resume completes."""
    card = tmp_path / "card"
    save_rgb(card / "a.jpg", 64, 48)
    save_rgb(card / "narrow.jpg", 4000, 1)  # resized to 224 x 0
    os.mkfifo(card / "x.jpg")
    save_rgb(card / "locked/b.jpg", 64, 48)
    output = tmp_path / "results.json"
    _refuse_listing(monkeypatch, card / "locked")
    with caplog.at_level(logging.WARNING):
        run_batch_job(_settings(weights, card, output, num_workers=1))
    entries = _entries(output)
    assert sorted(entries) == ["a.jpg", "narrow.jpg"]
    assert entries["narrow.jpg"]["detections"] is None
    assert "cannot prepare the image of 4000x1 pixels" in entries["narrow.jpg"]["failure"]
    assert "skipped 1 files that are not regular files" in caplog.text and "locked" in caplog.text

    monkeypatch.undo()  # the folder can be read again: --resume adds its image, keeps the others as they are
    run_batch_job(_settings(weights, card, output, num_workers=1, resume=True))
    resumed = _entries(output)
    assert sorted(resumed) == ["a.jpg", "locked/b.jpg", "narrow.jpg"]
    assert resumed["a.jpg"] == entries["a.jpg"] and resumed["narrow.jpg"] == entries["narrow.jpg"]


def test_detections_do_not_depend_on_the_batch(tmp_path, weights):
    """Frames of mixed sizes give the same detections one at a time and four to a batch."""
    card = tmp_path / "card"
    sizes = [(64, 48), (48, 64), (100, 40), (64, 48), (40, 40), (90, 60), (48, 64), (64, 48)]
    for i, (w, h) in enumerate(sizes):
        save_rgb(card / f"f{i}.jpg", w, h, color=(30 * i % 255, 200 - 20 * i, 90))
    results = {}
    for batch_size in (1, 4):
        output = tmp_path / f"b{batch_size}.json"
        run_batch_job(_settings(weights, card, output, batch_size=batch_size, num_workers=0))
        results[batch_size] = _entries(output)
    assert sorted(results[1]) == [f"f{i}.jpg" for i in range(len(sizes))]
    for name, entry in results[1].items():
        assert entry["detections"], name  # threshold 0: something to compare
        assert results[4][name]["detections"] == entry["detections"], name


def test_batches_stay_full_in_a_folder_of_one_size_and_keep_input_order(tmp_path, tiny_detector):
    """Grouping by size costs nothing where every frame has one size; mixed sizes never share a batch."""
    detector, spec = tiny_detector
    calls: list[list[tuple[int, ...]]] = []

    def recording(inputs):
        calls.append([tuple(i["image"].shape[-2:]) for i in inputs])
        return detector(inputs)

    names = [f"u{i}.jpg" for i in range(8)] + ["v0.jpg", "v1.jpg"]
    for name in names:
        save_rgb(tmp_path / "in" / name, 64 if name[0] == "u" else 48, 48 if name[0] == "u" else 64)
    classes = detection_classes(1, ["animal"])
    output = tmp_path / "results.json"
    with ResultsWriter(output, info=make_info("tiny"), detection_categories=classes.categories) as writer:
        run_inference(
            recording,
            spec,
            tmp_path / "in",
            names,
            writer,
            classes,
            threshold=0.0,
            batch_size=4,
            num_workers=0,
            progress=False,
        )
    assert [len(c) for c in calls] == [4, 4, 2] and all(len(set(c)) == 1 for c in calls)
    assert sorted(_entries(output)) == sorted(names)
