"""``ropevit-det classify``: species added to a MegaDetector-format file that infer did not write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ropevit_det.camera_trap.inputs.decoding import read_image_rgb
from ropevit_det.camera_trap.species.classifier import load_species_classifier
from ropevit_det.cli import classify
from ropevit_det.config import load_config
from tests.camtrap_helpers import MINI_IMAGES, validate_md, write_json
from tests.checkpoint_helpers import CLASS_TO_IDX, make_birder_net, save_birder_pt

QUICK = str(Path(__file__).resolve().parents[2] / "configs/quick_schedules/ropevit_faster_rcnn_instant_test.yaml")
# What MegaDetector v5a writes (format 1.4, its own categories and detector name), by hand: not our writer.
MD_FILE = {
    "info": {
        "format_version": "1.4",
        "detector": "md_v5a.0.0.pt",
        "detection_completion_time": "2024-06-01 10:00:00",
        "detector_metadata": {
            "megadetector_version": "v5a.0.0",
            "typical_detection_threshold": 0.2,
            "conservative_detection_threshold": 0.05,
        },
    },
    "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
    "images": [
        {
            "file": "serengeti_S1_E03_R3_PICT0038.jpeg",
            "max_detection_conf": 0.91,
            "detections": [
                {"category": "1", "conf": 0.91, "bbox": [0.3003, 0.31, 0.3348, 0.2436]},
                {"category": "1", "conf": 0.04, "bbox": [0.01, 0.02, 0.1, 0.1]},
            ],
        },
        {
            "file": "pw_102542.jpg",
            "max_detection_conf": 0.6,
            "detections": [
                {"category": "1", "conf": 0.6, "bbox": [0.4, 0.45, 0.2, 0.15]},
                {"category": "2", "conf": 0.3, "bbox": [0.0, 0.0, 0.5, 0.5], "classifications": [["17", 0.9]]},
            ],
        },
        {"file": "speciesnet_blank.jpg", "max_detection_conf": 0.0, "detections": []},
        {"file": "missing_frame.jpg", "failure": "Failure image access"},
    ],
}


@pytest.fixture(scope="module")
def classifier_weights(tmp_path_factory) -> Path:
    return save_birder_pt(make_birder_net(seed=3), tmp_path_factory.mktemp("classifier"))


def run(tmp_path: Path, weights: Path, *extra: str, output: str = "species.json") -> tuple[int, Path]:
    source = write_json(tmp_path / "md_results.json", MD_FILE)
    out = tmp_path / output
    code = classify.main(
        [
            "--results",
            str(source),
            "--images",
            str(MINI_IMAGES),
            "--output",
            str(out),
            "--config",
            QUICK,
            "--classifier-weights",
            str(weights),
            "--top-k",
            "2",
            *extra,
        ]
    )
    return code, out


def test_classify_adds_species_to_a_megadetector_file(tmp_path, classifier_weights):
    code, out = run(tmp_path, classifier_weights)
    assert code == 0
    data = json.loads(out.read_text())
    assert validate_md(out)["errors"] == []
    assert data["classification_categories"] == {str(i): name for name, i in CLASS_TO_IDX.items()}
    assert data["info"]["classifier"] == classifier_weights.name
    assert data["info"]["detector"] == "md_v5a.0.0.pt"  # the rest of the file is kept
    hippo, below = data["images"][0]["detections"]
    squirrel, person = data["images"][1]["detections"]
    # Above the file's typical threshold (0.2): two classes each, best first; below: none. The stale label of
    # the input (another classifier's id 17) is gone.
    for det in (hippo, squirrel, person):
        assert len(det["classifications"]) == 2
        assert det["classifications"][0][1] >= det["classifications"][1][1]
    assert "classifications" not in below
    assert data["images"][2]["detections"] == [] and data["images"][3]["failure"]
    # The probabilities are the classifier's on the crop of the full image.
    reference = load_species_classifier(load_config(QUICK), str(classifier_weights), top_k=2)
    image = read_image_rgb(MINI_IMAGES / "serengeti_S1_E03_R3_PICT0038.jpeg").image
    h, w = image.shape[:2]
    x, y, bw, bh = MD_FILE["images"][0]["detections"][0]["bbox"]
    expected = reference.classify([reference.preprocess(image, np.array([x * w, y * h, (x + bw) * w, (y + bh) * h]))])
    assert [c for c, _ in hippo["classifications"]] == [c for c, _ in expected[0]]
    torch.testing.assert_close(
        torch.tensor([p for _, p in hippo["classifications"]]),
        torch.tensor([p for _, p in expected[0]]),
        atol=1e-3,
        rtol=0,
    )


def test_species_list_and_threshold(tmp_path, classifier_weights):
    species = tmp_path / "species.txt"
    species.write_text("Panthera leo\nVulpes vulpes\n")
    code, out = run(tmp_path, classifier_weights, "--species-list", str(species), "--classify-threshold", "0.5")
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data["classification_categories"].values()) == {"Panthera leo", "Vulpes vulpes"}
    labelled = [d for e in data["images"] for d in e.get("detections") or () if "classifications" in d]
    assert [d["conf"] for d in labelled] == [0.91, 0.6]


def test_input_is_never_overwritten(tmp_path, classifier_weights):
    before = json.dumps(MD_FILE)
    with pytest.raises(SystemExit, match="never overwritten"):
        run(tmp_path, classifier_weights, output="md_results.json")
    assert json.loads((tmp_path / "md_results.json").read_text()) == json.loads(before)


def test_existing_output_needs_overwrite(tmp_path, classifier_weights):
    (tmp_path / "species.json").write_text("{}")
    with pytest.raises(SystemExit, match="--overwrite"):
        run(tmp_path, classifier_weights)
    assert run(tmp_path, classifier_weights, "--overwrite")[0] == 0


def test_paths_outside_the_image_folder_are_refused(tmp_path, classifier_weights):
    hostile = {**MD_FILE, "images": [{"file": "/".join(["..", "secret.jpg"]), "detections": []}]}
    source = write_json(tmp_path / "hostile.json", hostile)
    with pytest.raises(SystemExit, match="outside"):
        classify.main(
            [
                "--results",
                str(source),
                "--images",
                str(MINI_IMAGES),
                "--output",
                str(tmp_path / "o.json"),
                "--config",
                QUICK,
                "--classifier-weights",
                str(classifier_weights),
            ]
        )
    assert not (tmp_path / "o.json").exists()
