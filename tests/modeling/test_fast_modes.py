"""Accuracy guard of the fast modes (issue 6): bf16 autocast and windowed attention against fp32 global
attention on the same weights. Correctness only; no test here looks at a clock.

The weights are random (the pretrained ones cannot be downloaded in tests); the full-width, full-depth
ViT-B/14 runs at 224 px (a 16 x 16 grid) so that bf16 rounding accumulates through all 12 blocks.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.accuracy import BF16_MIN_COSINE, neck_agreement, windowed_copy
from benchmarks.models import synthetic_images
from ropevit_det import RoPEViT

SIZE = 224  # 16 x 16 patches
PIXEL_MEAN = torch.tensor([132.3705, 135.303, 124.3635]).view(1, 3, 1, 1)
PIXEL_STD = torch.tensor([59.058, 58.752, 65.994]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def vit_b() -> RoPEViT:
    torch.manual_seed(0)
    return RoPEViT().eval()  # rope_vit_reg4_b14's shape: 768 wide, 12 blocks, 12 heads


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return (synthetic_images(2, SIZE, "cpu", seed=3) - PIXEL_MEAN) / PIXEL_STD


@pytest.fixture(scope="module")
def reference(vit_b: RoPEViT, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return vit_b.detection_features(images)["neck"]


def test_bf16_autocast_neck_stays_within_guard(vit_b, images, reference) -> None:
    agreement = neck_agreement(vit_b, vit_b, images, torch.bfloat16, "bf16", reference_neck=reference)
    assert agreement.cosine_mean >= BF16_MIN_COSINE
    assert agreement.cosine_flat >= BF16_MIN_COSINE
    # bf16 really ran: the neck moved (fp32 against itself would give exactly 0).
    assert agreement.relative_l2 > 1e-4


def test_fp32_against_itself_is_exact(vit_b, images, reference) -> None:
    agreement = neck_agreement(vit_b, vit_b, images, None, "fp32", reference_neck=reference)
    assert agreement.cosine_min == pytest.approx(1.0, abs=1e-9)
    assert agreement.relative_l2 == pytest.approx(0.0, abs=1e-9)


def test_windowed_copy_keeps_weights_and_changes_only_attention_layout(vit_b) -> None:
    windowed = windowed_copy(vit_b, window_size=8, global_blocks=(2, 5, 8, 11))
    for (name, a), (_, b) in zip(vit_b.state_dict().items(), windowed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    windows = [block.attn.window_size for block in windowed.encoder.block]
    assert windows == [0 if i in (2, 5, 8, 11) else 8 for i in range(12)]


def test_windowed_attention_deviation_is_finite_and_reported(vit_b, images, reference) -> None:
    windowed = windowed_copy(vit_b, window_size=8, global_blocks=(2, 5, 8, 11))  # 2 x 2 windows of 8 x 8
    fp32 = neck_agreement(vit_b, windowed, images, None, "windowed8", reference_neck=reference)
    fast = neck_agreement(vit_b, windowed, images, torch.bfloat16, "fast", reference_neck=reference)
    bf16 = neck_agreement(vit_b, vit_b, images, torch.bfloat16, "bf16", reference_neck=reference)
    for result in (fp32, fast):
        assert -1.0 <= result.cosine_min <= result.cosine_mean <= 1.0
        assert result.relative_l2 < 1.0  # same weights: a related, not an unrelated, feature map
    # Windowing is an architectural change: it moves the neck well beyond bf16 rounding, which is why
    # it is reported (and left to fine-tuning) rather than held to the bf16 guard.
    assert fp32.relative_l2 > 3 * bf16.relative_l2
    assert fast.relative_l2 > 3 * bf16.relative_l2


def test_window_covering_the_grid_matches_global(vit_b, images, reference) -> None:
    """The deviation above comes from windowing alone: one window over the whole grid changes nothing."""
    windowed = windowed_copy(vit_b, window_size=16, global_blocks=())
    agreement = neck_agreement(vit_b, windowed, images, None, "one window", reference_neck=reference)
    assert agreement.cosine_min > 1 - 1e-6


def test_non_finite_neck_is_an_error(vit_b, images) -> None:
    broken = windowed_copy(vit_b, window_size=0, global_blocks=())
    with torch.no_grad():
        broken.encoder.block[0].mlp[0].weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite"):
        neck_agreement(vit_b, broken, images[:1], None, "broken")
