"""tools/infer.py end to end on tests/assets/camtrap_mini, plus the species-classification path against birder.

The command line runs twice (module fixtures): once killed by the test with SIGKILL as soon as its journal
holds a few images, once with --resume. Everything about the output (validator, failures, EXIF, renders, COCO
results, classifications) is checked on those two runs; the rest runs in process.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from birder.data.transforms.classification import inference_preset
from PIL import Image
from pycocotools.coco import COCO

from ropevit_det.camera_trap.detection.categories import detection_classes, parse_class_names
from ropevit_det.camera_trap.detection.render import rendered_path
from ropevit_det.camera_trap.inputs.decoding import read_image_rgb
from ropevit_det.camera_trap.results.journal import existing_journals, journal_path, read_journal
from ropevit_det.camera_trap.species.classifier import classifier_from_detector, load_species_classifier
from ropevit_det.camera_trap.species.crops import classification_transform, square_crop, square_crop_region
from ropevit_det.engine.predictor import load_detector
from tests.camtrap_helpers import MINI_COCO, MINI_IMAGES, save_exif_rotated_jpeg, validate_md
from tests.checkpoint_helpers import CLASS_TO_IDX, RGB_STATS, TINY_SIZE, make_birder_net, save_birder_pt
from tests.conftest import CONFIGS, tiny_cfg
from tests.infer_helpers import kill_once_journaled, run_infer

QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
# One class named "animal" (MD id "1"); 3 detections per image; no 1024 square padding (the quick schedule
# inherits LSJ's SQUARE_PAD, which makes a 2-block ViT see 5,300 tokens per image).
OVERRIDES = ["MODEL.ROI_HEADS.NUM_CLASSES", "1", "TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.SFP.SQUARE_PAD", "0"]
MINI_FILES = sorted(p.name for p in MINI_IMAGES.iterdir())
MADE_IMAGES = ["made/cmyk.jpg", "made/corrupt.jpg", "made/rotated.jpg"]
ALL_IMAGES = sorted(MINI_FILES + MADE_IMAGES)
KILL_AFTER, CHECKPOINT_EVERY = 3, 2


@pytest.fixture(scope="module")
def birder_weights(tmp_path_factory) -> Path:
    """birder's tiny rope_vit_reg4_b14 (3 classes, random weights), saved by birder's own code."""
    return save_birder_pt(make_birder_net(), tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory) -> Path:
    """The 21 sample frames (symlinked, never copied) plus files made here: a corrupt JPEG, a CMYK JPEG, an
    EXIF-rotated JPEG, and non-image / hidden files that must be skipped."""
    root = tmp_path_factory.mktemp("card")
    for name in MINI_FILES:
        (root / name).symlink_to(MINI_IMAGES / name)
    made = root / "made"
    made.mkdir()
    (made / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 20)
    Image.new("CMYK", (96, 64), (0, 255, 255, 0)).save(made / "cmyk.jpg", quality=95)
    save_exif_rotated_jpeg(made / "rotated.jpg", stored_w=120, stored_h=60, orientation=6)
    (made / "notes.txt").write_text("camera 3 battery low")
    (made / "readme.md").write_text("not an image")
    (made / ".DS_Store").write_bytes(b"\x00\x01")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory, birder_weights, input_dir) -> dict:
    out = tmp_path_factory.mktemp("infer")
    paths = {"results": out / "results.json", "render": out / "render", "coco": out / "coco_results.json"}
    common = [
        "--config",
        str(QUICK),
        "--weights",
        str(birder_weights),
        "--input",
        str(input_dir),
        "--output",
        str(paths["results"]),
        "--threshold",
        "0",
        "--typical-threshold",
        "0",
        "--class-names",
        "animal",
        "--classify",
        "--top-k",
        "2",
        "--render",
        str(paths["render"]),
        "--batch-size",
        "2",
        "--checkpoint-every",
        str(CHECKPOINT_EVERY),
    ]
    # No decoding worker in the killed run: an orphaned worker would hold the output pipes open for a while.
    killed = kill_once_journaled(
        [*common, "--num-workers", "0", *OVERRIDES], paths["results"], KILL_AFTER, out / "killed.log"
    )
    partial = {
        "results_file_exists": paths["results"].exists(),
        "journal": read_journal(journal_path(paths["results"])),
    }
    resumed = run_infer(
        *common,
        "--num-workers",
        "1",
        "--resume",
        "--bf16",
        "--coco-results",
        str(paths["coco"]),
        "--coco-gt",
        str(MINI_COCO),
        *OVERRIDES,
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    return {
        "killed": killed,
        "partial": partial,
        "resumed": resumed,
        "final": json.loads(paths["results"].read_text()),
        **paths,
    }


def _by_file(results: dict) -> dict[str, dict]:
    return {entry["file"]: entry for entry in results["images"]}


def test_killed_run_leaves_its_journal(runs):
    assert runs["killed"] == -signal.SIGKILL  # really killed, no clean exit
    partial = runs["partial"]
    # The results file is written once, at the end: a killed run leaves none, only its journal.
    assert not partial["results_file_exists"]
    journal = partial["journal"]
    assert KILL_AFTER <= len(journal.entries) < len(ALL_IMAGES)  # killed part-way
    assert journal.header["detection_categories"] == {"1": "animal"}
    files = [e["file"] for e in journal.entries]
    assert files == sorted(set(files)) and set(files) <= set(ALL_IMAGES)  # input order, each once


def test_resume_finishes_with_every_image_exactly_once(runs):
    final, log = runs["final"], runs["resumed"].stderr
    files = [entry["file"] for entry in final["images"]]
    assert files == ALL_IMAGES  # sorted, each once; non-image and hidden files absent
    done_before = len(runs["partial"]["journal"].entries)
    assert f"{done_before} of 24 images already in" in log and "skipped 2 non-image files" in log
    assert {e["file"] for e in runs["partial"]["journal"].entries} <= set(files)
    assert "detection_completion_time" in final["info"]
    assert "img/s" in log or "s/img" in log  # the progress bar reports a rate
    assert existing_journals(runs["results"]) == []  # everything is in the results file: journals removed


def test_output_passes_the_megadetector_validator(runs):
    report = validate_md(runs["results"])
    assert report["errors"] == [] and report["warnings"] == []
    final = runs["final"]
    assert final["detection_categories"] == {"1": "animal"}
    assert final["info"]["format_version"] == "1.6"
    assert final["info"]["detector_metadata"]["typical_detection_threshold"] == 0.0


def test_bad_and_unusual_files(runs):
    entries = _by_file(runs["final"])
    corrupt = entries["made/corrupt.jpg"]
    assert corrupt["detections"] is None and "cannot" in corrupt["failure"]
    for name in ("made/cmyk.jpg", "made/rotated.jpg", *MINI_FILES):
        assert "failure" not in entries[name] and len(entries[name]["detections"]) == 3, name
        for det in entries[name]["detections"]:
            x, y, w, h = det["bbox"]
            assert 0 <= x <= x + w <= 1 and 0 <= y <= y + h <= 1 and det["category"] == "1"


def test_renders_show_images_as_displayed(runs):
    render = runs["render"]
    rendered = sorted(str(p.relative_to(render)) for p in render.rglob("*.jp*g"))
    assert rendered == sorted(rendered_path(f) for f in ALL_IMAGES if f != "made/corrupt.jpg")
    with Image.open(render / "made/rotated.jpg") as img:
        assert img.size == (60, 120)  # stored 120 x 60, EXIF "rotate 90": rendered portrait
    with Image.open(render / MINI_FILES[0]) as img, Image.open(MINI_IMAGES / MINI_FILES[0]) as original:
        assert img.size == original.size
        # Boxes were drawn: the render differs from the original frame.
        assert np.abs(np.asarray(img, dtype=np.int16) - np.asarray(original, dtype=np.int16)).max() > 100


def test_classifications_use_the_checkpoint_classes(runs, birder_weights):
    final = runs["final"]
    assert final["classification_categories"] == {str(i): name for name, i in CLASS_TO_IDX.items()}
    assert final["info"]["classifier"] == birder_weights.name  # no --classifier-weights: the --weights file
    for entry in final["images"]:
        for det in entry["detections"] or ():
            classes = det["classifications"]
            assert len(classes) == 2 and classes[0][1] >= classes[1][1]
            assert {c for c, _ in classes} <= set(final["classification_categories"])


def test_coco_results_are_in_ground_truth_ids_and_pixels(runs):
    results = json.loads(runs["coco"].read_text())
    gt = COCO(str(MINI_COCO))
    loaded = gt.loadRes(str(runs["coco"]))  # pycocotools accepts the file (ids exist in the ground truth)
    assert len(loaded.getAnnIds()) == len(results) == 21 * 3  # made files are not in the ground truth
    entries = _by_file(runs["final"])
    for image_id in {r["image_id"] for r in results}:
        gt_image = gt.imgs[image_id]
        W, H = gt_image["width"], gt_image["height"]
        expected = [
            [x * W, y * H, w * W, h * H]
            for x, y, w, h in (d["bbox"] for d in entries[gt_image["file_name"]]["detections"])
        ]
        mine = [r for r in results if r["image_id"] == image_id]
        assert [r["category_id"] for r in mine] == [1, 1, 1]
        np.testing.assert_allclose([r["bbox"] for r in mine], expected, atol=0.01)


# ------------------------------------------------------------------------------------------ in process
def test_square_crop_pads_outside_the_image_with_the_fill_colour():
    image = np.arange(80 * 100 * 3, dtype=np.uint32).reshape(80, 100, 3).astype(np.uint8)
    # Box 20 x 40 centred at (20, 40): side 40 * 1.2 = 48, so the square is x -4..44, y 16..64.
    assert square_crop_region([10, 20, 30, 60], margin=0.1) == (-4, 16, 48)
    crop = np.asarray(square_crop(image, [10, 20, 30, 60], margin=0.1, fill=(1, 2, 3)))
    assert crop.shape == (48, 48, 3)
    assert (crop[:, :4] == (1, 2, 3)).all()  # 4 columns left of the image
    np.testing.assert_array_equal(crop[:, 4:], image[16:64, 0:44])


def test_crop_preprocessing_matches_birder(birder_weights):
    image = read_image_rgb(MINI_IMAGES / MINI_FILES[0]).image
    crop = square_crop(image, [100, 150, 300, 420])
    ours = classification_transform(TINY_SIZE, RGB_STATS)(crop)
    theirs = inference_preset((TINY_SIZE, TINY_SIZE), RGB_STATS, center_crop=1.0)(crop)
    assert ours.shape == (3, TINY_SIZE, TINY_SIZE)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_classifier_logits_match_birder_end_to_end(birder_weights):
    """Crop -> our preprocessing -> our classifier loaded from the birder file == birder's net on that tensor."""
    cfg = tiny_cfg(QUICK)
    classifier = load_species_classifier(cfg, str(birder_weights))
    reference = make_birder_net()  # same seed: the weights saved in birder_weights
    image = read_image_rgb(MINI_IMAGES / MINI_FILES[3]).image
    boxes = ([50, 60, 250, 400], [400, 500, 630, 635])  # the second one's square runs past the image corner
    crops = torch.stack([classifier.preprocess(image, box) for box in boxes])
    birder_preset = inference_preset((TINY_SIZE, TINY_SIZE), RGB_STATS, center_crop=1.0)
    birder_inputs = torch.stack([birder_preset(square_crop(image, box, fill=classifier.fill)) for box in boxes])
    torch.testing.assert_close(crops, birder_inputs, rtol=0, atol=1e-6)  # the checkpoint's rgb_stats, not cfg's
    with torch.no_grad():
        expected = reference(birder_inputs)
    got = classifier.logits(crops)
    assert expected.shape == (2, len(CLASS_TO_IDX)) and expected.abs().max() > 1e-3
    assert (got - expected).abs().max().item() < 1e-4
    assert classifier.categories == {"0": "Panthera leo", "1": "Vulpes vulpes", "2": "Corvus corax"}
    top = classifier.classify(list(crops))
    assert [c for c, _ in top[0]] == [str(i) for i in expected[0].softmax(0).argsort(descending=True).tolist()]


def test_detector_vit_with_classifier_gives_the_same_labels(birder_weights):
    """NUM_CLASSES > 0: the detector's own ViT (loaded from the birder file) classifies like the standalone one."""
    cfg = tiny_cfg(QUICK, ["MODEL.ROPE_VIT.NUM_CLASSES", "3", "MODEL.WEIGHTS", str(birder_weights)])
    model, meta = load_detector(cfg)
    shared = classifier_from_detector(model.backbone.net.vit, meta, cfg, str(birder_weights))
    standalone = load_species_classifier(cfg, str(birder_weights))
    x = torch.randn(2, 3, TINY_SIZE, TINY_SIZE)
    torch.testing.assert_close(shared.logits(x), standalone.logits(x), rtol=0, atol=1e-6)
    assert shared.categories == standalone.categories


def test_detector_without_classifier_is_refused(tmp_path, birder_weights):
    cfg = tiny_cfg(QUICK, ["MODEL.WEIGHTS", str(birder_weights)])
    model, _ = load_detector(cfg)
    d2_file = tmp_path / "detector.pth"
    torch.save({"model": model.state_dict()}, d2_file)  # a detectron2 snapshot: no classifier inside
    with pytest.raises(ValueError, match="has no classifier"):
        load_species_classifier(cfg, str(d2_file))


def test_cli_errors_name_the_problem(tmp_path, birder_weights, input_dir):
    from ropevit_det.cli import infer as cli

    base = ["--config", str(QUICK), "--weights", str(birder_weights), *OVERRIDES]
    with pytest.raises(SystemExit, match="neither a folder"):
        cli.main(["--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "r.json"), *base])
    existing = tmp_path / "existing.json"
    existing.write_text("{}")
    with pytest.raises(SystemExit, match="pass --resume"):
        cli.main(["--input", str(input_dir), "--output", str(existing), *base])
    with pytest.raises(SystemExit, match="1 names but the model has 2"):
        cli.main(
            [
                "--input",
                str(input_dir),
                "--output",
                str(tmp_path / "r.json"),
                "--class-names",
                "animal",
                *base,
                "MODEL.ROI_HEADS.NUM_CLASSES",
                "2",
            ]
        )


def test_batch_job_errors_name_the_setting(tmp_path, birder_weights, input_dir):
    from ropevit_det.camera_trap.detection.batch_job import run_batch_job
    from ropevit_det.camera_trap.detection.job_settings import BatchJobError, BatchJobSettings

    base = dict(config_file=str(QUICK), weights=str(birder_weights), num_workers=0, progress=False)
    with pytest.raises(BatchJobError, match="neither a folder") as error:
        run_batch_job(
            BatchJobSettings(**base, input=str(tmp_path / "nowhere"), output=str(tmp_path / "r.json"), opts=OVERRIDES)
        )
    assert error.value.argument == "input"
    with pytest.raises(BatchJobError, match="1 names but the model has 2") as error:
        run_batch_job(
            BatchJobSettings(
                **base,
                input=str(input_dir),
                output=str(tmp_path / "r.json"),
                class_names="animal",
                opts=[*OVERRIDES, "MODEL.ROI_HEADS.NUM_CLASSES", "2"],
            )
        )
    assert error.value.argument == "class_names"


def test_detection_category_ids(tmp_path):
    md = detection_classes(3, ["Person", "animal", "vehicle"])
    assert md.categories == {"2": "person", "1": "animal", "3": "vehicle"}  # MD ids whatever the order
    assert md.ids == ("2", "1", "3")
    species = detection_classes(2, ["zebra", "lion"])
    assert species.categories == {"1": "zebra", "2": "lion"}
    coco = detection_classes(80, None, ["unregistered_dataset", "coco_2017_val"])
    assert coco.names[:2] == ("person", "bicycle") and coco.ids[0] == "1"
    assert detection_classes(2).names == ("class_0", "class_1")
    trained = {"dataset_info": {"thing_classes": ["vehicle", "animal"]}}  # stored by tools/train_net.py
    assert detection_classes(2, None, (), checkpoint_meta=trained).categories == {"3": "vehicle", "1": "animal"}
    assert detection_classes(2, ["x", "y"], (), checkpoint_meta=trained).names == ("x", "y")  # the user wins
    with pytest.raises(ValueError, match="2 names but the model has 3"):
        detection_classes(3, ["a", "b"])
    coco_file = tmp_path / "gt.json"
    coco_file.write_text(json.dumps({"images": [], "categories": [{"id": 7, "name": "b"}, {"id": 2, "name": "a"}]}))
    assert parse_class_names(str(coco_file)) == ["a", "b"]
    assert parse_class_names("animal, person") == ["animal", "person"]
    with pytest.raises(ValueError, match="empty name"):
        parse_class_names("animal,,person")
