"""Merging MegaDetector results files: refusals that name the files, the unprocessed-image report, a valid output."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ropevit_det.camera_trap.md_format import detection_entry, failure_entry, image_entry, make_info
from ropevit_det.camera_trap.merge import MergeError, merge_results
from ropevit_det.cli import merge as cli
from tests.camtrap_helpers import save_rgb, validate_md, write_json


def _results(path: Path, files: list[str], *, categories=None, detector="model.pth", classes=None) -> Path:
    images = [image_entry(f, [detection_entry("1", 0.8, [1, 2, 30, 40], 64, 48)]) for f in files]
    data = {"info": make_info(detector), "detection_categories": categories or {"1": "animal", "2": "person"},
            "images": images}
    if classes is not None:
        data["classification_categories"] = classes
    return write_json(path, data)


def test_merge_keeps_every_image_once_sorted_and_valid(tmp_path):
    a = _results(tmp_path / "a.json", ["cam2/b.jpg", "cam1/a.jpg"])
    b = _results(tmp_path / "b.json", ["cam3/c.jpg"], classes={"0": "Vulpes vulpes"})
    write_json(tmp_path / "c.json", {"info": make_info("model.pth"),
                                     "detection_categories": {"1": "animal", "2": "person"},
                                     "images": [failure_entry("cam0/broken.jpg", "cannot read image")]})
    merged = merge_results([a, b, tmp_path / "c.json"])
    assert [e["file"] for e in merged.data["images"]] == ["cam0/broken.jpg", "cam1/a.jpg", "cam2/b.jpg", "cam3/c.jpg"]
    assert merged.data["classification_categories"] == {"0": "Vulpes vulpes"}
    assert merged.sources["cam3/c.jpg"] == str(b)
    assert validate_md(merged.data)["errors"] == []


def test_merge_refuses_duplicates_and_conflicts_naming_the_files(tmp_path):
    a = _results(tmp_path / "a.json", ["x.jpg", "y.jpg"])
    b = _results(tmp_path / "b.json", ["y.jpg", "z.jpg"])
    with pytest.raises(MergeError, match=rf"y\.jpg \(in {a} and {b}\)"):
        merge_results([a, b])
    other = _results(tmp_path / "other.json", ["w.jpg"], categories={"1": "animal", "2": "vehicle"})
    with pytest.raises(MergeError, match=rf"detection_categories differ: {a} has .*, {other} has"):
        merge_results([a, other])
    species = _results(tmp_path / "s1.json", ["s.jpg"], classes={"0": "Vulpes vulpes"})
    species2 = _results(tmp_path / "s2.json", ["t.jpg"], classes={"0": "Canis lupus"})
    with pytest.raises(MergeError, match=f"classification_categories differ: {species}"):
        merge_results([species, species2])
    foreign = _results(tmp_path / "md.json", ["v.jpg"], detector="md_v5a.0.0.pt")
    with pytest.raises(MergeError, match=f"{foreign} was written by detector 'md_v5a.0.0.pt'"):
        merge_results([a, foreign])


def test_cli_reports_and_lists_unprocessed_images(tmp_path, caplog):
    card = tmp_path / "card"
    for name in ("a.jpg", "b.jpg", "c.jpg", "sub/d.jpg"):
        save_rgb(card / name, 4, 4)
    a = _results(tmp_path / "a.json", ["a.jpg"])
    b = _results(tmp_path / "b.json", ["sub/d.jpg"])
    out, todo = tmp_path / "merged.json", tmp_path / "todo.txt"
    with caplog.at_level("INFO"):
        assert cli.main([str(a), str(b), "--output", str(out), "--input", str(card), "--unprocessed-list",
                         str(todo)]) == 0
    assert "2 of 4 input images are in no results file, e.g. b.jpg, c.jpg" in caplog.text
    assert todo.read_text().splitlines() == [str(card.resolve() / "b.jpg"), str(card.resolve() / "c.jpg")]
    assert validate_md(out)["errors"] == [] and len(json.loads(out.read_text())["images"]) == 2
    with pytest.raises(SystemExit, match="pass --overwrite"):
        cli.main([str(a), "--output", str(out)])
    with pytest.raises(SystemExit, match="cannot merge: .*a.json and .*a.json"):
        cli.main([str(a), str(a), "--output", str(tmp_path / "again.json")])
