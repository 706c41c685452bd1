"""A small survey for the Camtrap DP tests: the camtrap_mini frames laid out as three deployments, their
MegaDetector-format results (made from the human boxes of annotations.json) and a deployments file."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ropevit_det.camera_trap.inputs.exif import capture_datetime
from tests.camtrap_helpers import MINI_COCO, MINI_IMAGES

HIPPO = "00001_Animalia_Chordata_Mammalia_Artiodactyla_Hippopotamidae_Hippopotamus_amphibius"
# Folder of each frame (by file-name prefix) = one deployment each.
FOLDERS = {"serengeti_": "serengeti", "speciesnet_": "blanks", "pw_": "pw"}
DEPLOYMENT_COLUMNS = [
    "deploymentID",
    "latitude",
    "longitude",
    "deploymentStart",
    "deploymentEnd",
    "timezone",
    "folder",
    "locationName",
    "cameraModel",
]
DEPLOYMENTS = [
    [
        "serengeti-S1-E03",
        "-2.333",
        "34.833",
        "2010-08-01",
        "2010-08-31",
        "Africa/Dar_es_Salaam",
        "serengeti",
        "Serengeti E03",
        "",
    ],
    ["blanks-1", "-41.29", "174.78", "2016-05-01", "2016-10-01", "+12:00", "blanks", "", ""],
    [
        "pw-1",
        "47.6",
        "-122.3",
        "2021-06-01T08:00:00",
        "2021-06-01T18:00:00",
        "America/Los_Angeles",
        "pw",
        "",
        "Reconyx HF2X",
    ],
]


@dataclass
class Survey:
    root: Path
    results: Path
    deployments: Path
    data: dict[str, Any]
    annotations: dict[str, Any]

    def animal_boxes(self) -> dict[str, list[list[float]]]:
        """``{relative path: [[x, y, w, h] pixels, ...]}`` of the human boxes the results were made from."""
        by_id = {im["id"]: im for im in self.annotations["images"]}
        boxes: dict[str, list[list[float]]] = {}
        for ann in self.annotations["annotations"]:
            boxes.setdefault(relative_path(by_id[ann["image_id"]]["file_name"]), []).append(ann["bbox"])
        return boxes


def relative_path(file_name: str) -> str:
    folder = next(f for prefix, f in FOLDERS.items() if file_name.startswith(prefix))
    return f"{folder}/{file_name}"


def write_deployments(path: Path, rows: list[list[str]], columns: list[str] = DEPLOYMENT_COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def make_survey(tmp_path: Path) -> Survey:
    """Image root with serengeti/ (4 frames, EXIF times, two 2-frame bursts), blanks/ (3 empty frames on three
    days) and pw/ (14 frames without EXIF time: the results give them one 2 s apart, as a camera with its clock
    set writes); results with one 0.9 'animal' box per human box, a hippo label on the Serengeti boxes, a 0.05
    box below any threshold on a blank frame, and a 0.8 'person' box on the first pw frame."""
    coco = json.loads(MINI_COCO.read_text(encoding="utf-8"))
    root = tmp_path / "cards"
    entries = []
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    pw_index = 0
    for im in sorted(coco["images"], key=lambda im: im["file_name"]):
        rel = relative_path(im["file_name"])
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(MINI_IMAGES / im["file_name"], root / rel)
        with Image.open(MINI_IMAGES / im["file_name"]) as img:
            when = capture_datetime(img)
        if when is None:
            when = f"2021:06:01 10:00:{2 * pw_index:02d}"
            pw_index += 1
        detections = []
        for ann in by_image.get(im["id"], []):
            x, y, w, h = ann["bbox"]
            det = {
                "category": "1",
                "conf": 0.9,
                "bbox": [
                    round(x / im["width"], 4),
                    round(y / im["height"], 4),
                    round(w / im["width"], 4),
                    round(h / im["height"], 4),
                ],
            }
            if rel.startswith("serengeti/"):
                det["classifications"] = [["0", 0.8]]
            detections.append(det)
        if rel == "blanks/speciesnet_blank.jpg":
            detections.append({"category": "1", "conf": 0.05, "bbox": [0.1, 0.1, 0.2, 0.2]})
        if rel == "pw/pw_102542.jpg":
            detections.append({"category": "2", "conf": 0.8, "bbox": [0.0, 0.5, 0.1, 0.3]})
        entries.append({"file": rel, "datetime": when, "detections": detections})
    data = {
        "info": {
            "format_version": "1.6",
            "detector": "model_final.pth",
            "classifier": "rope_vit inat21",
            "detector_metadata": {"typical_detection_threshold": 0.2},
        },
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "classification_categories": {"0": HIPPO},
        "images": entries,
    }
    results = tmp_path / "results.json"
    results.write_text(json.dumps(data), encoding="utf-8")
    deployments = write_deployments(tmp_path / "deployments.csv", DEPLOYMENTS)
    return Survey(root=root, results=results, deployments=deployments, data=data, annotations=coco)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def rows_with_folder(folders: dict[str, str]) -> list[list[str]]:
    """The deployments rows with the folder of some deployment ids changed."""
    index = DEPLOYMENT_COLUMNS.index("folder")
    rows = [list(r) for r in DEPLOYMENTS]
    for row in rows:
        row[index] = folders.get(row[0], row[index])
    return rows
