"""The pre-flight check of COCO-format datasets and their registration with detectron2."""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.build import get_detection_dataset_dicts

from ropevit_det.data import DatasetError, register_coco_dataset, validate_coco_dataset
from tests.data_helpers import CAMTRAP_DIR, tiny_coco, unique_name, write_coco


def _error_message(tmp_path, coco: dict[str, Any], for_training: bool = True, create_images: bool = True) -> str:
    json_file, image_root = write_coco(tmp_path, coco, create_images=create_images)
    with pytest.raises(DatasetError) as excinfo:
        validate_coco_dataset(json_file, image_root, for_training=for_training)
    return str(excinfo.value)


def test_valid_dataset_passes(tmp_path):
    json_file, image_root = write_coco(tmp_path, tiny_coco())
    validate_coco_dataset(json_file, image_root, for_training=True)
    validate_coco_dataset(str(json_file), str(image_root), for_training=False)


def test_missing_json_names_path_and_fix(tmp_path):
    missing = tmp_path / "nope" / "train.json"
    with pytest.raises(DatasetError, match="not found") as excinfo:
        validate_coco_dataset(missing, tmp_path, for_training=True)
    assert str(missing) in str(excinfo.value)
    # The library says which set it is; only the command line knows which options gave the paths.
    assert excinfo.value.argument == "training" and "--" not in str(excinfo.value)
    with pytest.raises(DatasetError) as excinfo:
        validate_coco_dataset(missing, tmp_path, for_training=False)
    assert excinfo.value.argument == "evaluation"


def test_command_line_adds_the_options_to_the_message(tmp_path):
    import argparse

    from ropevit_det.cli.train_data import register_cli_datasets
    from tests.conftest import CONFIGS, tiny_cfg

    missing = tmp_path / "nope" / "val.json"
    args = argparse.Namespace(train_json=None, train_images=None, val_json=str(missing), val_images=str(tmp_path))
    cfg = tiny_cfg(CONFIGS / "quick_schedules" / "ropevit_mrcnn_instant_test.yaml")
    with pytest.raises(
        SystemExit, match=f"ERROR: --val-json / --val-images: COCO annotation file not found: {missing}"
    ):
        register_cli_datasets(args, cfg)


def test_malformed_json_reports_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "images": [],\n  "annotations": [,]\n}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"not valid JSON") as excinfo:
        validate_coco_dataset(bad, tmp_path, for_training=True)
    assert "line 3, column 19" in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)  # callers may catch ValueError


def test_missing_images_counted_and_first_five_listed(tmp_path):
    coco = tiny_coco(num_images=8)
    json_file, image_root = write_coco(tmp_path, coco)
    for img in coco["images"][1:]:  # keep only img_0.png
        (image_root / img["file_name"]).unlink()
    with pytest.raises(DatasetError) as excinfo:
        validate_coco_dataset(json_file, image_root, for_training=True)
    msg = str(excinfo.value)
    assert "7 of 8 image files are missing" in msg
    listed = re.findall(r"img_(\d)\.png", msg)
    assert listed == ["1", "2", "3", "4", "5"] and "and 2 more" in msg  # the first five, sorted
    assert str(image_root) in msg and "the 'file_name' entries are relative to" in msg


def test_missing_image_folder_is_one_problem(tmp_path):
    json_file, _ = write_coco(tmp_path, tiny_coco())
    msg = ""
    with pytest.raises(DatasetError) as excinfo:
        validate_coco_dataset(json_file, tmp_path / "no_such_dir", for_training=False)
    msg = str(excinfo.value)
    assert "image folder does not exist" in msg and "1 problem(s)" in msg


def _set(ann_index: int, key: str, value: Any) -> Callable[[dict], None]:
    def mutate(coco: dict) -> None:
        coco["annotations"][ann_index][key] = value

    return mutate


# name: (mutation of tiny_coco(), for_training, substrings the message must hold)
BAD_ANNOTATION_CASES = {
    "negative_box": (
        _set(1, "bbox", [5, 5, -3, 10]),
        True,
        ["1 of 4 annotations have a box with negative width", "annotation ids: 2", "[x1, y1, x2, y2]"],
    ),
    "zero_box": (
        _set(2, "bbox", [5, 5, 10, 0]),
        True,
        ["1 of 4 annotations have a zero-size box", "annotation ids: 3"],
    ),
    "malformed_box": (_set(0, "bbox", [5, 5, 10]), True, ["no valid 'bbox'", "annotation ids: 1"]),
    "nan_in_box": (_set(0, "bbox", [5, 5, float("nan"), 3]), True, ["no valid 'bbox'"]),
    "dangling_image_id": (
        _set(3, "image_id", 999),
        True,
        ["image_id that is not the id of any entry in 'images'", "ids: 999"],
    ),
    "dangling_category_id": (
        _set(0, "category_id", 5),
        True,
        ["category_id that is not the id of any entry in 'categories'", "ids: 5"],
    ),
    "ignore_flag": (_set(0, "ignore", 1), False, ["'ignore': 1", "iscrowd"]),
    "bad_polygon": (_set(0, "segmentation", [[1, 2, 3, 4]]), False, ["without any valid polygon"]),
    "duplicate_ann_id": (_set(1, "id", 1), False, ["annotation ids occur more than once", "renumber"]),
}


@pytest.mark.parametrize("case", sorted(BAD_ANNOTATION_CASES))
def test_bad_annotation_yields_clear_message(tmp_path, case):
    mutate, for_training, expected = BAD_ANNOTATION_CASES[case]
    coco = tiny_coco()
    mutate(coco)
    msg = _error_message(tmp_path, coco, for_training=for_training)
    for text in expected:
        assert text in msg, f"{text!r} not in:\n{msg}"
    assert "1 problem(s)" in msg and "Fix:" in msg


def test_many_dangling_ids_are_counted_and_truncated(tmp_path):
    coco = tiny_coco(num_images=5)
    for i, ann in enumerate(coco["annotations"]):
        ann["category_id"] = 100 + i
    msg = _error_message(tmp_path, coco)
    assert "8 of 8 annotations have a category_id" in msg
    assert "100, 101, 102, 103, 104 and 3 more" in msg and "105" not in msg


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(images=[], annotations=[]), "training set has no images"),
        (lambda c: c.update(annotations=[]), "training set has no annotations to learn from"),
        (lambda c: [a.update(iscrowd=1) for a in c["annotations"]], "training set has no annotations to learn from"),
        (lambda c: c.pop("annotations"), "top-level 'annotations' is missing"),
    ],
    ids=["no_images", "no_annotations", "only_crowd", "annotations_key_missing"],
)
def test_empty_training_set(tmp_path, mutate, expected):
    coco = tiny_coco()
    mutate(coco)
    assert expected in _error_message(tmp_path, coco, for_training=True)


def test_evaluation_set_may_lack_annotations_but_not_images(tmp_path):
    coco = tiny_coco()
    coco.pop("annotations")  # a test-dev style file: only predictions are written
    json_file, image_root = write_coco(tmp_path / "a", coco)
    validate_coco_dataset(json_file, image_root, for_training=False)
    coco = tiny_coco()
    coco["images"], coco["annotations"] = [], []
    assert "evaluation set has no images" in _error_message(tmp_path / "b", coco, for_training=False)


def test_all_problems_reported_at_once(tmp_path):
    coco = tiny_coco(num_images=4)
    coco["annotations"][0]["bbox"] = [0, 0, -1, 5]
    coco["annotations"][1]["image_id"] = 42
    coco["images"].append({"id": 5, "file_name": "never_written.png", "width": 64, "height": 64})
    json_file, image_root = write_coco(tmp_path, coco)
    (image_root / "never_written.png").unlink()
    with pytest.raises(DatasetError) as excinfo:
        validate_coco_dataset(json_file, image_root, for_training=True)
    msg = str(excinfo.value)
    assert "3 problem(s)" in msg
    assert "1 of 5 image files are missing" in msg and "never_written.png" in msg
    assert "negative width" in msg and "ids: 42" in msg


def test_noncontiguous_category_ids_map_through_metadata(tmp_path):
    coco = tiny_coco()  # categories listed as 12, 3, 7; annotations use 7 and 12
    json_file, image_root = write_coco(tmp_path, coco)
    name = unique_name("noncontig")
    meta = register_coco_dataset(name, json_file, image_root)
    # Known before the dataset is loaded (NUM_CLASSES and the evaluator need it early).
    assert meta.thing_classes == ["three", "seven", "twelve"]
    assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1, 12: 2}
    assert meta.evaluator_type == "coco" and meta.json_file == str(json_file)

    records = DatasetCatalog.get(name)  # detectron2 sets the same metadata again: must not conflict
    by_box = {(r["image_id"], tuple(a["bbox"])): a["category_id"] for r in records for a in r["annotations"]}
    for ann in coco["annotations"]:
        assert by_box[(ann["image_id"], tuple(ann["bbox"]))] == {3: 0, 7: 1, 12: 2}[ann["category_id"]]
    assert MetadataCatalog.get(name).thing_classes == ["three", "seven", "twelve"]


def test_images_without_annotations_kept_for_evaluation(tmp_path):
    coco = tiny_coco(num_images=4)
    json_file, image_root = write_coco(tmp_path, coco)
    name = unique_name("with_empty")
    register_coco_dataset(name, json_file, image_root)
    records = DatasetCatalog.get(name)
    assert [r["image_id"] for r in records] == [1, 2, 3, 4]
    assert [len(r["annotations"]) for r in records] == [2, 2, 2, 0]
    # Training drops them only through detectron2's own switch (DATALOADER.FILTER_EMPTY_ANNOTATIONS).
    assert len(get_detection_dataset_dicts([name], filter_empty=False)) == 4
    assert len(get_detection_dataset_dicts([name], filter_empty=True)) == 3


def test_register_twice(tmp_path):
    json_file, image_root = write_coco(tmp_path, tiny_coco())
    name = unique_name("twice")
    first = register_coco_dataset(name, json_file, image_root)
    assert register_coco_dataset(name, str(json_file), str(image_root)) is first  # same files: no-op
    other_json, other_root = write_coco(tmp_path / "other", tiny_coco())
    with pytest.raises(ValueError, match="already registered"):
        register_coco_dataset(name, other_json, other_root)


def test_camtrap_mini_validates_and_registers():
    json_file, image_root = CAMTRAP_DIR / "annotations.json", CAMTRAP_DIR / "images"
    validate_coco_dataset(json_file, image_root, for_training=True)
    name = unique_name("camtrap_mini")
    meta = register_coco_dataset(name, json_file, image_root)
    assert meta.thing_classes == ["animal"]
    records = DatasetCatalog.get(name)
    assert len(records) == 21
    empty = sorted(r["file_name"].rsplit("/", 1)[-1] for r in records if not r["annotations"])
    assert empty == ["speciesnet_blank.jpg", "speciesnet_blank2.jpg", "speciesnet_blank3.jpg"]
    assert sum(len(r["annotations"]) for r in records) == 18


def test_camtrap_original_cct_file_reports_unresolved_image_paths():
    # The real-world COCO Camera Traps file: string ids, a prefix in file_name that does not match the folder.
    with pytest.raises(DatasetError) as excinfo:
        validate_coco_dataset(CAMTRAP_DIR / "serengeti_cct_original.json", CAMTRAP_DIR / "images", for_training=False)
    msg = str(excinfo.value)
    assert "1 problem(s)" in msg  # string ids and category 0 are fine; only the paths are wrong
    assert "4 of 4 image files are missing" in msg
    assert "models/research/object_detection/test_images/snapshot_serengeti/S1_E03_R3_PICT0038.jpeg" in msg
