"""RoPEViT against birder 0.8.4's rope_vit_reg4_b14, the reference implementation, at full size."""

from __future__ import annotations

import pytest
import torch
from birder.model_registry import registry as birder_registry  # the reference; in the test extra

from ropevit_det import RoPEViT

TOLERANCE = 1e-4  # outputs are O(1-10); fp32 round-off alone is ~5e-6


def _randomise(module: torch.nn.Module) -> None:
    """birder initialises the classifier to zero and tokens to zero: use random weights everywhere."""
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, param in module.named_parameters():
            scale = 0.1 if "norm" in name else 0.02
            base = 1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 0.0
            param.copy_(base + scale * torch.randn(param.shape, generator=gen))


@pytest.fixture(scope="module")
def birder_state() -> dict[str, torch.Tensor]:
    net = birder_registry.net_factory("rope_vit_reg4_b14", 10, 3, size=(336, 336))
    _randomise(net)
    return net.state_dict()


def _birder_net(state: dict[str, torch.Tensor], config: dict | None, dynamic: bool) -> torch.nn.Module:
    net = birder_registry.net_factory("rope_vit_reg4_b14", 10, 3, config=config, size=(336, 336))
    net.load_state_dict(state)
    if dynamic:
        net.set_dynamic_size()
    return net.eval()


def _ours(state: dict[str, torch.Tensor], **kwargs) -> RoPEViT:
    model = RoPEViT(**kwargs)
    backbone_state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    model.load_state_dict(backbone_state, strict=True)  # strict: names and shapes one-to-one
    return model.eval()


PARITY_CASES = [
    # (id, input H x W, birder config, birder dynamic size, our rope_positions)
    ("native_336", (336, 336), None, False, "interpolate"),
    ("interp_448", (448, 448), {"pt_grid_size": (24, 24)}, True, "interpolate"),
    ("interp_336x616", (336, 616), {"pt_grid_size": (24, 24)}, True, "interpolate"),
    ("extrap_448", (448, 448), None, True, "extrapolate"),
]


@pytest.mark.parametrize(
    "size,config,dynamic,positions", [c[1:] for c in PARITY_CASES], ids=[c[0] for c in PARITY_CASES]
)
def test_neck_matches_birder(birder_state, size, config, dynamic, positions) -> None:
    reference = _birder_net(birder_state, config, dynamic)
    ours = _ours(birder_state, rope_positions=positions)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = reference.detection_features(x)["stage1"]
        got = ours.detection_features(x)["neck"]
    assert got.shape == (1, 768, size[0] // 14, size[1] // 14)
    assert expected.abs().max() > 1.0  # a real signal, not a degenerate all-zero output
    assert (got - expected).abs().max().item() < TOLERANCE


def test_interpolation_and_extrapolation_differ() -> None:
    """The two RoPE policies are genuinely different off the pretraining grid, identical on it."""
    kwargs = dict(img_size=56, embed_dim=64, depth=2, num_heads=2, mlp_dim=128)
    interp = RoPEViT(rope_positions="interpolate", **kwargs).eval()
    with torch.no_grad():  # sharp attention, so that positions matter (the default init is nearly uniform)
        for block in interp.encoder.block:
            block.attn.qkv.weight.normal_(std=0.5)
    extrap = RoPEViT(rope_positions="extrapolate", **kwargs).eval()
    extrap.load_state_dict(interp.state_dict())
    with torch.no_grad():
        x = torch.randn(1, 3, 112, 112)
        assert (interp.detection_features(x)["neck"] - extrap.detection_features(x)["neck"]).abs().max() > 1e-2
        x = torch.randn(1, 3, 56, 56)
        assert torch.equal(interp.detection_features(x)["neck"], extrap.detection_features(x)["neck"])


def test_classification_logits_match_birder(birder_state) -> None:
    reference = _birder_net(birder_state, None, False)
    ours = RoPEViT(num_classes=10).eval()
    ours.load_state_dict(birder_state, strict=True)
    x = torch.randn(1, 3, 336, 336)
    with torch.no_grad():
        expected, got = reference(x), ours.forward_classification(x)
    assert expected.abs().max() > 1e-2
    assert (got - expected).abs().max().item() < TOLERANCE


def test_default_module_is_rope_vit_reg4_b14(birder_state) -> None:
    ours = RoPEViT()
    theirs = {k: tuple(v.shape) for k, v in birder_state.items() if not k.startswith("classifier.")}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs
    assert sum(p.numel() for p in ours.parameters()) == pytest.approx(85.9e6, rel=0.01)
