"""``ropevit-det review``: MegaDetector's review page on our results, checked in a real (headless) browser."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image

from ropevit_det.camera_trap.metrics import EvalOptions, evaluate_results
from ropevit_det.camera_trap.postprocess.review import NO_LABELS, ReviewOptions, write_review
from ropevit_det.camera_trap.results.md_format import detection_entry, image_entry, make_info
from ropevit_det.camera_trap.results.writer import ResultsWriter
from ropevit_det.cli.review import main as review_main
from tests import browser_helpers
from tests.artifacts import artifacts_dir, keep_artifact
from tests.browser_helpers import headless_chromium, page_report
from tests.camera_trap.test_camtrap_blur import detail, sample_results
from tests.camtrap_helpers import MINI_COCO, MINI_IMAGES, write_json

PAGES = {
    "tp": "True positives (TP)",
    "tn": "True negatives (TN)",
    "fp": "False positives (FP)",
    "fn": "False negatives (FN)",
}


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
    annotations += [
        {"id": 1000 + im["id"], "image_id": im["id"], "category_id": 0} for im in gt["images"] if im["id"] not in boxed
    ]
    images = [
        {**im, "seq_id": im["file_name"].split("_")[0], "location": im["file_name"].split("_")[0]}
        for im in gt["images"]
    ]
    return write_json(
        path,
        {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 0, "name": "empty"}, {"id": 5, "name": "zebra"}],
        },
    )


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
    summary = write_review(
        results_file,
        MINI_IMAGES,
        tmp_path / "page",
        ReviewOptions(threshold=threshold, gt_file=cct, image_width=200, workers=0, quiet=True),
    )
    ours = evaluate_results(results_file, cct, EvalOptions(threshold=threshold, box_ap=False))["image_level"]
    assert page_counts(summary.index_html) == {k: ours[k] for k in PAGES}
    assert summary.negative_classes == [NO_LABELS, "empty"]
    assert (tmp_path / "page" / "prec_recall.png").is_file()


def test_coco_ground_truth_keeps_the_empty_frames(results_file, tmp_path):
    # Plain COCO: the 3 blank frames have no annotation. Without #NO_LABELS# MegaDetector would drop them.
    summary = write_review(
        results_file,
        MINI_IMAGES,
        tmp_path / "page",
        ReviewOptions(gt_file=MINI_COCO, image_width=200, workers=0, quiet=True),
    )
    counts = page_counts(summary.index_html)
    assert counts["tn"] + counts["fp"] == 3
    assert sum(counts.values()) == 21
    assert summary.threshold == 0.2  # the results file's typical_detection_threshold


def test_without_ground_truth_frames_split_at_the_threshold(results_file, tmp_path):
    # Choosing a threshold: frames with a detection >= 0.2 (one sits exactly on it) and frames without.
    summary = write_review(
        results_file, MINI_IMAGES, tmp_path / "page", ReviewOptions(image_width=100, workers=0, quiet=True)
    )
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
    assert (
        review_main(
            [
                "--results",
                str(results_file),
                "--images",
                str(MINI_IMAGES),
                "--output-dir",
                str(out),
                "--gt",
                str(moved),
                "--image-width",
                "200",
                "--workers",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    assert "review page:" in capsys.readouterr().out
    written = json.loads((out / "ground_truth_for_review.json").read_text())
    assert sorted(im["file_name"] for im in written["images"]) == sorted(im.name for im in MINI_IMAGES.iterdir())
    with pytest.raises(SystemExit, match="ERROR: none of the 21 images"):
        review_main(["--results", str(results_file), "--images", str(tmp_path), "--output-dir", str(out)])
    unrelated = write_json(
        tmp_path / "other.json",
        {"images": [{"id": 1, "file_name": "x/nothing.jpg"}], "categories": [{"id": 1, "name": "animal"}]},
    )
    with pytest.raises(SystemExit, match="--gt-strip-prefix / --gt-add-prefix"):
        review_main(
            [
                "--results",
                str(results_file),
                "--images",
                str(MINI_IMAGES),
                "--output-dir",
                str(out),
                "--gt",
                str(unrelated),
                "--quiet",
            ]
        )


def _local_file(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", f"the review page links outside the disk: {url}"
    return Path(unquote(parsed.path))


def test_review_page_in_a_real_browser(results_file, tmp_path):
    summary = write_review(
        results_file,
        MINI_IMAGES,
        tmp_path / "page",
        ReviewOptions(gt_file=MINI_COCO, image_width=300, workers=2, quiet=True),
    )
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


def unblurred_person_boxes(pages: list[dict], results: dict) -> tuple[list[str], int]:
    """The person boxes (conf >= 0.1) that the frames shown on ``pages`` show with their detail; and how many person
    boxes were looked at. A box counts as blurred when its inside (clear of the drawn outline and label) keeps
    under a fifth of the original's fine detail, both measured at 1/8 of the original's scale (the shown frame
    is resampled to it) as tests/camera_trap/test_camtrap_blur.py measures."""
    person = [cid for cid, name in results["detection_categories"].items() if name == "person"]
    entries = {e["file"]: e for e in results["images"]}
    unblurred, looked_at = [], 0
    for src in {image["src"] for page in pages for image in page["images"]}:
        shown_file = _local_file(src)
        file = next((f for f in entries if shown_file.name.endswith("_" + f)), None)
        if file is None:
            continue  # the precision/recall plot, not a frame
        with Image.open(shown_file) as shown_image, Image.open(MINI_IMAGES / file) as original_image:
            eighth = (original_image.width // 8, original_image.height // 8)
            shown = shown_image.convert("RGB").resize(eighth, Image.Resampling.BOX)
            original = original_image.convert("RGB").resize(eighth, Image.Resampling.BOX)
        for det in entries[file]["detections"]:
            if det["category"] not in person or det["conf"] < 0.1:
                continue
            x, y, w, h = det["bbox"]
            inner = (
                (x + 0.15 * w) * shown.width,
                (y + 0.15 * h) * shown.height,
                (x + 0.85 * w) * shown.width,
                (y + 0.85 * h) * shown.height,
            )
            looked_at += 1
            if detail(shown, inner, factor=1) >= detail(original, inner, factor=1) / 5:
                unblurred.append(f"{shown_file.name} {det['bbox']}")
    return unblurred, looked_at


def test_review_with_blur_shows_no_unblurred_person(tmp_path):
    results_path = sample_results(tmp_path / "results.json")
    results = json.loads(results_path.read_text())
    found = {}
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        for blur in ([], ["person"]):
            summary = write_review(
                results_path,
                MINI_IMAGES,
                tmp_path / f"page_{bool(blur)}",
                ReviewOptions(image_width=300, workers=2, quiet=True, threshold=0.1, blur=blur),
            )
            index = page_report(driver, summary.index_html.as_uri())
            pages = [index] + [page_report(driver, link) for link in index["links"] if link.endswith(".html")]
            images = [image for page in pages for image in page["images"]]
            assert images and all(image["complete"] and image["naturalWidth"] > 0 for image in images)
            found[bool(blur)] = (unblurred_person_boxes(pages, results), pages, summary)
    (plain, looked_at), _, _ = found[False]
    assert looked_at >= 5 and len(plain) == looked_at  # without --blur the check sees every person
    (blurred, looked_at_blurred), pages, summary = found[True]
    assert looked_at_blurred == looked_at and blurred == []
    # The frames link to the blurred copies, not to the originals.
    frame_links = {_local_file(link) for page in pages[1:] for link in page["links"] if not link.endswith(".html")}
    assert frame_links and all(summary.blurred_images in link.parents for link in frame_links)


def test_artefacts_go_to_the_env_folder_else_output(tmp_path, monkeypatch):
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"png")
    monkeypatch.setenv("ROPEVIT_TEST_ARTIFACTS", str(tmp_path / "ci_upload"))
    assert keep_artifact(shot).read_bytes() == b"png" and (tmp_path / "ci_upload" / "shot.png").is_file()
    monkeypatch.delenv("ROPEVIT_TEST_ARTIFACTS")
    assert artifacts_dir() == Path(__file__).resolve().parents[2] / "output" / "test_artifacts"


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
    summary = write_review(
        missed, MINI_IMAGES, tmp_path / "page", ReviewOptions(gt_file=MINI_COCO, image_width=100, workers=0)
    )
    printed = capsys.readouterr().out
    assert ours["average_precision"] == pytest.approx(0.919, abs=5e-4)
    assert "Average precision: 96.7%" in printed
    # Printed, strict >: the true box at exactly 0.2 is left out (14 TP, 2 FP: 87.5%; 14 of 18: 77.8%).
    assert "precision=87.5%, recall=77.8%" in printed
    # Pages, >= like ours: 15 TP.
    assert page_counts(summary.index_html) == {k: ours[k] for k in PAGES} == {"tp": 15, "tn": 1, "fp": 2, "fn": 3}


def _copy_frame(folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(sorted(MINI_IMAGES.iterdir())[0].read_bytes())
    return name


def _results(path: Path, files: list[str], categories: dict[str, str] | None = None) -> Path:
    return write_json(
        path,
        {
            "info": {"format_version": "1.6", "detector": "synthetic"},
            "detection_categories": categories or {"1": "animal"},
            "images": [
                {"file": f, "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}]} for f in files
            ],
        },
    )


@pytest.mark.parametrize(
    "outside", ["../secret.jpg", "/tmp/secret.jpg", "card/" + "../" * 2 + "secret.jpg", "C:/x.jpg"]
)
def test_entries_outside_the_image_folder_are_refused(tmp_path, outside):
    images = tmp_path / "images"
    inside = _copy_frame(images, "a.jpg")
    _copy_frame(tmp_path, "secret.jpg")  # what "../secret.jpg" would show on the page
    results = _results(tmp_path / "results.json", [inside, outside])
    with pytest.raises(SystemExit) as error:
        review_main(
            [
                "--results",
                str(results),
                "--images",
                str(images),
                "--output-dir",
                str(tmp_path / "page"),
                "--workers",
                "0",
                "--quiet",
            ]
        )
    message = str(error.value)
    assert "\n" not in message and repr(outside) in message and str(images) in message
    assert not (tmp_path / "page" / "index.html").exists()


def test_html_in_names_never_reaches_the_page(tmp_path):
    images = tmp_path / "images"
    hostile = _copy_frame(images, "<script>alert(1)<script>.jpg")
    with pytest.raises(ValueError, match="HTML markup.*<script>"):
        write_review(
            _results(tmp_path / "results.json", [hostile]),
            images,
            tmp_path / "page",
            ReviewOptions(image_width=100, workers=0, quiet=True),
        )
    plain = _copy_frame(images, "b.jpg")
    with pytest.raises(ValueError, match="category names"):
        write_review(
            _results(tmp_path / "results.json", [plain], {"1": '"><img src=x onerror=alert(1)>'}),
            images,
            tmp_path / "page",
            ReviewOptions(image_width=100, workers=0, quiet=True),
        )
    with pytest.raises(ValueError, match="category names"):
        write_review(
            _results(tmp_path / "results.json", [plain]),
            images,
            tmp_path / "page",
            ReviewOptions(
                image_width=100,
                workers=0,
                quiet=True,
                gt_file=write_json(
                    tmp_path / "gt.json",
                    {
                        "images": [{"id": 1, "file_name": plain}],
                        "annotations": [],
                        "categories": [{"id": 1, "name": "<b>deer</b>"}],
                    },
                ),
            ),
        )
    # The page title comes from the results file's name: escaped, not refused.
    summary = write_review(
        _results(tmp_path / "<img src=x onerror=alert(1)>.json", [plain]),
        images,
        tmp_path / "page",
        ReviewOptions(image_width=100, workers=0, quiet=True),
    )
    text = summary.index_html.read_text(encoding="utf-8")
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF"), "is not valid JSON"),
        (lambda p: p.write_text('{"images": [], "detection_categories": {"1": 7}}'), "name strings"),
    ],
)
def test_an_unreadable_results_file_is_one_line(tmp_path, make, named):
    results = tmp_path / "results.json"
    make(results)
    with pytest.raises(SystemExit, match=named) as error:
        review_main(["--results", str(results), "--images", str(MINI_IMAGES), "--output-dir", str(tmp_path / "p")])
    assert str(results) in str(error.value) and "\n" not in str(error.value)


def test_unreadable_ground_truth_is_one_line(results_file, tmp_path):
    gt = tmp_path / "gt.json"
    gt.mkdir()
    with pytest.raises(SystemExit, match=f"ERROR: CCT file {gt} is a folder") as error:
        review_main(
            [
                "--results",
                str(results_file),
                "--images",
                str(MINI_IMAGES),
                "--output-dir",
                str(tmp_path / "p"),
                "--gt",
                str(gt),
                "--quiet",
            ]
        )
    assert "\n" not in str(error.value)
