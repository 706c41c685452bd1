"""RoPEViT behaviour beyond parity: padding, windowed attention, options, input errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ropevit_det import RoPEViT
from ropevit_det.modeling.windows import windowed_attention


def tiny_vit(**kwargs) -> RoPEViT:
    defaults = dict(img_size=56, embed_dim=32, depth=2, num_heads=2, mlp_dim=64)
    return RoPEViT(**{**defaults, **kwargs}).eval()


@pytest.mark.parametrize("size", [(56, 56), (57, 70), (100, 29), (13, 13)])
def test_neck_shape_is_ceil_of_patch_grid(size) -> None:
    neck = tiny_vit().detection_features(torch.randn(2, 3, *size))["neck"]
    assert neck.shape == (2, 32, -(-size[0] // 14), -(-size[1] // 14))


def test_padding_only_touches_the_last_row_and_column() -> None:
    """Zero padding to the next multiple of 14 equals feeding the zero-padded image."""
    vit = tiny_vit()
    x = torch.randn(1, 3, 60, 45)
    padded = F.pad(x, (0, 56 - 45, 0, 70 - 60))
    with torch.no_grad():
        assert torch.allclose(vit.detection_features(x)["neck"], vit.detection_features(padded)["neck"], atol=1e-6)


def _reference_windowed(q, k, v, n, grid, window):
    """Global attention with an explicit mask encoding the documented windowing rule."""
    gh, gw = grid
    rows = torch.arange(gh).repeat_interleave(gw) // window
    cols = torch.arange(gw).repeat(gh) // window
    window_id = torch.cat([torch.full((n,), -1), rows * 1000 + cols])
    is_special = window_id == -1
    allowed = (window_id[:, None] == window_id[None, :]) | is_special[None, :] | is_special[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


@pytest.mark.parametrize("grid,window", [((4, 4), 2), ((5, 7), 3), ((6, 5), 4), ((3, 3), 8)])
def test_windowed_attention_matches_masked_global_reference(grid, window) -> None:
    n, heads, d = 5, 2, 8
    q, k, v = (torch.randn(2, heads, n + grid[0] * grid[1], d) for _ in range(3))
    expected = _reference_windowed(q, k, v, n, grid, window)
    assert torch.allclose(windowed_attention(q, k, v, n, grid, window), expected, atol=1e-5)


def test_window_covering_the_grid_equals_global_attention() -> None:
    state = tiny_vit().state_dict()
    windowed = tiny_vit(window_size=8)
    windowed.load_state_dict(state)
    x = torch.randn(1, 3, 56, 56)  # 4 x 4 grid inside one 8 x 8 window (padded and masked)
    glob = tiny_vit()
    glob.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(windowed.detection_features(x)["neck"], glob.detection_features(x)["neck"], atol=1e-5)


def test_global_blocks_stay_global() -> None:
    vit = tiny_vit(depth=3, window_size=2, global_block_indexes=(1,))
    assert [b.attn.window_size for b in vit.encoder.block] == [2, 0, 2]


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    plain = tiny_vit().train()
    ckpt = tiny_vit(use_act_checkpoint=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 42, 42)
    for model in (plain, ckpt):
        model.detection_features(x)["neck"].square().sum().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        if name.startswith("norm."):  # the final norm is not part of detection_features
            assert a.grad is None and b.grad is None
            continue
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def test_freezing_patch_embed_and_first_blocks() -> None:
    vit = tiny_vit(depth=3, freeze_patch_embed=True, freeze_blocks=2)
    frozen = {name for name, p in vit.named_parameters() if not p.requires_grad}
    assert {"conv_proj.weight", "pos_embedding", "class_token", "reg_tokens"} <= frozen
    for i in (0, 1):
        assert {f"encoder.block.{i}.{n}" for n, _ in vit.encoder.block[i].named_parameters()} <= frozen
    assert not any(n.startswith("encoder.block.2.") for n in frozen)
    assert "norm.weight" not in frozen


def test_drop_path_is_stochastic_in_training_only() -> None:
    vit = tiny_vit(drop_path_rate=0.5)
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        assert torch.equal(vit.detection_features(x)["neck"], vit.detection_features(x)["neck"])
        vit.train()
        assert not torch.equal(vit.detection_features(x)["neck"], vit.detection_features(x)["neck"])


@pytest.mark.parametrize("channels", [1, 4])
def test_wrong_channel_count_is_a_clear_error(channels) -> None:
    with pytest.raises(ValueError, match="expects images shaped"):
        tiny_vit().detection_features(torch.randn(1, channels, 28, 28))


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="rope_positions"):
        tiny_vit(rope_positions="nearest")
    with pytest.raises(ValueError, match="global_block_indexes"):
        tiny_vit(window_size=2, global_block_indexes=(5,))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        tiny_vit(img_size=50)
