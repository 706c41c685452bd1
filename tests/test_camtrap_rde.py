"""``ropevit-det rde find|apply``: MegaDetector's repeat-detection elimination on our results."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ropevit_det.camera_trap.results.writer import ResultsWriter
from ropevit_det.camera_trap.results.md_format import image_entry, make_info
from ropevit_det.camera_trap.postprocess.rde import RdeOptions, apply_repeats, find_repeats
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
                writer.add(image_entry(rel, [{"category": "1", "conf": 0.5, "bbox": ROCK},
                                             {"category": "1", "conf": 0.7, "bbox": SLEEPER},
                                             {"category": "1", "conf": 0.8, "bbox": moving(k)}]))
    return results


def boxes_by_file(path: Path) -> dict[str, list[list[float]]]:
    return {e["file"]: [d["bbox"] for d in e["detections"]] for e in json.loads(path.read_text())["images"]}


def test_static_boxes_are_flagged_and_a_deleted_tile_is_kept(tmp_path):
    results = make_cards(tmp_path, {"camA": 8, "camB": 3})
    folder, suspicious = find_repeats(results, tmp_path / "images", tmp_path / "rde",
                                      RdeOptions(occurrences=5, workers=1, quiet=True))
    # camA repeats the rock and the sleeper in 8 frames; camB's 3 frames are below 5; the moving box never repeats.
    assert sorted((s.camera, s.bbox, s.images) for s in suspicious) == [
        ("camA", tuple(ROCK), 8), ("camA", tuple(SLEEPER), 8)]
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
    cct = write_json(tmp_path / "cct.json", {
        "images": [{"id": i, "file_name": f"survey/{f}", "location": "site1"} for i, f in enumerate(files)],
        "annotations": [], "categories": [{"id": 1, "name": "animal"}]})
    common = ["find", "--results", str(results), "--images", str(tmp_path / "images"), "--occurrences", "6",
              "--workers", "1", "--quiet"]
    assert rde_main([*common, "--output-dir", str(tmp_path / "by_folder")]) == 0
    assert "0 recurring boxes" in capsys.readouterr().out
    assert rde_main([*common, "--output-dir", str(tmp_path / "by_location"), "--cct", str(cct)]) == 0
    out = capsys.readouterr().out
    assert "2 recurring boxes" in out and "in 8 images of location_site1" in out
    [folder] = (tmp_path / "by_location").glob("filtering_*")
    cleaned = tmp_path / "clean.json"
    assert rde_main(["apply", "--results", str(results), "--filtering-dir", str(folder), "--output", str(cleaned),
                     "--quiet"]) == 0
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
    common = ["find", "--results", str(results), "--images", str(tmp_path / "images"), "--occurrences", "6",
              "--workers", "1", "--quiet"]
    assert rde_main([*common, "--output-dir", str(tmp_path / "by_card")]) == 0
    assert "0 recurring boxes" in capsys.readouterr().out
    assert rde_main([*common, "--output-dir", str(tmp_path / "by_camera"), "--folder-levels", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 recurring boxes" in out and "in 8 images of cam1" in out and "of cam2" not in out
    [folder] = (tmp_path / "by_camera").glob("filtering_*")
    cleaned = tmp_path / "clean.json"
    assert rde_main(["apply", "--results", str(results), "--filtering-dir", str(folder), "--output", str(cleaned),
                     "--quiet"]) == 0
    after = boxes_by_file(cleaned)
    assert all(after[f] == [moving(int(f[-8:-4]))] for f in after if f.startswith("cam1/"))  # both cards cleaned
    assert all(after[f] == [moving(int(f[-8:-4])), SLEEPER, ROCK] for f in after if f.startswith("cam2/"))  # untouched
