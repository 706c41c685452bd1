"""MODEL.WEIGHTS pointing at a raw birder checkpoint: converted in memory, loaded strictly, one log line,
and the detectron2 model's ViT reproduces birder's detection_features on the same weights."""

from __future__ import annotations

import logging

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from ropevit_det.checkpoint import KeyMappingError, RoPEViTCheckpointer, check_pixel_stats
from ropevit_det.checkpoint.birder_format import sha256_of
from tests.checkpoint_helpers import (
    RGB_STATS,
    TINY,
    TINY_SIZE,
    build_d2_model,
    make_birder_net,
    neck_parity,
    save_birder_pt,
    save_birder_safetensors,
    tiny_cfg,
    vit_state,
)

LOGGER = "ropevit_det.checkpoint.checkpointer"


@pytest.fixture(scope="module")
def birder_net():
    return make_birder_net()


@pytest.mark.parametrize("save", [save_birder_pt, save_birder_safetensors], ids=["pt", "safetensors"])
def test_direct_load_matches_birder_and_logs_one_line(save, birder_net, tmp_path, caplog):
    path = save(birder_net, tmp_path)
    model = build_d2_model(tiny_cfg())
    assert neck_parity(model, birder_net, TINY_SIZE) > 1e-2  # sanity: not equal before loading
    with caplog.at_level(logging.INFO, logger=LOGGER):
        meta = RoPEViTCheckpointer(model).load(str(path))
    assert neck_parity(model, birder_net, TINY_SIZE) < 1e-5
    n = len(model.backbone.net.vit.state_dict())
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backbone:")]
    assert summary == [f"backbone: {n}/{n} tensors loaded; heads: initialised from scratch"]
    assert meta["source_file"] == path.name and meta["source_sha256"] == sha256_of(path)
    assert meta["pixel_mean"] == pytest.approx([255 * m for m in RGB_STATS["mean"]])


def test_full_size_vit_b_parity_at_336(tmp_path):
    """The one full-size check: birder's rope_vit_reg4_b14 at 336 px, random weights, through the .pt route."""
    net = make_birder_net(config=None, size=336, num_classes=10)
    path = save_birder_pt(net, tmp_path, size=336, num_classes=10, name="rope_vit_reg4_b14")
    model = build_d2_model(tiny_cfg(depth=12, embed_dim=768, num_heads=12, mlp_dim=3072, img_size=336))
    RoPEViTCheckpointer(model).load(str(path))
    assert neck_parity(model, net, 336) < 1e-4


def test_shape_mismatch_stops_the_load_and_leaves_the_model_untouched(tmp_path):
    narrow = make_birder_net(config={**TINY, "hidden_dim": 32, "mlp_dim": 64})
    path = save_birder_safetensors(narrow, tmp_path)
    model = build_d2_model(tiny_cfg())
    before = vit_state(model)
    expected = r"backbone\.net\.vit\.conv_proj\.bias: checkpoint \(32,\) vs model \(64,\)"
    with pytest.raises(KeyMappingError, match=expected):
        RoPEViTCheckpointer(model).load(str(path))
    after = vit_state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_depth_mismatch_is_an_error_not_a_warning(birder_net, tmp_path):
    path = save_birder_pt(birder_net, tmp_path)
    model = build_d2_model(tiny_cfg(depth=3))
    with pytest.raises(KeyMappingError, match=r"(?s)not in the checkpoint.*encoder\.block\.2\..*DEPTH"):
        RoPEViTCheckpointer(model).load(str(path))


def test_classifier_is_loaded_when_the_model_has_one(birder_net, tmp_path, caplog):
    path = save_birder_pt(birder_net, tmp_path)
    model = build_d2_model(tiny_cfg(num_classes=3))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        RoPEViTCheckpointer(model).load(str(path))
    x = torch.randn(2, 3, TINY_SIZE, TINY_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone.net.vit.forward_classification(x), birder_net(x), atol=1e-5, rtol=0)
    n = len(model.backbone.net.vit.state_dict())
    assert f"backbone: {n}/{n} tensors loaded; heads: initialised from scratch; classifier: 3 classes loaded" in (
        caplog.messages
    )


def test_classifier_of_the_wrong_size_names_the_tensor(birder_net, tmp_path):
    path = save_birder_pt(birder_net, tmp_path)
    model = build_d2_model(tiny_cfg(num_classes=5))
    with pytest.raises(KeyMappingError, match=r"classifier\.weight: checkpoint \(3, 64\) vs model \(5, 64\)"):
        RoPEViTCheckpointer(model).load(str(path))


def test_detectron2_snapshot_still_loads_unchanged(tmp_path, caplog):
    """A file that is not from birder (a training snapshot) takes detectron2's usual route, heads included."""
    source = build_d2_model(tiny_cfg())
    DetectionCheckpointer(source, save_dir=str(tmp_path)).save("snapshot", iteration=7)
    target = build_d2_model(tiny_cfg())
    torch.manual_seed(99)
    with torch.no_grad():
        for p in target.parameters():
            p.normal_()
    extra = RoPEViTCheckpointer(target).load(str(tmp_path / "snapshot.pth"))
    assert extra["iteration"] == 7
    loaded = target.state_dict()
    for name, value in source.state_dict().items():
        assert torch.equal(value, loaded[name]), name


def test_heads_in_the_file_change_the_summary_wording(birder_net, tmp_path, caplog):
    from ropevit_det.checkpoint import birder_to_d2_checkpoint, read_birder_checkpoint

    model = build_d2_model(tiny_cfg())
    converted = birder_to_d2_checkpoint(read_birder_checkpoint(save_birder_pt(birder_net, tmp_path)))
    head_key = "roi_heads.box_predictor.cls_score.weight"
    converted["model"][head_key] = torch.zeros_like(model.state_dict()[head_key])
    torch.save(converted, tmp_path / "with_head.pth")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        RoPEViTCheckpointer(model).load(str(tmp_path / "with_head.pth"))
    assert torch.count_nonzero(model.state_dict()[head_key]) == 0
    n_vit = len(model.backbone.net.vit.state_dict())
    n_heads = len(model.state_dict()) - n_vit
    heads = f"heads: 1/{n_heads} tensors loaded, the rest initialised from scratch"
    assert f"backbone: {n_vit}/{n_vit} tensors loaded; {heads}" in caplog.messages


def test_pixel_stats_warning(birder_net, tmp_path):
    model = build_d2_model(tiny_cfg())
    meta = RoPEViTCheckpointer(model).load(str(save_birder_pt(birder_net, tmp_path)))
    cfg = tiny_cfg()  # the base config's statistics differ from RGB_STATS
    warnings = check_pixel_stats(cfg, meta)
    assert len(warnings) == 2 and "MODEL.PIXEL_MEAN" in warnings[0] and "MODEL.PIXEL_STD" in warnings[1]
    cfg.MODEL.PIXEL_MEAN = [255 * m for m in RGB_STATS["mean"]]
    cfg.MODEL.PIXEL_STD = [255 * s for s in RGB_STATS["std"]]
    assert check_pixel_stats(cfg, meta) == []
    cfg.INPUT.FORMAT = "BGR"
    assert ["INPUT.FORMAT" in w for w in check_pixel_stats(cfg, meta)] == [True]
    assert check_pixel_stats(cfg, {"iteration": 3}) == []  # a snapshot without statistics is not checked


def test_patch_size_mismatch_names_conv_proj_and_both_shapes(birder_net, tmp_path):
    """A /14 checkpoint into a config with MODEL.ROPE_VIT.PATCH_SIZE 16 (pretraining size kept a multiple of 16)."""
    path = save_birder_pt(birder_net, tmp_path)
    cfg = tiny_cfg(img_size=64)
    cfg.merge_from_list(["MODEL.ROPE_VIT.PATCH_SIZE", 16])
    model = build_d2_model(cfg)
    expected = r"backbone\.net\.vit\.conv_proj\.weight: checkpoint \(64, 3, 14, 14\) vs model \(64, 3, 16, 16\)"
    with pytest.raises(KeyMappingError, match=expected):
        RoPEViTCheckpointer(model).load(str(path))
