"""``ropevit-det rde find|apply``: MegaDetector's repeat-detection elimination on our results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ropevit_det.camera_trap.postprocess.rde import RdeOptions, apply_repeats, find_repeats
from ropevit_det.camera_trap.results.md_format import image_entry, make_info
from ropevit_det.camera_trap.results.writer import ResultsWriter
from ropevit_det.cli.rde import main as rde_main
from tests.camtrap_helpers import validate_md, write_json

ROCK = [0.1, 0.1, 0.1, 0.1]  # a false positive that never moves
SLEEPER = [0.6, 0.5, 0.15, 0.2]  # a real animal that never moves: the reviewer keeps it


def moving(k: int) -> list[float]:
    return [0.05 * k, 0.6, 0.1, 0.1]


def make_cards(root: Path, cards: dict[str, int]) -> Path:
    """Frames ``card/IMG_k.JPG`` (noise, 160x120) and results with the rock, the sleeper and a moving animal."""
    rng = np.random.default_rng(0)
    results = root / "results.json"
    with ResultsWriter(results, info=make_info("synthetic")) as writer:
        for card, n in cards.items():
            for k in range(n):
                rel = f"{card}/IMG_{k:04d}.JPG"
                (root / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(root / "images" / rel)
                writer.add(
                    image_entry(
                        rel,
                        [
                            {"category": "1", "conf": 0.5, "bbox": ROCK},
                            {"category": "1", "conf": 0.7, "bbox": SLEEPER},
                            {"category": "1", "conf": 0.8, "bbox": moving(k)},
                        ],
                    )
                )
    return results


def boxes_by_file(path: Path) -> dict[str, list[list[float]]]:
    return {e["file"]: [d["bbox"] for d in e["detections"]] for e in json.loads(path.read_text())["images"]}


def test_static_boxes_are_flagged_and_a_deleted_tile_is_kept(tmp_path):
    results = make_cards(tmp_path, {"camA": 8, "camB": 3})
    folder, suspicious = find_repeats(
        results, tmp_path / "images", tmp_path / "rde", RdeOptions(occurrences=5, workers=1, quiet=True)
    )
    # camA repeats the rock and the sleeper in 8 frames; camB's 3 frames are below 5; the moving box never repeats.
    assert sorted((s.camera, s.bbox, s.images) for s in suspicious) == [
        ("camA", tuple(ROCK), 8),
        ("camA", tuple(SLEEPER), 8),
    ]
    assert all(s.tile.is_file() and s.tile.parent == folder for s in suspicious)
    [sleeper_tile] = [s.tile for s in suspicious if s.bbox == tuple(SLEEPER)]
    sleeper_tile.unlink()  # the reviewer: "that one is a real animal"

    cleaned = tmp_path / "clean.json"
    counts = apply_repeats(results, folder, cleaned, quiet=True)
    assert counts == {"removed": 8, "images_changed": 8, "removed_tiles": 1, "kept_tiles": 1}
    after = boxes_by_file(cleaned)
    for k in range(8):
        assert after[f"camA/IMG_{k:04d}.JPG"] == [moving(k), SLEEPER]
    for k in range(3):  # another camera: untouched
        assert ROCK in after[f"camB/IMG_{k:04d}.JPG"]
    assert validate_md(cleaned)["errors"] == []
    assert json.loads(cleaned.read_text())["info"]["repeat_detection_elimination"]["removed_detections"] == 8


def test_cameras_by_cct_location_and_the_command_line(tmp_path, capsys):
    # Two cards of one camera, 4 frames each: by folder nothing reaches 6 occurrences, by location all 8 do.
    results = make_cards(tmp_path, {"site1_card1": 4, "site1_card2": 4})
    files = sorted(boxes_by_file(results))
    cct = write_json(
        tmp_path / "cct.json",
        {
            "images": [{"id": i, "file_name": f"survey/{f}", "location": "site1"} for i, f in enumerate(files)],
            "annotations": [],
            "categories": [{"id": 1, "name": "animal"}],
        },
    )
    common = [
        "find",
        "--results",
        str(results),
        "--images",
        str(tmp_path / "images"),
        "--occurrences",
        "6",
        "--workers",
        "1",
        "--quiet",
    ]
    assert rde_main([*common, "--output-dir", str(tmp_path / "by_folder")]) == 0
    assert "0 recurring boxes" in capsys.readouterr().out
    assert rde_main([*common, "--output-dir", str(tmp_path / "by_location"), "--cct", str(cct)]) == 0
    out = capsys.readouterr().out
    assert "2 recurring boxes" in out and "in 8 images of location_site1" in out
    [folder] = (tmp_path / "by_location").glob("filtering_*")
    cleaned = tmp_path / "clean.json"
    assert (
        rde_main(
            ["apply", "--results", str(results), "--filtering-dir", str(folder), "--output", str(cleaned), "--quiet"]
        )
        == 0
    )
    assert "removed 16 detections from 8 images" in capsys.readouterr().out
    assert all(boxes == [moving(int(f[-8:-4]))] for f, boxes in boxes_by_file(cleaned).items())
    with pytest.raises(SystemExit, match="--overwrite"):
        rde_main(["apply", "--results", str(results), "--filtering-dir", str(folder), "--output", str(cleaned)])
    with pytest.raises(SystemExit, match="filtering_"):
        rde_main(["apply", "--results", str(results), "--filtering-dir", str(tmp_path), "--output", "x.json"])
    with pytest.raises(SystemExit, match="--exclude"):
        rde_main([*common, "--output-dir", str(tmp_path / "x"), "--exclude", "unicorn"])


def test_cameras_by_folder_levels_group_the_cards_of_one_camera(tmp_path, capsys):
    # camera/card/IMG: cam1's two cards hold 4 frames each, below 6 per card but 8 per camera; cam2 has 4 in all.
    results = make_cards(tmp_path, {"cam1/card1": 4, "cam1/card2": 4, "cam2/card1": 4})
    common = [
        "find",
        "--results",
        str(results),
        "--images",
        str(tmp_path / "images"),
        "--occurrences",
        "6",
        "--workers",
        "1",
        "--quiet",
    ]
    assert rde_main([*common, "--output-dir", str(tmp_path / "by_card")]) == 0
    assert "0 recurring boxes" in capsys.readouterr().out
    assert rde_main([*common, "--output-dir", str(tmp_path / "by_camera"), "--folder-levels", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 recurring boxes" in out and "in 8 images of cam1" in out and "of cam2" not in out
    [folder] = (tmp_path / "by_camera").glob("filtering_*")
    cleaned = tmp_path / "clean.json"
    assert (
        rde_main(
            ["apply", "--results", str(results), "--filtering-dir", str(folder), "--output", str(cleaned), "--quiet"]
        )
        == 0
    )
    after = boxes_by_file(cleaned)
    assert all(after[f] == [moving(int(f[-8:-4]))] for f in after if f.startswith("cam1/"))  # both cards cleaned
    assert all(after[f] == [moving(int(f[-8:-4])), SLEEPER, ROCK] for f in after if f.startswith("cam2/"))  # untouched


def _tamper(folder: Path, edit) -> Path:
    """Rewrite the filtering folder's index through ``edit(index)``, as someone passing the folder on might."""
    index_file = folder / "detectionIndex.json"
    index = json.loads(index_file.read_text())
    edit(index)
    index_file.write_text(json.dumps(index))
    return index_file


def test_a_crafted_index_runs_no_code(tmp_path, capsys):
    results = make_cards(tmp_path, {"camA": 6})
    folder, _ = find_repeats(
        results, tmp_path / "images", tmp_path / "rde", RdeOptions(occurrences=5, workers=1, quiet=True)
    )
    marker = tmp_path / "marker"
    payload = {"py/reduce": [{"py/function": "builtins.open"}, {"py/tuple": [str(marker), "w"]}]}
    index_file = _tamper(folder, lambda index: index["options"].__setitem__("customDirNameFunction", payload))
    with pytest.raises(SystemExit) as error:
        rde_main(
            [
                "apply",
                "--results",
                str(results),
                "--filtering-dir",
                str(folder),
                "--output",
                str(tmp_path / "clean.json"),
                "--quiet",
            ]
        )
    assert not marker.exists()  # jsonpickle.decode would have called open(marker, "w")
    message = str(error.value)
    assert "\n" not in message and str(index_file) in message and "py/reduce" in message
    assert not (tmp_path / "clean.json").exists()


@pytest.mark.parametrize(
    "where, value, named",
    [
        ("options.py/object", "subprocess.Popen", "options"),
        ("options.py/newargs", {"py/tuple": [["touch", "x"]]}, "py/newargs"),
        ("options.filenameReplacements", {'json://{"py/reduce": []}': "x"}, "json://"),
        ("options.customDirNameFunction", {"py/object": "os.system"}, "'os.system'"),
        ("options.smartSort", {"py/repr": "os/os.system('touch x')"}, "py/repr"),
        ("options.smartSort", {"py/type": "builtins.eval"}, "py/type"),
        ("options.filenameReplacements", {"py/set": []}, "py/set"),
        ("detection.__class__", {"py/type": "builtins.dict"}, "'__class__'"),
        (
            "detection.instances",
            [{"py/object": "ropevit_det.camera_trap.postprocess.rde.CameraByLocation", "locations": {}}],
            "CameraByLocation",
        ),
        (
            "detection.sampleImageRelativeFileName",
            "../" * 2 + "etc/passwd",
            "tile",
        ),  # built: no sibling path in the clone
        ("options.filteredFileListToLoad", "/etc/passwd", "filteredFileListToLoad"),
    ],
)
def test_the_index_holds_only_what_the_find_step_writes(tmp_path, where, value, named):
    from ropevit_det.camera_trap.postprocess.rde_index import FilteringIndexError, read_filtering_index

    results = make_cards(tmp_path, {"camA": 6})
    folder, _ = find_repeats(
        results, tmp_path / "images", tmp_path / "rde", RdeOptions(occurrences=5, workers=1, quiet=True)
    )
    read_filtering_index(folder / "detectionIndex.json")  # MegaDetector's own index passes

    def edit(index):
        owner, key = where.split(".", 1)
        target = index["options"] if owner == "options" else index["suspicious_detections"][0][0]
        target[key] = value

    index_file = _tamper(folder, edit)
    with pytest.raises(FilteringIndexError, match=named) as error:
        apply_repeats(results, folder, tmp_path / "clean.json", quiet=True)
    assert str(index_file) in str(error.value)


@pytest.mark.parametrize("outside", ["../camA/IMG_0000.JPG", "/etc/passwd"])
def test_find_refuses_entries_outside_the_image_folder(tmp_path, outside):
    results = make_cards(tmp_path, {"camA": 6})
    data = json.loads(results.read_text())
    data["images"].append({**data["images"][0], "file": outside})
    results.write_text(json.dumps(data))
    with pytest.raises(SystemExit) as error:
        rde_main(
            [
                "find",
                "--results",
                str(results),
                "--images",
                str(tmp_path / "images"),
                "--output-dir",
                str(tmp_path / "rde"),
                "--occurrences",
                "5",
                "--workers",
                "1",
                "--quiet",
            ]
        )
    assert "\n" not in str(error.value) and repr(outside) in str(error.value)
    assert not (tmp_path / "rde").exists()


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n"), "cannot be read as JSON"),
        (lambda p: p.mkdir(), "cannot be read as JSON"),
        (lambda p: p.write_text("[]"), "lacks 'suspicious_detections'"),
    ],
)
def test_an_unreadable_index_is_one_line(tmp_path, make, named):
    results = make_cards(tmp_path, {"camA": 3})
    folder = tmp_path / "filtering_x"
    folder.mkdir()
    make(folder / "detectionIndex.json")
    if (folder / "detectionIndex.json").is_dir():  # apply asks for a file: a folder there is "not made by find"
        named = "filtering_"
    with pytest.raises(SystemExit, match=named) as error:
        rde_main(
            [
                "apply",
                "--results",
                str(results),
                "--filtering-dir",
                str(folder),
                "--output",
                str(tmp_path / "clean.json"),
            ]
        )
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_bytes(b"\x00\xff" * 50), "is not valid JSON"),
    ],
)
def test_an_unreadable_results_file_is_one_line(tmp_path, make, named):
    results = tmp_path / "results.json"
    make(results)
    with pytest.raises(SystemExit, match=named) as error:
        rde_main(["find", "--results", str(results), "--images", str(tmp_path), "--output-dir", str(tmp_path / "r")])
    assert str(results) in str(error.value) and "\n" not in str(error.value)


def test_find_with_blur_renders_tiles_from_blurred_copies(tmp_path, capsys):
    """``rde find --blur person``: a person standing in every frame of the camera is blurred in the tiles."""
    from tests.camera_trap.test_camtrap_blur import detail

    results = make_cards(tmp_path, {"camA": 6})
    person = [0.55, 0.05, 0.4, 0.4]
    data = json.loads(results.read_text())
    data["detection_categories"]["2"] = "person"
    for entry in data["images"]:
        entry["detections"].append({"category": "2", "conf": 0.9, "bbox": person})
    write_json(results, data)
    originals = {p: p.read_bytes() for p in (tmp_path / "images").rglob("*.JPG")}
    tiles = {}
    for blur in ("", "person"):
        assert (
            rde_main(
                [
                    "find",
                    "--results",
                    str(results),
                    "--images",
                    str(tmp_path / "images"),
                    "--output-dir",
                    str(tmp_path / f"rde_{blur or 'plain'}"),
                    "--occurrences",
                    "5",
                    "--workers",
                    "1",
                    "--quiet",
                    "--exclude",
                    "person",
                    *(["--blur", blur] if blur else []),
                ]
            )
            == 0
        )
        tiles[blur] = sorted(p for p in (tmp_path / f"rde_{blur or 'plain'}").glob("filtering_*/*.jpg"))
    assert {p: p.read_bytes() for p in (tmp_path / "images").rglob("*.JPG")} == originals
    assert len(tiles[""]) == len(tiles["person"]) >= 1
    for plain, blurred in zip(tiles[""], tiles["person"]):
        with Image.open(plain) as a, Image.open(blurred) as b:
            # MegaDetector's tile: crops of the recurring box on the left, the 160 x 120 frame on the right.
            left, (w, h) = a.width - 160, (160, 120)
            x, y, bw, bh = person
            inner = (left + (x + 0.25 * bw) * w, (y + 0.25 * bh) * h, left + (x + 0.75 * bw) * w, (y + 0.75 * bh) * h)
            assert detail(b, inner, factor=1) < detail(a, inner, factor=1) / 5
    assert "blurred_images" in {p.name for p in (tmp_path / "rde_person").iterdir()}
    with pytest.raises(SystemExit, match=r"--blur: \['people'\] are not detection categories"):
        rde_main(
            [
                "find",
                "--results",
                str(results),
                "--images",
                str(tmp_path / "images"),
                "--output-dir",
                str(tmp_path / "rde_x"),
                "--blur",
                "people",
                "--quiet",
            ]
        )
