"""The synthetic shapes dataset of the demo: deterministic, COCO-valid, annotations that match the pixels."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter

import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from PIL import Image
from pycocotools.coco import COCO

from ropevit_det.data import SHAPE_CLASSES, generate_shapes_dataset, register_coco_dataset, validate_coco_dataset
from tests.data_helpers import unique_name

NUM_TRAIN, NUM_VAL, SIZE = 12, 4, 128


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("shapes") / "ds"
    return generate_shapes_dataset(out_dir, NUM_TRAIN, NUM_VAL, seed=3, image_size=SIZE)


def _pixels(folder) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def _coco(json_file) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(json_file))


def test_same_seed_same_bytes_and_pixels(shapes, tmp_path):
    again = generate_shapes_dataset(tmp_path / "again", NUM_TRAIN, NUM_VAL, seed=3, image_size=SIZE)
    for split in ("train", "val"):
        assert again[f"{split}_json"].read_bytes() == shapes[f"{split}_json"].read_bytes()
        a, b = _pixels(again[f"{split}_images"]), _pixels(shapes[f"{split}_images"])
        assert list(a) == list(b) and len(a) == {"train": NUM_TRAIN, "val": NUM_VAL}[split]
        assert all(np.array_equal(a[k], b[k]) for k in a)
    other = generate_shapes_dataset(tmp_path / "other", NUM_TRAIN, NUM_VAL, seed=4, image_size=SIZE)
    assert other["train_json"].read_bytes() != shapes["train_json"].read_bytes()


def test_train_and_val_differ(shapes):
    train, val = _pixels(shapes["train_images"]), _pixels(shapes["val_images"])
    assert not np.array_equal(train["000000.png"], val["000000.png"])


def test_coco_valid_and_registers(shapes):
    for split in ("train", "val"):
        validate_coco_dataset(shapes[f"{split}_json"], shapes[f"{split}_images"], for_training=True)
    name = unique_name("shapes_train")
    meta = register_coco_dataset(name, shapes["train_json"], shapes["train_images"])
    assert meta.thing_classes == list(SHAPE_CLASSES)
    records = DatasetCatalog.get(name)
    assert len(records) == NUM_TRAIN
    assert all(1 <= len(r["annotations"]) <= 4 for r in records)
    data = json.loads(shapes["train_json"].read_text())
    assert "SYNTHETIC" in data["info"]["description"]
    assert set(Counter(a["category_id"] for a in data["annotations"])) == {1, 2, 3}


def test_boxes_masks_and_pixels_agree(shapes):
    coco = _coco(shapes["train_json"])
    for image_id, img in coco.imgs.items():
        pixels = np.asarray(Image.open(shapes["train_images"] / img["file_name"])).astype(np.float32)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        union = np.zeros((img["height"], img["width"]), dtype=np.int32)
        for ann in anns:
            mask = coco.annToMask(ann).astype(bool)
            union += mask
            ys, xs = np.nonzero(mask)
            # The box is the mask's pixel extent, the area its pixel count.
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            assert min(ann["bbox"][2:]) >= 20 and ann["area"] == mask.sum()
            # The annotated polygon is the shape (the mask is its raster), not merely close to the box.
            polygon = np.array(ann["segmentation"][0]).reshape(-1, 2)
            assert len(polygon) == {1: 32, 2: 4, 3: 3}[ann["category_id"]]
            # The painted shape is there: its dominant channel is the class's hue family (R, G, B).
            mean_rgb = pixels[mask].mean(axis=0)
            assert int(np.argmax(mean_rgb)) == ann["category_id"] - 1, (img["file_name"], ann["id"], mean_rgb)
        assert union.max() <= 1  # shapes never overlap, so every mask is fully visible


def test_second_call_is_a_no_op_and_other_params_rebuild(tmp_path):
    out = tmp_path / "ds"
    first = generate_shapes_dataset(out, 3, 2, seed=0, image_size=96)
    stamp = first["train_json"].stat().st_mtime_ns
    assert generate_shapes_dataset(out, 3, 2, seed=0, image_size=96) == first
    assert first["train_json"].stat().st_mtime_ns == stamp
    rebuilt = generate_shapes_dataset(out, 5, 2, seed=0, image_size=96)
    assert len(list(rebuilt["train_images"].glob("*.png"))) == 5
    assert len(json.loads(rebuilt["train_json"].read_text())["images"]) == 5
    assert not list(tmp_path.glob(".ds.tmp-*"))  # no temporary folder left behind


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("user data")
    with pytest.raises(ValueError, match="not written by generate_shapes_dataset"):
        generate_shapes_dataset(tmp_path, 2, 1)
    assert (tmp_path / "precious.txt").read_text() == "user data"
