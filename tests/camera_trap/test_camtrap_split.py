"""tools/split_cct.py: location-disjoint, deterministic splits."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from ropevit_det.camera_trap.data.cct import read_cct_json
from ropevit_det.camera_trap.data.split import UNKNOWN_LOCATION, location_of, split_by_location
from tests.camtrap_helpers import SERENGETI_CCT, write_json

TOOL = Path(__file__).resolve().parents[2] / "tools" / "split_cct.py"


def _load_tool():
    from ropevit_det.cli import split_cct

    return split_cct


def _toy_cct(num_locations: int = 12) -> dict:
    images, annotations = [], []
    for loc in range(num_locations):
        for k in range(3 + loc % 4):  # 3..6 images per camera
            image_id = f"L{loc}/img{k}"
            images.append({"id": image_id, "file_name": f"L{loc}/img{k}.jpg", "location": f"L{loc}"})
            annotations.append({"id": f"a{len(annotations)}", "image_id": image_id, "category_id": 1})
    for k in range(4):  # images without a location
        images.append({"id": f"nowhere/{k}", "file_name": f"nowhere/{k}.jpg"})
    return {
        "info": {"version": "toy"},
        "categories": [{"id": 0, "name": "empty"}, {"id": 1, "name": "deer"}],
        "images": images,
        "annotations": annotations,
    }


def test_tool_writes_location_disjoint_deterministic_splits(tmp_path, caplog, capsys):
    src = write_json(tmp_path / "survey.json", _toy_cct())
    tool = _load_tool()
    with caplog.at_level(logging.WARNING):
        assert (
            tool.main(
                [
                    str(src),
                    "--output-dir",
                    str(tmp_path / "s1"),
                    "--val-fraction",
                    "0.25",
                    "--test-fraction",
                    "0.15",
                    "--seed",
                    "3",
                ]
            )
            == 0
        )
    assert "4 images have no 'location'" in caplog.text
    assert "train" in capsys.readouterr().out
    splits = {name: read_cct_json(tmp_path / "s1" / f"survey_{name}.json") for name in ("train", "val", "test")}
    locations = {name: {location_of(im) for im in s["images"]} for name, s in splits.items()}
    assert not locations["train"] & locations["val"]
    assert not locations["train"] & locations["test"]
    assert not locations["val"] & locations["test"]
    assert sum(UNKNOWN_LOCATION in locs for locs in locations.values()) == 1  # the unknown bucket stays whole
    original = _toy_cct()
    all_ids = sorted(im["id"] for s in splits.values() for im in s["images"])
    assert all_ids == sorted(im["id"] for im in original["images"])
    for s in splits.values():  # annotations follow their images; categories and info are copied
        ids = {im["id"] for im in s["images"]}
        assert all(a["image_id"] in ids for a in s["annotations"])
        assert s["categories"] == original["categories"] and s["info"] == original["info"]
    assert sum(len(s["annotations"]) for s in splits.values()) == len(original["annotations"])
    # Fractions land near their targets (whole locations of 3-6 images each, 58 images in all).
    total = len(original["images"])
    assert abs(len(splits["val"]["images"]) / total - 0.25) < 0.1
    assert abs(len(splits["test"]["images"]) / total - 0.15) < 0.1

    # Same seed, same files; an existing output is not overwritten silently.
    assert (
        tool.main(
            [
                str(src),
                "--output-dir",
                str(tmp_path / "s2"),
                "--val-fraction",
                "0.25",
                "--test-fraction",
                "0.15",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    for name in splits:
        assert (tmp_path / "s1" / f"survey_{name}.json").read_bytes() == (
            tmp_path / "s2" / f"survey_{name}.json"
        ).read_bytes()
    assert tool.main([str(src), "--output-dir", str(tmp_path / "s2"), "--val-fraction", "0.25"]) == 2


def test_seed_changes_the_split():
    data = _toy_cct(20)
    val_sets = {tuple(split_by_location(data, val_fraction=0.2, seed=seed)[1].locations["val"]) for seed in range(5)}
    assert len(val_sets) > 1


def test_single_location_file_cannot_be_split():
    data = read_cct_json(SERENGETI_CCT)  # the real file: every frame from camera E03
    with pytest.raises(ValueError, match="only 1 location"):
        split_by_location(data, val_fraction=0.2)


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_location(_toy_cct(), val_fraction=0.6, test_fraction=0.5)


def test_a_duplicated_image_id_is_refused_not_split_in_two():
    # Two images share an id in two locations: their annotations would be copied into both splits.
    data = _toy_cct()
    data["images"].append({"id": "L0/img0", "file_name": "L5/other.jpg", "location": "L5"})
    with pytest.raises(ValueError, match=r"images ids used more than once: 'L0/img0'"):
        split_by_location(data, val_fraction=0.3)


@pytest.mark.parametrize(
    "edit, named",
    [
        (
            lambda d: d["annotations"].append({"id": "lost", "image_id": "nowhere", "category_id": 1}),
            "annotation 'lost' of image_id 'nowhere'",
        ),
        (lambda d: d["annotations"][0].__setitem__("bbox", [1, 2, 3]), r"annotation 'a0' bbox \[1, 2, 3\]"),
        (lambda d: d["annotations"][0].__setitem__("bbox", [1, 2, float("nan"), 3]), r"bbox \[1, 2, nan, 3\]"),
        (lambda d: d["annotations"][0].__setitem__("id", "a1"), "annotations ids used more than once: 'a1'"),
    ],
)
def test_the_command_refuses_inconsistent_files_in_one_line(tmp_path, edit, named):
    data = _toy_cct()
    edit(data)
    src = write_json(tmp_path / "survey.json", data)
    with pytest.raises(SystemExit) as error:
        _load_tool().main([str(src), "--output-dir", str(tmp_path / "out")])
    assert re.search(named, str(error.value)) and str(src) in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, named",
    [
        (["--val-fraction", "1.5"], r"--val-fraction < 1.*got --val-fraction 1.5"),
        (["--val-fraction", "0.6", "--test-fraction", "0.5"], r"--val-fraction \+ --test-fraction < 1"),
    ],
)
def test_fractions_out_of_range_name_the_flag(tmp_path, args, named):
    src = write_json(tmp_path / "survey.json", _toy_cct())
    with pytest.raises(SystemExit, match=named) as error:
        _load_tool().main([str(src), "--output-dir", str(tmp_path / "out"), *args])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"), "is not valid JSON"),
        (lambda p: p.write_text("[1, 2]"), "top level must be an object"),
    ],
)
def test_unreadable_files_are_one_line(tmp_path, make, named):
    src = tmp_path / "survey.json"
    make(src)
    with pytest.raises(SystemExit, match=named) as error:
        _load_tool().main([str(src), "--output-dir", str(tmp_path / "out")])
    assert str(src) in str(error.value) and "\n" not in str(error.value)
