"""Camtrap DP 1.x -> COCO Camera Traps: our own export round-trips, and TDWG's example imports every box whose
medium is on disk and reports the others."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from ropevit_det.camera_trap.camtrapdp.export import ExportOptions, export_package
from ropevit_det.camera_trap.camtrapdp.import_coco import PackageError, package_to_cct
from ropevit_det.camera_trap.camtrapdp.validate import validate_package
from ropevit_det.camera_trap.data.cct import load_cct_dataset
from ropevit_det.cli import camtrapdp as cli
from tests.camtrapdp_helpers import make_survey

TDWG_EXAMPLE = Path(__file__).resolve().parents[1] / "assets" / "camtrap_dp_example"
# The 10 media files TDWG ships in example/media (2048x1440 JPEGs); the other 413 media are Agouti URLs.
TDWG_LOCAL_MEDIA = [
    f"2021053108{t}-RCNX00{n}.JPG"
    for t, n in [
        ("2538", 31),
        ("2538", 32),
        ("2539", 33),
        ("2539", 34),
        ("2539", 35),
        ("2540", 36),
        ("2540", 37),
        ("2540", 38),
        ("2540", 39),
        ("2541", 40),
    ]
]


@pytest.mark.parametrize("copy_media", [False, True], ids=["paths-under-image-root", "copy-media"])
def test_export_then_import_gives_back_every_medium_and_every_animal_box(tmp_path: Path, copy_media: bool) -> None:
    survey = make_survey(tmp_path)
    package = tmp_path / "package"
    export_package(
        results=survey.results,
        deployments=survey.deployments,
        images=survey.root,
        output=package,
        options=ExportOptions(copy_media=copy_media),
    )
    data, report = package_to_cct(package, package if copy_media else survey.root)
    prefix = "media/" if copy_media else ""

    assert sorted(im["file_name"] for im in data["images"]) == sorted(prefix + e["file"] for e in survey.data["images"])
    assert not report.missing_media and report.images == 21
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_image = {im["id"]: im for im in data["images"]}
    got: dict[str, list[list[float]]] = {}
    for ann in data["annotations"]:
        if names[ann["category_id"]] in ("animal", "Hippopotamus amphibius"):
            got.setdefault(by_image[ann["image_id"]]["file_name"].removeprefix(prefix), []).append(ann["bbox"])
    expected = survey.animal_boxes()
    assert sorted(got) == sorted(expected) and sum(map(len, got.values())) == 18
    for file, boxes in expected.items():
        for want, have in zip(sorted(boxes), sorted(got[file])):
            # Boxes went through 4-decimal normalised coordinates: within a pixel of the human box.
            assert have == pytest.approx(want, abs=1.0), file
    pict = next(im for im in data["images"] if im["file_name"].endswith("PICT0038.jpeg"))
    assert (pict["width"], pict["height"], pict["location"]) == (2048, 1536, "serengeti-S1-E03")
    assert pict["seq_id"] == "serengeti-S1-E03_e1"
    assert sum(names[a["category_id"]] == "empty" for a in data["annotations"]) == 3


def test_imported_file_loads_as_a_training_set(tmp_path: Path) -> None:
    survey = make_survey(tmp_path)
    export_package(
        results=survey.results, deployments=survey.deployments, images=survey.root, output=tmp_path / "package"
    )
    train = tmp_path / "train.json"
    assert (
        cli.main(
            ["import", "--package", str(tmp_path / "package"), "--images", str(survey.root), "--output", str(train)]
        )
        == 0
    )
    loaded = load_cct_dataset(train, survey.root)
    assert len(loaded.dicts) == 21
    assert sum(len(d["annotations"]) for d in loaded.dicts) == 19  # 18 animals + 1 person; blanks are negatives


def test_tdwg_example_imports_the_boxes_of_the_media_on_disk_and_reports_the_others(tmp_path: Path, capsys) -> None:
    assert validate_package(TDWG_EXAMPLE).valid  # TDWG's own example passes our offline validation
    media_dir = tmp_path / "media"
    media_dir.mkdir()
    for name in TDWG_LOCAL_MEDIA:  # stand-ins of the shipped files, same names and size
        Image.new("RGB", (2048, 1440), (40, 40, 40)).save(media_dir / name)
    with open(TDWG_EXAMPLE / "media.csv", newline="", encoding="utf-8") as f:
        media = {r["mediaID"]: r for r in csv.DictReader(f)}
    with open(TDWG_EXAMPLE / "observations.csv", newline="", encoding="utf-8") as f:
        boxed = [r for r in csv.DictReader(f) if r["bboxX"]]
    local_ids = {mid for mid, r in media.items() if r["fileName"] in TDWG_LOCAL_MEDIA}
    expected = [r for r in boxed if r["mediaID"] in local_ids]
    assert len(local_ids) == 10 and len(expected) == 10 and len(boxed) == 20

    output = tmp_path / "train.json"
    assert (
        cli.main(["import", "--package", str(TDWG_EXAMPLE), "--images", str(media_dir), "--output", str(output)]) == 0
    )
    out = capsys.readouterr().out
    data = json.loads(output.read_text(encoding="utf-8"))
    assert len(data["images"]) == 10 and {im["file_name"] for im in data["images"]} == set(TDWG_LOCAL_MEDIA)
    boxes = {a["id"]: a for a in data["annotations"] if "bbox" in a}
    assert set(boxes) == {r["observationID"] for r in expected}
    for r in expected:
        x, y, w, h = boxes[r["observationID"]]["bbox"]
        assert (x, y, w, h) == pytest.approx(
            [
                float(r["bboxX"]) * 2048,
                float(r["bboxY"]) * 1440,
                float(r["bboxWidth"]) * 2048,
                float(r["bboxHeight"]) * 1440,
            ]
        )
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert {names[a["category_id"]] for a in boxes.values()} == {r["scientificName"] for r in expected}
    assert {im["location"] for im in data["images"]} == {media[m]["deploymentID"] for m in local_ids}
    assert all(im.get("seq_id") for im in data["images"])
    # The 413 URL media, 10 of them with boxes, are reported.
    assert "413 media not found" in out and "with 10 boxes" in out


def test_pre_1_0_package_is_refused(tmp_path: Path) -> None:
    (tmp_path / "datapackage.json").write_text(
        json.dumps(
            {
                "profile": "https://raw.githubusercontent.com/tdwg/camtrap-dp/0.1.6/camtrap-dp-profile.json",
                "resources": [
                    {"name": n, "path": f"{n}.csv"} for n in ("deployments", "media", "observations", "events")
                ],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(PackageError, match="pre-1.0"):
        package_to_cct(tmp_path, tmp_path)
