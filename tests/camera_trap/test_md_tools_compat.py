"""MegaDetector's compare / sort / CSV tools accept what ``ropevit-det infer`` writes, unchanged.

One real inference run (tiny random-weight detector and classifier, 5 sample frames in two camera folders,
with species labels and EXIF capture times) feeds MegaDetector's ``compare_batch_results``,
``separate_detections_into_folders`` and ``generate_csv_report``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ropevit_det.camera_trap.postprocess.md_package import import_md
from ropevit_det.cli.infer import main as infer_main
from tests.camtrap_helpers import MINI_IMAGES, validate_md, write_json
from tests.checkpoint_helpers import make_birder_net, save_birder_pt
from tests.conftest import CONFIGS

QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
CARDS = {
    "camA": [
        "serengeti_S1_E03_R3_PICT0038.jpeg",
        "serengeti_S1_E03_R3_PICT0039.jpeg",
        "serengeti_S1_E03_R3_PICT0040.jpeg",
    ],
    "camB": ["speciesnet_blank.jpg", "pw_102542.jpg"],
}
THRESHOLD = 0.5


def infer_results(root: Path, extra: list[str] = ()) -> Path:
    """Run ``ropevit-det infer --classify`` on the cards under ``root / "card"``; returns the results file."""
    weights = save_birder_pt(make_birder_net(), root / "weights")
    output = root / "results.json"
    assert (
        infer_main(
            [
                "--config",
                str(QUICK),
                "--weights",
                str(weights),
                "--input",
                str(root / "card"),
                "--output",
                str(output),
                "--threshold",
                "0",
                "--class-names",
                "animal",
                "--classify",
                "--top-k",
                "2",
                "--num-workers",
                "0",
                "--no-progress",
                *extra,
                "MODEL.ROI_HEADS.NUM_CLASSES",
                "1",
                "TEST.DETECTIONS_PER_IMAGE",
                "3",
                "MODEL.SFP.SQUARE_PAD",
                "0",
            ]
        )
        == 0
    )
    return output


def make_cards(root: Path) -> Path:
    for card, names in CARDS.items():
        (root / "card" / card).mkdir(parents=True)
        for name in names:
            (root / "card" / card / name).symlink_to(MINI_IMAGES / name)
    return root / "card"


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("md_tools")
    images = make_cards(root)
    results = infer_results(root)
    data = json.loads(results.read_text())
    assert validate_md(results)["errors"] == []
    return {"root": root, "images": images, "results": results, "data": data}


def above(entry: dict, threshold: float) -> bool:
    return any(d["conf"] >= threshold for d in entry["detections"] or [])


def test_separate_detections_into_folders(ours, tmp_path):
    sdif = import_md("postprocessing.separate_detections_into_folders")
    options = sdif.SeparateDetectionsIntoFoldersOptions()
    options.results_file = str(ours["results"])
    options.base_input_folder = str(ours["images"])
    options.base_output_folder = str(tmp_path / "sorted")
    options.threshold = THRESHOLD
    options.category_name_to_threshold = {"animal": THRESHOLD}
    sdif.separate_detections_into_folders(options)
    placed = {p.relative_to(tmp_path / "sorted").as_posix() for p in (tmp_path / "sorted").rglob("*") if p.is_file()}
    expected = {f"{'animals' if above(e, THRESHOLD) else 'empty'}/{e['file']}" for e in ours["data"]["images"]}
    assert placed == expected
    assert any(p.startswith("animals/") for p in placed) and any(p.startswith("empty/") for p in placed)


def test_generate_csv_report_with_capture_times_and_species(ours, tmp_path):
    report = import_md("postprocessing.generate_csv_report")
    out = tmp_path / "report.csv"
    report.generate_csv_report(
        str(ours["results"]),
        str(out),
        datetime_source=str(ours["results"]),
        folder_level_columns=[0],
        detection_confidence_threshold=THRESHOLD,
        classification_confidence_threshold=0.0,
        verbose=False,
    )
    with open(out, newline="") as f:
        rows = {row["filename"]: row for row in csv.DictReader(f)}  # one row per image
    entries = {e["file"]: e for e in ours["data"]["images"]}
    assert set(rows) == set(entries)
    species = set(ours["data"]["classification_categories"].values())
    for name, row in rows.items():
        assert row["folder_level_00"] == name.split("/")[0]
        if "datetime" in entries[name]:  # EXIF's capture time, as we write it, is what the report shows
            assert row["datetime"] == entries[name]["datetime"]
        if above(entries[name], THRESHOLD):  # the species label of the best detection, by our class names
            assert row["detection_category"] == "animal" and row["classification_category"] in species
    assert rows["camA/serengeti_S1_E03_R3_PICT0038.jpeg"]["datetime"] == "2010:08:07 01:04:15"


def test_compare_batch_results_against_a_second_run(ours, tmp_path):
    cbr = import_md("postprocessing.compare_batch_results")
    # "Another detector": the same file with every confidence halved, so the comparison has something to show.
    other = json.loads(ours["results"].read_text())
    for entry in other["images"]:
        for det in entry["detections"] or []:
            det["conf"] = round(det["conf"] / 2, 3)
    other_file = write_json(tmp_path / "other.json", other)
    options = cbr.BatchComparisonOptions()
    options.output_folder = str(tmp_path / "compare")
    options.image_folder = str(ours["images"])
    options.parallelize_rendering_with_threads = True
    options.n_rendering_workers = 1
    options.return_images_by_category = True
    pair = cbr.PairwiseBatchComparisonOptions()
    pair.results_filename_a, pair.results_filename_b = str(ours["results"]), str(other_file)
    pair.results_description_a, pair.results_description_b = "ours", "halved"
    pair.detection_thresholds_a = pair.detection_thresholds_b = {"default": THRESHOLD}
    options.pairwise_options = [pair]
    result = cbr.compare_batch_results(options)
    assert Path(result.html_output_file).is_file()
    [pairwise] = result.pairwise_results
    compared = {fn for pairs in pairwise.categories_to_image_pairs.values() for fn in pairs}
    assert compared == {e["file"] for e in ours["data"]["images"]}
    # Halved, no confidence reaches 0.5 (none is 1.0): each image with a detection >= 0.5 is "ours only".
    assert not any(above(e, THRESHOLD) for e in other["images"])
    detections_a_only = pairwise.categories_to_image_pairs["detections_a_only"]
    assert set(detections_a_only) == {e["file"] for e in ours["data"]["images"] if above(e, THRESHOLD)}
