"""The detectron2 side: stride-16 alignment, configs, and Mask R-CNN / Cascade end to end on a tiny ViT."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, ImageList, Instances
from detectron2.utils.events import EventStorage

from ropevit_det.config import load_config
from ropevit_det.modeling.sfp_backbone import resample_to_stride
from tests.conftest import CONFIGS, tiny_cfg

YAML_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if not p.name.startswith("Base-"))


def test_stride16_cells_sample_the_neck_at_16j_plus_8() -> None:
    """Encode each neck cell's own image position (14 i + 7) and check where the values land."""
    H, W = 448, 640
    gh, gw = H // 14, W // 14
    rows = (14 * torch.arange(gh) + 7).float()[:, None].expand(gh, gw)
    cols = (14 * torch.arange(gw) + 7).float()[None, :].expand(gh, gw)
    neck = torch.stack([rows, cols])[None]
    out = resample_to_stride(neck, (H, W), src_stride=14, dst_stride=16)
    assert out.shape == (1, 2, H // 16, W // 16)
    expected_rows = (16 * torch.arange(H // 16) + 8).float()
    expected_cols = (16 * torch.arange(W // 16) + 8).float()
    # Interior cells interpolate exactly; only cells past the last neck centre clamp to it.
    r_ok = expected_rows <= 14 * (gh - 1) + 7
    c_ok = expected_cols <= 14 * (gw - 1) + 7
    assert torch.allclose(out[0, 0, r_ok, 0], expected_rows[r_ok], atol=1e-4)
    assert torch.allclose(out[0, 1, 0, c_ok], expected_cols[c_ok], atol=1e-4)
    assert r_ok.sum() >= H // 16 - 1 and c_ok.sum() >= W // 16 - 1


@pytest.mark.parametrize("size", [(32, 32), (40, 72), (800, 1216)])
def test_resampled_neck_has_ceil_stride16_size(size) -> None:
    neck = torch.randn(1, 4, -(-size[0] // 14), -(-size[1] // 14))
    assert resample_to_stride(neck, size, 14, 16).shape[-2:] == (-(-size[0] // 16), -(-size[1] // 16))


def test_pyramid_strides_and_padding_constraints() -> None:
    cfg = tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml", ["MODEL.SFP.SQUARE_PAD", "256"])
    backbone = build_model(cfg).backbone
    shapes = backbone.output_shape()
    assert {k: v.stride for k, v in shapes.items()} == {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    assert all(v.channels == 256 for v in shapes.values())
    assert backbone.padding_constraints == {"size_divisibility": 32, "square_size": 256}
    images = ImageList.from_tensors([torch.zeros(3, 100, 230)], 32, padding_constraints=backbone.padding_constraints)
    assert images.tensor.shape[-2:] == (256, 256)  # square LSJ-style padding actually applied
    feats = backbone(images.tensor)
    assert {k: tuple(v.shape[-2:]) for k, v in feats.items()} == {
        "p2": (64, 64),
        "p3": (32, 32),
        "p4": (16, 16),
        "p5": (8, 8),
        "p6": (4, 4),
    }


def test_resize_shortest_edge_inputs_padded_to_32() -> None:
    backbone = build_model(tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml")).backbone
    images = ImageList.from_tensors(
        [torch.zeros(3, 200, 333)], backbone.size_divisibility, padding_constraints=backbone.padding_constraints
    )
    assert images.tensor.shape[-2:] == (224, 352)
    assert backbone(images.tensor)["p4"].shape[-2:] == (14, 22)


@pytest.mark.parametrize("config", YAML_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_config_builds(config: Path) -> None:
    model = build_model(tiny_cfg(config))
    assert model.backbone.net.vit.encoder.block.__len__() == 2


def _training_batch() -> list[dict]:
    inst = Instances((96, 128))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 120.0, 90.0]]))
    inst.gt_classes = torch.tensor([1, 3])
    masks = torch.zeros(2, 96, 128, dtype=torch.bool)
    masks[0, 12:70, 10:60] = True
    masks[1, 20:90, 70:120] = True
    inst.gt_masks = BitMasks(masks)
    return [{"image": torch.rand(3, 96, 128) * 255, "instances": inst}]


@pytest.mark.parametrize("config", ["ropevit_mrcnn.yaml", "ropevit_cascade_mrcnn.yaml"])
def test_end_to_end_train_and_inference(config: str) -> None:
    model = build_model(tiny_cfg(CONFIGS / config))
    model.train()
    with EventStorage():
        losses = model(_training_batch())
    assert "loss_mask" in losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    vit = model.backbone.net.vit
    for param in (vit.conv_proj.weight, vit.pos_embedding, vit.encoder.block[0].attn.qkv.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 96, 128) * 255}])[0]["instances"]
    assert out.image_size == (96, 128) and out.has("pred_masks")


def test_full_size_config_holds_exactly_birders_parameters() -> None:
    from birder.model_registry import registry

    cfg = load_config(str(CONFIGS / "ropevit_mrcnn.yaml"), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    state = build_model(cfg).state_dict()
    prefix = "backbone.net.vit."
    ours = {k[len(prefix) :]: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}
    reference = registry.net_factory("rope_vit_reg4_b14", 10, 3, size=(336, 336)).state_dict()
    theirs = {k: tuple(v.shape) for k, v in reference.items() if not k.startswith("classifier.")}
    assert ours == theirs


def test_unknown_config_key_fails() -> None:
    cfg = tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml")
    with pytest.raises(AssertionError, match="Non-existent key: MODEL.ROPE_VIT.WINDOW"):  # yacs raises it so
        cfg.merge_from_list(["MODEL.ROPE_VIT.WINDOW", "7"])


def test_non_rgb_pixel_stats_are_rejected() -> None:
    cfg = tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml", ["MODEL.PIXEL_MEAN", "[128.0]", "MODEL.PIXEL_STD", "[64.0]"])
    with pytest.raises(ValueError, match="3-channel RGB"):
        build_model(cfg)


def test_lazy_config_builds_the_same_model() -> None:
    lazy = LazyConfig.load(str(CONFIGS / "lazy" / "ropevit_mrcnn.py"))
    vit = lazy.model.backbone.net.vit
    vit.embed_dim, vit.depth, vit.num_heads, vit.mlp_dim = 64, 2, 2, 128
    lazy.model.backbone.square_pad = 0
    lazy_state = instantiate(lazy.model).state_dict()
    yacs_state = build_model(tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml")).state_dict()
    assert {k: tuple(v.shape) for k, v in lazy_state.items()} == {k: tuple(v.shape) for k, v in yacs_state.items()}
