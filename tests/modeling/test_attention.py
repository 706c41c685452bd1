"""The chunked CPU attention used for bf16 inference (ropevit_det/modeling/attention.py): same result as
SDPA up to bf16 rounding, masks honoured, and used only where it is meant to be."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ropevit_det.modeling import attention as attention_module
from ropevit_det.modeling.attention import attention, chunked_cpu_attention, uses_chunked_cpu_attention
from ropevit_det.modeling.windows import windowed_attention


def _qkv(batch: int, heads: int, tokens: int, dim: int, score_std: float = 1.0, seed: int = 0):
    """bf16 q, k, v whose attention logits q.k/sqrt(d) have about ``score_std`` spread."""
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, tokens, dim, generator=generator) for _ in range(3))
    scale = score_std**0.5
    return (q * scale).bfloat16(), (k * scale).bfloat16(), v.bfloat16()


def _relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    return ((out.float() - reference).norm() / reference.norm()).item()


def _exact(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """fp32 attention on the same (bf16-rounded) inputs: isolates the error of the kernel itself."""
    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)


@pytest.mark.parametrize("tokens,query_chunk", [(300, 64), (261, 256), (37, 256)])
def test_chunked_matches_exact_attention_up_to_bf16_rounding(tokens: int, query_chunk: int) -> None:
    q, k, v = _qkv(2, 3, tokens, 64)
    out = chunked_cpu_attention(q, k, v, query_chunk=query_chunk)
    assert out.dtype == torch.bfloat16 and out.shape == q.shape
    assert _relative_error(out, _exact(q, k, v)) < 0.01


def test_one_head_at_a_time_for_long_sequences_gives_the_same_result(monkeypatch) -> None:
    q, k, v = _qkv(1, 4, 200, 32, seed=1)
    grouped = chunked_cpu_attention(q, k, v, query_chunk=64)
    # A score budget below one head's block forces the long-sequence layout (2-D products per head).
    monkeypatch.setattr(attention_module, "SCORE_BLOCK_BYTES", 1)
    per_head = chunked_cpu_attention(q, k, v, query_chunk=64)
    torch.testing.assert_close(per_head, grouped, rtol=0, atol=0)


def test_peaked_attention_error_stays_bounded() -> None:
    """Trained attention is peakier than random: logits with a spread of ~9. Scores are rounded to bf16
    before the softmax (no bf16 x bf16 -> fp32 product on CPU), so the error grows with the logits;
    measured 1.8% against flash's 0.2%. This bounds it, so a regression (e.g. bf16 softmax internals)
    shows up."""
    q, k, v = _qkv(1, 4, 1500, 64, score_std=9.0, seed=2)
    assert _relative_error(chunked_cpu_attention(q, k, v), _exact(q, k, v)) < 0.03


def test_key_mask_is_honoured_like_sdpa_attn_mask() -> None:
    q, k, v = _qkv(4, 2, 50, 16, seed=3)
    mask = torch.rand(4, 1, 1, 50, generator=torch.Generator().manual_seed(4)) > 0.3
    mask[..., 0] = True  # every query keeps a key
    out = chunked_cpu_attention(q, k, v, key_mask=mask)
    assert _relative_error(out, _exact(q, k, v, mask)) < 0.01
    # Masked keys have no influence at all: change their values, the output is unchanged bit for bit.
    v_changed = v.clone()
    v_changed[~mask.expand(4, 2, 1, 50).squeeze(2)] = 1000.0
    torch.testing.assert_close(chunked_cpu_attention(q, k, v_changed, key_mask=mask), out, rtol=0, atol=0)


def test_windowed_attention_in_bf16_matches_its_fp32_result() -> None:
    grid, window, special = (10, 9), 4, 5  # windows pad the grid: the key mask is in play
    q, k, v = _qkv(2, 3, special + grid[0] * grid[1], 16, seed=5)
    with torch.no_grad():
        fast = windowed_attention(q, k, v, special, grid, window)
        exact = windowed_attention(q.float(), k.float(), v.float(), special, grid, window)
    assert fast.dtype == torch.bfloat16
    assert _relative_error(fast, exact) < 0.01


def test_chunked_path_only_for_cpu_bf16_without_autograd() -> None:
    q, k, v = _qkv(1, 2, 20, 8)
    with torch.no_grad():
        assert uses_chunked_cpu_attention(q, k, v)
        # fp32 stays on SDPA, which keeps the parity mode bit-identical to birder.
        assert not uses_chunked_cpu_attention(q.float(), k.float(), v.float())
    q_train = q.clone().requires_grad_()
    assert not uses_chunked_cpu_attention(q_train, k, v)  # training: flash keeps memory linear
    with torch.no_grad():
        assert uses_chunked_cpu_attention(q_train, k, v)  # frozen inference of a trainable model


def test_training_through_attention_keeps_gradients() -> None:
    q, k, v = (t.clone().requires_grad_() for t in _qkv(1, 2, 20, 8))
    attention(q, k, v).float().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad.float()).all() for t in (q, k, v))


def test_bad_shapes_are_an_error() -> None:
    q, k, v = _qkv(1, 2, 20, 8)
    with pytest.raises(ValueError, match="expected"):
        chunked_cpu_attention(q, k[:, :1], v[:, :1])
