"""``ropevit-det review``: MegaDetector's review page on our results, checked in a real (headless) browser."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image

from ropevit_det.camera_trap.results.writer import ResultsWriter
from ropevit_det.camera_trap.results.md_format import detection_entry, image_entry, make_info
from ropevit_det.camera_trap.metrics import EvalOptions, evaluate_results
from ropevit_det.camera_trap.postprocess.review import NO_LABELS, ReviewOptions, write_review
from ropevit_det.cli.review import main as review_main

from tests import browser_helpers
from tests.artifacts import artifacts_dir, keep_artifact
from tests.browser_helpers import headless_chromium, page_report
from tests.camtrap_helpers import MINI_COCO, MINI_IMAGES, write_json

PAGES = {"tp": "True positives (TP)", "tn": "True negatives (TN)", "fp": "False positives (FP)",
         "fn": "False negatives (FN)"}


def synthetic_results(path: Path) -> Path:
    """Results for the 21 sample frames: each true box found with a rising confidence (0.1, 0.15, ... so one
    sits exactly on 0.2), and a false box on every other empty frame."""
    gt = json.loads(MINI_COCO.read_text())
    boxed = {a["image_id"]: a["bbox"] for a in gt["annotations"]}
    with ResultsWriter(path, info=make_info("synthetic", typical_detection_threshold=0.2)) as writer:
        for k, im in enumerate(gt["images"]):
            dets = []
            if im["id"] in boxed:
                x, y, w, h = boxed[im["id"]]
                dets.append(detection_entry(1, 0.1 + 0.05 * k, [x, y, x + w, y + h], im["width"], im["height"]))
            elif k % 2 == 0:
                dets.append(detection_entry(1, 0.3, [10, 10, 200, 200], im["width"], im["height"]))
            writer.add(image_entry(im["file_name"], dets))
    return path


def cct_with_empty_category(path: Path) -> Path:
    """The sample frames as a CCT file: category 0 ``empty`` on the blank frames, species names, sequences."""
    gt = json.loads(MINI_COCO.read_text())
    boxed = {a["image_id"] for a in gt["annotations"]}
    annotations = [{**a, "category_id": 5} for a in gt["annotations"]]
    annotations += [{"id": 1000 + im["id"], "image_id": im["id"], "category_id": 0}
                    for im in gt["images"] if im["id"] not in boxed]
    images = [{**im, "seq_id": im["file_name"].split("_")[0], "location": im["file_name"].split("_")[0]}
              for im in gt["images"]]
    return write_json(path, {"images": images, "annotations": annotations,
                             "categories": [{"id": 0, "name": "empty"}, {"id": 5, "name": "zebra"}]})


def page_counts(index_html: Path) -> dict[str, int]:
    """The TP/TN/FP/FN counts printed on MegaDetector's index page."""
    text = index_html.read_text(encoding="utf-8")
    counts = {}
    for key, label in PAGES.items():
        found = re.search(rf'href="{key}.html">{re.escape(label)}</a> \((\d+)\)', text)
        assert found, f"{label} missing from {index_html}"
        counts[key] = int(found.group(1))
    return counts


@pytest.fixture(scope="module")
def results_file(tmp_path_factory) -> Path:
    return synthetic_results(tmp_path_factory.mktemp("review") / "results.json")


@pytest.mark.parametrize("threshold", [0.2, 0.5])
def test_cct_ground_truth_counts_equal_ours(results_file, tmp_path, threshold):
    cct = cct_with_empty_category(tmp_path / "cct.json")
    summary = write_review(results_file, MINI_IMAGES, tmp_path / "page",
                           ReviewOptions(threshold=threshold, gt_file=cct, image_width=200, workers=0, quiet=True))
    ours = evaluate_results(results_file, cct, EvalOptions(threshold=threshold, box_ap=False))["image_level"]
    assert page_counts(summary.index_html) == {k: ours[k] for k in PAGES}
    assert summary.negative_classes == [NO_LABELS, "empty"]
    assert (tmp_path / "page" / "prec_recall.png").is_file()


def test_coco_ground_truth_keeps_the_empty_frames(results_file, tmp_path):
    # Plain COCO: the 3 blank frames have no annotation. Without #NO_LABELS# MegaDetector would drop them.
    summary = write_review(results_file, MINI_IMAGES, tmp_path / "page",
                           ReviewOptions(gt_file=MINI_COCO, image_width=200, workers=0, quiet=True))
    counts = page_counts(summary.index_html)
    assert counts["tn"] + counts["fp"] == 3
    assert sum(counts.values()) == 21
    assert summary.threshold == 0.2  # the results file's typical_detection_threshold


def test_without_ground_truth_frames_split_at_the_threshold(results_file, tmp_path):
    # Choosing a threshold: frames with a detection >= 0.2 (one sits exactly on it) and frames without.
    summary = write_review(results_file, MINI_IMAGES, tmp_path / "page",
                           ReviewOptions(image_width=100, workers=0, quiet=True))
    text = summary.index_html.read_text(encoding="utf-8")
    images = json.loads(results_file.read_text())["images"]
    with_detection = sum(any(d["conf"] >= 0.2 for d in e["detections"]) for e in images)
    assert with_detection == 18
    assert f'href="detections_animal.html">Detections: animal</a> ({with_detection},' in text
    assert f'href="non_detections.html">Non-detections</a> ({21 - with_detection},' in text
    assert len(list((tmp_path / "page" / "detections_animal").iterdir())) == with_detection


def test_cli_rewrites_ground_truth_paths_and_reports_flags(results_file, tmp_path, capsys):
    gt = json.loads(MINI_COCO.read_text())
    for im in gt["images"]:
        im["file_name"] = "card_07/DCIM/" + im["file_name"]
    moved = write_json(tmp_path / "gt_moved.json", gt)
    out = tmp_path / "page"
    assert review_main(["--results", str(results_file), "--images", str(MINI_IMAGES), "--output-dir", str(out),
                        "--gt", str(moved), "--image-width", "200", "--workers", "0", "--quiet"]) == 0
    assert "review page:" in capsys.readouterr().out
    written = json.loads((out / "ground_truth_for_review.json").read_text())
    assert sorted(im["file_name"] for im in written["images"]) == sorted(im.name for im in MINI_IMAGES.iterdir())
    with pytest.raises(SystemExit, match="ERROR: none of the 21 images"):
        review_main(["--results", str(results_file), "--images", str(tmp_path), "--output-dir", str(out)])
    unrelated = write_json(tmp_path / "other.json", {"images": [{"id": 1, "file_name": "x/nothing.jpg"}],
                                                     "categories": [{"id": 1, "name": "animal"}]})
    with pytest.raises(SystemExit, match="--gt-strip-prefix / --gt-add-prefix"):
        review_main(["--results", str(results_file), "--images", str(MINI_IMAGES), "--output-dir", str(out),
                     "--gt", str(unrelated), "--quiet"])


def _local_file(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", f"the review page links outside the disk: {url}"
    return Path(unquote(parsed.path))


def test_review_page_in_a_real_browser(results_file, tmp_path):
    summary = write_review(results_file, MINI_IMAGES, tmp_path / "page",
                           ReviewOptions(gt_file=MINI_COCO, image_width=300, workers=2, quiet=True))
    screenshot = tmp_path / "review_index.png"  # copied to the artefacts folder below, once checked
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        index = page_report(driver, summary.index_html.as_uri())
        assert index["title"] == "Detection results preview"
        driver.save_screenshot(str(screenshot))
        pages = [index]
        assert {Path(_local_file(link)).name for link in index["links"]} == {f"{k}.html" for k in PAGES}
        for link in index["links"]:
            assert _local_file(link).is_file(), f"index link {link} does not resolve"
            pages.append(page_report(driver, link))
    images = [image for page in pages for image in page["images"]]
    # The PR curve on the index plus one rendered frame per image (each image sits on exactly one page).
    assert len(images) == 1 + 21
    not_loaded = [image["src"] for image in images if not (image["complete"] and image["naturalWidth"] > 0)]
    assert not not_loaded, f"images that did not load: {not_loaded}"
    # The frames on the sub-pages link to the originals under --images.
    originals = {_local_file(link) for page in pages[1:] for link in page["links"]}
    assert originals == {p.resolve() for p in MINI_IMAGES.iterdir()}
    with Image.open(screenshot) as shot:
        assert shot.width == 1280 and shot.height > 500
        assert len(shot.convert("RGB").getcolors(1 << 16) or range(1 << 16)) > 16  # not a blank page
    kept = keep_artifact(screenshot)
    assert kept == artifacts_dir() / "review_index.png" and kept.read_bytes() == screenshot.read_bytes()


def test_artefacts_go_to_the_env_folder_else_output(tmp_path, monkeypatch):
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"png")
    monkeypatch.setenv("ROPEVIT_TEST_ARTIFACTS", str(tmp_path / "ci_upload"))
    assert keep_artifact(shot).read_bytes() == b"png" and (tmp_path / "ci_upload" / "shot.png").is_file()
    monkeypatch.delenv("ROPEVIT_TEST_ARTIFACTS")
    assert artifacts_dir() == Path(__file__).resolve().parents[1] / "output" / "test_artifacts"


def test_missing_browser_fails_with_the_install_command(monkeypatch):
    monkeypatch.setattr(browser_helpers, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(browser_helpers.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        browser_helpers.require_chromium()


def test_definitional_differences_with_megadetectors_numbers(results_file, tmp_path, capsys):
    """The numbers docs/REVIEW.md quotes: one positive frame without any detection, threshold 0.2 exactly on a
    true box. MegaDetector's printed AP lets the missed frame in at score 0, ours never retrieves it; its printed
    precision/recall use conf > 0.2, its pages and ours conf >= 0.2."""
    data = json.loads(results_file.read_text())
    data["images"][0]["detections"] = []  # a positive frame the detector misses entirely
    missed = write_json(tmp_path / "missed.json", data)
    ours = evaluate_results(missed, MINI_COCO, EvalOptions(threshold=0.2, box_ap=False))["image_level"]
    capsys.readouterr()
    summary = write_review(missed, MINI_IMAGES, tmp_path / "page",
                           ReviewOptions(gt_file=MINI_COCO, image_width=100, workers=0))
    printed = capsys.readouterr().out
    assert ours["average_precision"] == pytest.approx(0.919, abs=5e-4)
    assert "Average precision: 96.7%" in printed
    # Printed, strict >: the true box at exactly 0.2 is left out (14 TP, 2 FP: 87.5%; 14 of 18: 77.8%).
    assert "precision=87.5%, recall=77.8%" in printed
    # Pages, >= like ours: 15 TP.
    assert page_counts(summary.index_html) == {k: ours[k] for k in PAGES} == {"tp": 15, "tn": 1, "fp": 2, "fn": 3}
