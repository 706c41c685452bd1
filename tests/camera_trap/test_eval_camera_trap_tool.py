"""tools/eval_camera_trap.py end to end on the sample CCT file: prefix rewriting, class mapping, the JSON report
(checked against numbers computed by hand) and the precision/recall plot."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from PIL import Image

from ropevit_det.cli import eval_camtrap
from tests.camtrap_helpers import SERENGETI_CCT, SERENGETI_PREFIX, write_json
from tests.conftest import REPO

# Results for the 4 hippo frames (two 2-frame sequences) and 2 empty frames added to the ground truth.
SCORES = {
    "S1_E03_R3_PICT0038": 0.9,
    "S1_E03_R3_PICT0039": 0.6,
    "S1_E03_R3_PICT0040": 0.1,
    "S1_E03_R3_PICT0041": None,
    "EMPTY_1": 0.7,
    "EMPTY_2": 0.05,
}


@pytest.fixture
def files(tmp_path):
    gt = json.loads(SERENGETI_CCT.read_text())
    for k in (1, 2):
        gt["images"].append(
            {
                "id": f"empty/{k}",
                "file_name": f"{SERENGETI_PREFIX}/EMPTY_{k}.jpeg",
                "width": 2048,
                "height": 1536,
                "seq_id": f"EMPTY_SEQ_{k}",
                "frame_num": 0,
            }
        )
        gt["annotations"].append({"id": f"e{k}", "image_id": f"empty/{k}", "category_id": 0})
    images = []
    for stem, score in SCORES.items():
        # Boxes: the hippo frames' detection is their ground-truth box (normalised), the empty ones anything.
        detections = [] if score is None else [{"category": "1", "conf": score, "bbox": [0.3, 0.3, 0.33, 0.25]}]
        images.append({"file": f"serengeti_{stem}.jpeg", "detections": detections})
    results = {
        "info": {"format_version": "1.4", "detector": "test"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": images,
    }
    return write_json(tmp_path / "gt.json", gt), write_json(tmp_path / "results.json", results)


def base_args(gt, results) -> list[str]:
    return [
        "--results",
        str(results),
        "--gt",
        str(gt),
        "--gt-strip-prefix",
        SERENGETI_PREFIX,
        "--gt-add-prefix",
        "serengeti_",
        "--threshold",
        "0.5",
    ]


def test_json_report_equals_the_numbers_computed_by_hand(files, tmp_path):
    gt, results = files
    out, plot = tmp_path / "metrics.json", tmp_path / "pr.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "eval_camera_trap.py"),
            *base_args(gt, results),
            "--json",
            str(out),
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["matching"]["matched"] == 6 and report["matching"]["results_without_ground_truth"] == 0

    # At 0.5: predicted positive 0038 (0.9), 0039 (0.6), EMPTY_1 (0.7). Positives: the 4 hippo frames.
    image = report["image_level"]
    assert (image["n"], image["n_positive"], image["n_empty"]) == (6, 4, 2)
    assert (image["tp"], image["fp"], image["fn"], image["tn"]) == (2, 1, 2, 1)
    assert image["precision"] == pytest.approx(2 / 3) and image["recall"] == pytest.approx(0.5)
    assert image["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert image["empty_frame_fp_rate"] == pytest.approx(0.5)
    # Ranked 0.9 P, 0.7 N, 0.6 P, 0.1 P, 0.05 N (0041 has no detection: never retrieved).
    # AP = sum of recall steps x precision = 0.25 * 1 + 0.25 * 2/3 + 0.25 * 3/4.
    assert image["average_precision"] == pytest.approx(0.25 * (1 + 2 / 3 + 3 / 4))
    # Recall at precision >= 0.95: only the top detection qualifies.
    assert image["recall_at_precision"]["recall"] == pytest.approx(0.25)

    # Sequences: ASG0003041 max 0.9 (positive), ASG0003042 max 0.1 (positive), EMPTY_SEQ_1 0.7, EMPTY_SEQ_2 0.05.
    seq = report["sequence_level"]
    assert (seq["n"], seq["tp"], seq["fp"], seq["fn"], seq["tn"]) == (4, 1, 1, 1, 1)
    assert seq["precision"] == pytest.approx(0.5) and seq["recall"] == pytest.approx(0.5)

    with Image.open(plot) as png:
        assert png.format == "PNG" and png.size[0] > 100 and png.size[1] > 100
        png.load()  # decodes fully: a truncated file would raise here


def test_prefix_flags_are_what_makes_the_files_match(files, capsys):
    gt, results = files
    args = base_args(gt, results)
    without_add = args[: args.index("--gt-add-prefix")] + args[args.index("--gt-add-prefix") + 2 :]
    with pytest.raises(SystemExit, match=r"ERROR: no result .* matches .*--gt-strip-prefix / --gt-add-prefix"):
        eval_camtrap.main([*without_add, "--no-box-ap"])
    without_strip = args[: args.index("--gt-strip-prefix")] + args[args.index("--gt-strip-prefix") + 2 :]
    with pytest.raises(SystemExit, match="ERROR: no result"):
        eval_camtrap.main([*without_strip, "--no-box-ap"])


def test_mapping_decides_which_class_a_species_counts_as(files, tmp_path):
    gt, results = files
    mapping = write_json(tmp_path / "mapping.json", {"hippopotamus": "person"})
    default, as_person, as_animal = tmp_path / "d.json", tmp_path / "p.json", tmp_path / "a.json"
    assert eval_camtrap.main([*base_args(gt, results), "--no-box-ap", "--json", str(default)]) == 0
    results_as_person = json.loads(results.read_text())
    for entry in results_as_person["images"]:
        for d in entry["detections"]:
            d["category"] = "2"
    person_results = write_json(tmp_path / "person_results.json", results_as_person)
    assert (
        eval_camtrap.main(
            [
                *base_args(gt, person_results),
                "--no-box-ap",
                "--mapping",
                str(mapping),
                "--category",
                "person",
                "--json",
                str(as_person),
            ]
        )
        == 0
    )
    assert (
        eval_camtrap.main([*base_args(gt, results), "--no-box-ap", "--mapping", str(mapping), "--json", str(as_animal)])
        == 0
    )
    default_image = json.loads(default.read_text())["image_level"]
    person_image = json.loads(as_person.read_text())["image_level"]
    animal_image = json.loads(as_animal.read_text())["image_level"]
    # Hippos mapped to person and scored as person: the same counts as the default (animal) run.
    assert {k: person_image[k] for k in ("tp", "fp", "fn", "tn")} == {
        k: default_image[k] for k in ("tp", "fp", "fn", "tn")
    }
    # Scored as animal, the mapped frames hold no animal any more.
    assert animal_image["n_positive"] == 0 and animal_image["tp"] == 0


def test_box_ap_is_reported_in_the_json(files):
    gt, results = files
    report_file = gt.parent / "boxes.json"
    assert eval_camtrap.main([*base_args(gt, results), "--json", str(report_file)]) == 0
    boxes = json.loads(report_file.read_text())["boxes"]
    assert boxes is not None and 0.0 <= boxes["AP50"] <= 1.0


def _edit_gt(gt_path, edit):
    gt = json.loads(gt_path.read_text())
    edit(gt)
    gt_path.write_text(json.dumps(gt))  # NaN and Infinity are written as JSON's usual extensions


def _ids_as_integers(gt):
    """Image ids become integers and annotations keep strings: no annotation finds its image."""
    ids = {im["id"]: k for k, im in enumerate(gt["images"])}
    for im in gt["images"]:
        im["id"] = ids[im["id"]]
    for ann in gt["annotations"]:
        ann["image_id"] = str(ids[ann["image_id"]])


def _box(value):
    return lambda gt: gt["annotations"][0].__setitem__("bbox", value)


@pytest.mark.parametrize(
    "edit, named",
    [
        (_ids_as_integers, r"image id 0 is a int, annotation image_id '0' a str.*annotation '0154T1541168895361'"),
        (
            lambda gt: gt["annotations"].append({"id": "ghost", "image_id": "nowhere", "category_id": 0}),
            r"annotations of images that are not in 'images': annotation 'ghost' of image_id 'nowhere'",
        ),
        (
            lambda gt: gt["images"].append({**gt["images"][0], "file_name": "x/copy.jpeg"}),
            r"images ids used more than once: 'S1/E03/E03_R3/S1_E03_R3_PICT0038'",
        ),
        (_box([1.0, 2.0, 3.0]), r"bbox \[1.0, 2.0, 3.0\]"),
        (_box([float("nan"), 2.0, 3.0, 4.0]), r"bbox \[nan"),
        (_box([1.0, 2.0, float("inf"), 4.0]), r"bbox \[1.0, 2.0, inf"),
        (_box([1.0, 2.0, -3.0, 4.0]), r"bbox \[1.0, 2.0, -3.0"),
        (_box([1.0, "2", 3.0, 4.0]), r"bbox \[1.0, '2'"),
        (lambda gt: gt["images"][0].__setitem__("width", -2048), r"width -2048"),
    ],
)
def test_inconsistent_ground_truth_is_refused_by_name(files, edit, named):
    gt, results = files
    _edit_gt(gt, edit)
    with pytest.raises(SystemExit) as error:
        eval_camtrap.main([*base_args(gt, results), "--no-box-ap"])
    message = str(error.value)
    assert message.startswith("ERROR: ground truth ") and str(gt) in message and "\n" not in message
    assert re.search(named, message), message


@pytest.mark.parametrize(
    "which, make, named",
    [
        ("--gt", lambda p: p.mkdir(), "is a folder"),
        ("--gt", lambda p: p.write_bytes(b"\xff\xd8\xff\xe0binary"), "is not valid JSON"),
        ("--gt", lambda p: None, "does not exist"),
        ("--results", lambda p: p.mkdir(), "is a folder"),
        ("--results", lambda p: p.write_bytes(b"\x00\x01\xfe\xff"), "is not valid JSON"),
        (
            "--results",
            lambda p: p.write_text(
                '{"images": [{"file": "a.jpg", "detections": [{"category": "1", '
                '"conf": 0.5, "bbox": [0, 0, 1]}]}], "detection_categories": {"1": "a"}}'
            ),
            r"'a.jpg'.*four finite numbers",
        ),
        ("--mapping", lambda p: p.mkdir(), "cannot be read"),
    ],
)
def test_unreadable_inputs_are_one_line(files, tmp_path, which, make, named):
    gt, results = files
    bad = tmp_path / "bad_input"
    make(bad)
    args = base_args(gt, results)
    args = (
        [*args, "--mapping", str(bad)]
        if which == "--mapping"
        else [str(bad) if previous == which else a for previous, a in zip([None, *args], args)]
    )
    with pytest.raises(SystemExit) as error:
        eval_camtrap.main([*args, "--no-box-ap"])
    message = str(error.value)
    assert message.startswith("ERROR: ") and str(bad) in message and "\n" not in message
    assert re.search(named, message), message


def test_command_line_prints_a_sentence_not_a_traceback(files):
    gt, results = files
    _edit_gt(gt, _ids_as_integers)
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "eval_camera_trap.py"), *base_args(gt, results)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # above it: library warnings (torch) at import
    assert last.startswith("ERROR: ground truth") and "write both as the same type" in last
