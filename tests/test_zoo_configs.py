"""Every yacs config in the zoo loads (unknown keys fail) and builds a model that runs, at tiny depth; the
camera-trap windowed config carries ViTDet-B's attention layout into the model and into the int8 CPU backend."""
from __future__ import annotations

import pytest
import torch
from detectron2.modeling import build_model

from ropevit_det import model_zoo
from ropevit_det.export.cpu_backend import cpu_detector
from ropevit_det.modeling.rope_vit import RoPEAttention, RoPEViT

YAML_CONFIGS = [name for name in model_zoo.available_configs() if name.endswith(".yaml")]
# A 2-block, 64-wide ViT with thin heads; block 1 stays global where a config windows the others.
TINY = ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "MODEL.ROPE_VIT.DEPTH", "2", "MODEL.ROPE_VIT.EMBED_DIM", "64",
        "MODEL.ROPE_VIT.NUM_HEADS", "2", "MODEL.ROPE_VIT.MLP_DIM", "128", "MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE", "56",
        "MODEL.SFP.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.CONV_DIM", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64",
        "MODEL.ROI_MASK_HEAD.CONV_DIM", "32", "MODEL.RPN.POST_NMS_TOPK_TEST", "50", "MODEL.SFP.SQUARE_PAD", "0",
        "INPUT.MIN_SIZE_TEST", "112", "INPUT.MAX_SIZE_TEST", "160"]
WINDOWED = "camera_trap/ropevit_faster_rcnn_cct_windowed.yaml"


def tiny_config(name: str):
    cfg = model_zoo.get_config(name, TINY)
    if cfg.MODEL.ROPE_VIT.WINDOW_SIZE:
        cfg.MODEL.ROPE_VIT.GLOBAL_BLOCKS = [1]
        cfg.MODEL.ROPE_VIT.WINDOW_SIZE = 3
    return cfg


def test_the_zoo_has_yaml_configs() -> None:
    assert WINDOWED in YAML_CONFIGS and "ropevit_mrcnn.yaml" in YAML_CONFIGS


@pytest.mark.parametrize("name", [n for n in YAML_CONFIGS if not n.startswith("LVIS/")])
def test_config_builds_a_model_that_detects(name: str) -> None:
    # LVIS configs build their federated loss from the registered LVIS metadata: tests/test_lvis.py builds them.
    torch.manual_seed(0)
    model = build_model(tiny_config(name)).eval()
    image = torch.randint(0, 256, (3, 120, 150), dtype=torch.uint8)
    with torch.inference_mode():
        (out,) = model([{"image": image, "height": 120, "width": 150}])
    assert out["instances"].image_size == (120, 150)


def test_windowed_camera_trap_config_is_vitdet_b_layout() -> None:
    cfg = model_zoo.get_config(WINDOWED)
    global_cfg = model_zoo.get_config("camera_trap/ropevit_faster_rcnn_cct.yaml")
    assert cfg.MODEL.ROPE_VIT.WINDOW_SIZE == 14 and list(cfg.MODEL.ROPE_VIT.GLOBAL_BLOCKS) == [2, 5, 8, 11]
    # Only the attention layout differs from the camera-trap recipe.
    cfg.MODEL.ROPE_VIT.WINDOW_SIZE, cfg.MODEL.ROPE_VIT.GLOBAL_BLOCKS = 0, []
    assert cfg.dump() == global_cfg.dump()


def test_int8_backend_keeps_the_windowed_layout() -> None:
    cfg = tiny_config(WINDOWED)
    model = build_model(cfg).eval()
    detector = cpu_detector("int8", model, cfg)
    (vit,) = [m for m in detector.model.modules() if isinstance(m, RoPEViT)]
    windows = [m.window_size for m in vit.encoder.modules() if isinstance(m, RoPEAttention)]
    assert windows == [3, 0]  # block 0 windowed, block 1 global
    quantized = [m for m in vit.encoder.modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    assert quantized, "the int8 backend quantized nothing"
    image = torch.randint(0, 256, (3, 120, 150), dtype=torch.uint8)
    (out,) = detector([{"image": image, "height": 120, "width": 150}])
    assert out.image_size == (120, 150)
