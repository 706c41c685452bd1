"""The camera-trap config for CPUs (``camera_trap/ropevit_faster_rcnn_cct_windowed.yaml``): the camera-trap recipe
with ViTDet-B's attention layout, carried into the model and kept by the int8 CPU backend.
(Every zoo config builds: tests/modeling/test_modeling_detectron2.py::test_every_config_builds.)"""

from __future__ import annotations

import torch
from detectron2.modeling import build_model

from ropevit_det import model_zoo
from ropevit_det.export.cpu_backend import cpu_detector
from ropevit_det.modeling.rope_vit import RoPEAttention, RoPEViT
from tests.conftest import tiny_cfg

WINDOWED = "camera_trap/ropevit_faster_rcnn_cct_windowed.yaml"


def test_windowed_config_is_the_camera_trap_recipe_with_vitdet_b_windows() -> None:
    cfg = model_zoo.get_config(WINDOWED)
    assert cfg.MODEL.ROPE_VIT.WINDOW_SIZE == 14 and list(cfg.MODEL.ROPE_VIT.GLOBAL_BLOCKS) == [2, 5, 8, 11]
    # Only the attention layout differs from the camera-trap recipe.
    cfg.MODEL.ROPE_VIT.WINDOW_SIZE, cfg.MODEL.ROPE_VIT.GLOBAL_BLOCKS = 0, []
    assert cfg.dump() == model_zoo.get_config("camera_trap/ropevit_faster_rcnn_cct.yaml").dump()


def test_int8_backend_keeps_the_windowed_layout_and_detects() -> None:
    cfg = tiny_cfg(
        model_zoo.get_config_file(WINDOWED),
        ["MODEL.ROPE_VIT.WINDOW_SIZE", "3", "INPUT.MIN_SIZE_TEST", "112", "INPUT.MAX_SIZE_TEST", "160"],
    )
    detector = cpu_detector("int8", build_model(cfg).eval(), cfg)
    (vit,) = [m for m in detector.model.modules() if isinstance(m, RoPEViT)]
    assert [m.window_size for m in vit.encoder.modules() if isinstance(m, RoPEAttention)] == [3, 0]
    quantized = [
        m
        for m in vit.encoder.modules()
        if type(m).__module__.startswith("torch.ao.nn.quantized")
        or type(getattr(m, "weight", None)).__module__.startswith("torchao.")
    ]  # either int8 engine
    assert quantized, "the int8 backend quantized nothing"
    image = torch.randint(0, 256, (3, 120, 150), dtype=torch.uint8)
    (out,) = detector([{"image": image, "height": 120, "width": 150}])
    assert out.image_size == (120, 150)
