"""COCO Camera Traps loading and detectron2 registration, on the real sample files and on made-up edge cases."""

from __future__ import annotations

import logging

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from pycocotools.coco import COCO

from ropevit_det.camera_trap.data.cct import (
    image_size_from_header,
    load_cct_dataset,
    register_cct_dataset,
    write_coco_gt_json,
)
from ropevit_det.camera_trap.data.cct_paths import resolve_image_paths
from tests.camtrap_helpers import (
    MINI_COCO,
    MINI_IMAGES,
    SERENGETI_CCT,
    SERENGETI_PREFIX,
    save_exif_rotated_jpeg,
    save_rgb,
    unique_name,
    write_json,
)


def test_original_serengeti_file_without_path_rewrite_names_the_problem():
    with pytest.raises(FileNotFoundError) as err:
        load_cct_dataset(SERENGETI_CCT, MINI_IMAGES)
    message = str(err.value)
    assert "none of the 4 images" in message
    assert SERENGETI_PREFIX + "/S1_E03_R3_PICT0038.jpeg" in message
    # The local files are serengeti_<basename>: the error should point at add_prefix.
    assert "add_prefix='serengeti_'" in message


def test_original_serengeti_file_loads_with_prefix_rewrite():
    result = load_cct_dataset(SERENGETI_CCT, MINI_IMAGES, strip_prefix=SERENGETI_PREFIX, add_prefix="serengeti_")
    dicts = result.dicts
    assert len(dicts) == 4
    first = dicts[0]
    # String ids with slashes survive; detectron2 gets integer ids.
    assert first["cct_image_id"] == "S1/E03/E03_R3/S1_E03_R3_PICT0038"
    assert [d["image_id"] for d in dicts] == [1, 2, 3, 4]
    assert first["file_name"].endswith("images/serengeti_S1_E03_R3_PICT0038.jpeg")
    assert (first["width"], first["height"]) == (2048, 1536)
    assert (first["seq_id"], first["frame_num"], first["seq_num_frames"], first["location"]) == (
        "ASG0003041",
        0,
        2,
        "E03",
    )
    assert first["datetime"] == "2010-08-07 01:04:14"  # from date_captured
    # Species mode: the file's 49 categories minus "empty"; category 29 is hippopotamus.
    assert len(result.thing_classes) == 48 and "empty" not in result.thing_classes
    ann = first["annotations"][0]
    assert result.thing_classes[ann["category_id"]] == "hippopotamus"
    assert result.dataset_id_to_contiguous_id[29] == ann["category_id"]
    assert ann["bbox_mode"] == BoxMode.XYWH_ABS
    assert ann["bbox"] == pytest.approx([614.9233639240294, 476.2385201454182, 685.5741333961523, 374.18740868568574])


def test_original_serengeti_file_in_megadetector_mode_is_animal():
    result = load_cct_dataset(
        SERENGETI_CCT, MINI_IMAGES, class_mode="megadetector", strip_prefix=SERENGETI_PREFIX, add_prefix="serengeti_"
    )
    assert result.thing_classes == ["animal", "person", "vehicle"]
    assert result.dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2}
    assert {a["category_id"] for d in result.dicts for a in d["annotations"]} == {0}


def test_plain_coco_sample_keeps_empty_frames_for_evaluation_only_when_asked():
    kept = load_cct_dataset(MINI_COCO, MINI_IMAGES, class_mode="megadetector")
    assert len(kept.dicts) == 21
    empty = [d for d in kept.dicts if d["is_empty"]]
    assert sorted(d["cct_file_name"] for d in empty) == [
        "speciesnet_blank.jpg",
        "speciesnet_blank2.jpg",
        "speciesnet_blank3.jpg",
    ]
    assert all(d["annotations"] == [] for d in empty)
    dropped = load_cct_dataset(MINI_COCO, MINI_IMAGES, class_mode="megadetector", keep_empty=False)
    assert len(dropped.dicts) == 18 and dropped.counts["empty_dropped"] == 3


def test_registration_keeps_empties_for_evaluation_and_writes_coco_gt(tmp_path):
    train, val = unique_name("cct_train"), unique_name("cct_val")
    register_cct_dataset(train, MINI_COCO, MINI_IMAGES, class_mode="megadetector", keep_empty_for_training=False)
    register_cct_dataset(
        val, MINI_COCO, MINI_IMAGES, class_mode="megadetector", keep_empty_for_training=False, for_evaluation=True
    )
    assert len(DatasetCatalog.get(train)) == 18
    assert len(DatasetCatalog.get(val)) == 21
    meta = MetadataCatalog.get(val)
    assert meta.thing_classes == ["animal", "person", "vehicle"]
    assert meta.evaluator_type == "coco"
    assert not hasattr(meta, "json_file")  # COCOEvaluator must convert the dicts, not read the CCT file
    gt_path = write_coco_gt_json(val, tmp_path / "val_coco.json")
    coco = COCO(str(gt_path))
    assert len(coco.getImgIds()) == 21 and len(coco.getAnnIds()) == 18
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {1: "animal", 2: "person", 3: "vehicle"}
    assert {a["category_id"] for a in coco.loadAnns(coco.getAnnIds())} == {1}


@pytest.fixture
def edge_case_cct(tmp_path):
    """A CCT file with the habits of real ones, over images made here."""
    root = tmp_path / "imgs"
    save_rgb(root / "cam1/a.jpg", 64, 48)
    save_rgb(root / "cam1/b.jpg", 64, 48)
    save_rgb(root / "cam2/c.jpg", 64, 48)
    save_exif_rotated_jpeg(root / "cam2/rotated.jpg", stored_w=40, stored_h=20)
    save_rgb(root / "cam2/d.jpg", 64, 48)
    save_rgb(root / "cam2/e.jpg", 64, 48)
    cct = {
        "info": {"version": "1"},
        "categories": [
            {"id": 0, "name": "empty"},
            {"id": 1, "name": "human"},
            {"id": 5, "name": "Red Fox"},
            {"id": 9, "name": "car"},
            {"id": 11, "name": "fire"},
        ],
        "images": [
            # Paths from another machine, with backslashes; no width/height for most.
            {"id": "site/cam1/a", "file_name": "D:\\survey\\cam1\\a.jpg", "location": "cam1", "seq_id": "s1"},
            {
                "id": "site/cam1/b",
                "file_name": "D:\\survey\\cam1\\b.jpg",
                "location": "cam1",
                "seq_id": "s1",
                "width": 64,
                "height": 48,
            },
            {"id": "site/cam2/c", "file_name": "D:\\survey\\cam2\\c.jpg", "location": 2, "datetime": "2020-01-01"},
            {"id": "site/cam2/rot", "file_name": "D:\\survey\\cam2\\rotated.jpg", "location": 2},
            {"id": "site/cam2/d", "file_name": "D:\\survey\\cam2\\d.jpg", "location": 2},
            {"id": "site/cam2/e", "file_name": "D:\\survey\\cam2\\e.jpg", "location": 2},
            {"id": "site/cam3/missing", "file_name": "D:\\survey\\cam3\\missing.jpg", "location": 3},
        ],
        "annotations": [
            {"id": "1", "image_id": "site/cam1/a", "category_id": 5, "bbox": [1, 2, 10, 12]},
            {"id": "2", "image_id": "site/cam1/a", "category_id": 5},  # image-level duplicate of the box
            {"id": "3", "image_id": "site/cam1/b", "category_id": 0},  # empty
            {"id": "4", "image_id": "site/cam2/c", "category_id": 5},  # fox, no box: unusable for detection
            {"id": "5", "image_id": "site/cam2/rot", "category_id": 1, "bbox": [2, 2, 5, 5]},
            {"id": "6", "image_id": "site/cam2/d", "category_id": 11, "bbox": [0, 0, 4, 4]},  # ignored class
            {"id": "7", "image_id": "site/cam2/e", "category_id": 9, "bbox": [3, 3, 0, 5]},  # degenerate box
            {"id": "8", "image_id": "site/cam2/e", "category_id": 9, "bbox": [3, 3, 6, 5]},
        ],
    }
    mapping = write_json(tmp_path / "mapping.json", {"fire": "ignore", "Red fox": "animal"})
    return write_json(tmp_path / "cct.json", cct), root, mapping


def test_edge_cases_kinds_sizes_and_mapping(edge_case_cct, caplog):
    cct_file, root, mapping = edge_case_cct
    with caplog.at_level(logging.WARNING):
        result = load_cct_dataset(
            cct_file, root, class_mode="megadetector", mapping_file=mapping, strip_prefix="D:/survey"
        )
    by_id = {d["cct_image_id"]: d for d in result.dicts}
    assert sorted(by_id) == ["site/cam1/a", "site/cam1/b", "site/cam2/e", "site/cam2/rot"]
    assert result.counts["unboxed"] == 1 and result.counts["ignored"] == 1
    assert result.counts["degenerate_boxes"] == 1 and result.counts["unmatched"] == 1
    assert "missing.jpg" in caplog.text  # the unmatched file is named in the warning
    # Missing sizes come from the header; the EXIF-rotated image reports its displayed size.
    assert (by_id["site/cam1/a"]["width"], by_id["site/cam1/a"]["height"]) == (64, 48)
    assert (by_id["site/cam2/rot"]["width"], by_id["site/cam2/rot"]["height"]) == (20, 40)
    assert by_id["site/cam1/b"]["is_empty"] and by_id["site/cam1/b"]["seq_id"] == "s1"
    # Classes: fox -> animal (0), human -> person (1), car -> vehicle (2).
    assert [a["category_id"] for a in by_id["site/cam1/a"]["annotations"]] == [0]
    assert [a["category_id"] for a in by_id["site/cam2/rot"]["annotations"]] == [1]
    assert [a["category_id"] for a in by_id["site/cam2/e"]["annotations"]] == [2]
    assert by_id["site/cam2/e"]["location"] == "2"  # integer locations become strings


def test_species_mode_and_unknown_mode(edge_case_cct):
    cct_file, root, _ = edge_case_cct
    result = load_cct_dataset(cct_file, root, strip_prefix="D:/survey")
    assert result.thing_classes == ["human", "Red Fox", "car", "fire"]
    with pytest.raises(ValueError, match="class_mode"):
        load_cct_dataset(cct_file, root, class_mode="genus")


def test_basename_matching_prefers_shared_parent_folders(tmp_path):
    for cam in ("cam1", "cam2"):
        save_rgb(tmp_path / "local" / cam / "IMG_0001.JPG", 8, 8)
    save_rgb(tmp_path / "local" / "cam2" / "IMG_0002.JPG", 8, 8)
    names = ["server/x/cam2/IMG_0001.JPG", "server/x/IMG_0002.JPG", "server/IMG_0001.JPG"]
    found, report = resolve_image_paths(names, tmp_path / "local")
    assert found[names[0]] == tmp_path / "local/cam2/IMG_0001.JPG"  # the parent folder decides
    assert found[names[1]] == tmp_path / "local/cam2/IMG_0002.JPG"  # unique file name
    assert report.ambiguous == [names[2]]  # two IMG_0001.JPG, no parent to tell them apart
    _, strict = resolve_image_paths(names, tmp_path / "local", match_basename=False)
    assert strict.matched == 0 and len(strict.unmatched) == 3


def test_header_size_follows_exif_orientation(tmp_path):
    path = save_exif_rotated_jpeg(tmp_path / "r.jpg", stored_w=30, stored_h=10)
    assert image_size_from_header(path) == (10, 30)
