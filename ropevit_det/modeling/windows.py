"""ViTDet-style windowed attention that keeps the special tokens global.

Design (our own; ViTDet has no special tokens): the patch grid is cut into ``window x window``
windows, padded at the bottom/right where it does not divide. Each window's patches attend to the
patches of their window *and* to the 5 special tokens (class + registers), which act as a small
shared global memory. The special tokens attend to every token, as in a global block. Padding
patches are masked out as keys, so results do not depend on how much padding there is.
Cost per windowed block: O(N * (w^2 + 5)) instead of O(N^2).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from .attention import attention


def _to_windows(x: torch.Tensor, grid: tuple[int, int], window: int) -> torch.Tensor:
    """(B, h, gh*gw, d) -> (B * nW, h, window*window, d), zero-padding the grid to whole windows."""
    B, heads, _, d = x.shape
    gh, gw = grid
    x = x.reshape(B, heads, gh, gw, d)
    pad_h, pad_w = -gh % window, -gw % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    nh, nw = (gh + pad_h) // window, (gw + pad_w) // window
    x = x.reshape(B, heads, nh, window, nw, window, d).permute(0, 2, 4, 1, 3, 5, 6)
    return x.reshape(B * nh * nw, heads, window * window, d)


def _from_windows(x: torch.Tensor, batch: int, grid: tuple[int, int], window: int) -> torch.Tensor:
    """Inverse of ``_to_windows``: (B * nW, h, window*window, d) -> (B, h, gh*gw, d)."""
    gh, gw = grid
    nh, nw = -(-gh // window), -(-gw // window)
    heads, d = x.shape[1], x.shape[-1]
    x = x.reshape(batch, nh, nw, heads, window, window, d).permute(0, 3, 1, 4, 2, 5, 6)
    x = x.reshape(batch, heads, nh * window, nw * window, d)[:, :, :gh, :gw]
    return x.reshape(batch, heads, gh * gw, d)


@lru_cache(maxsize=32)
def _padding_key_mask(grid: tuple[int, int], window: int, num_special: int, device: torch.device) -> torch.Tensor:
    """(nW, 1, 1, num_special + window^2) boolean mask, False where a key is a padding patch.

    Cached: a pure function of the grid, shared by every windowed block of every forward at that size."""
    valid = torch.ones(1, 1, *grid, 1, device=device)
    valid = _to_windows(valid.reshape(1, 1, -1, 1), grid, window)[:, 0, :, 0] > 0
    special = torch.ones(valid.shape[0], num_special, dtype=torch.bool, device=device)
    return torch.cat([special, valid], dim=1)[:, None, None, :]


def windowed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_special: int, grid: tuple[int, int], window: int
) -> torch.Tensor:
    """Attention for ``[special tokens, patches]`` sequences (B, heads, n + gh*gw, d), see module docstring."""
    B, heads, _, d = q.shape
    n = num_special
    special_out = F.scaled_dot_product_attention(q[:, :, :n], k, v)

    q_win, k_win, v_win = (_to_windows(t[:, :, n:], grid, window) for t in (q, k, v))
    num_windows = q_win.shape[0] // B

    def with_special(windows: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
        shared = full[:, :, :n].repeat_interleave(num_windows, dim=0)
        return torch.cat([shared, windows], dim=2)

    mask = None
    if grid[0] % window or grid[1] % window:
        mask = _padding_key_mask(grid, window, n, q.device).repeat(B, 1, 1, 1)
    patch_out = attention(q_win, with_special(k_win, k), with_special(v_win, v), mask)
    return torch.cat([special_out, _from_windows(patch_out, B, grid, window)], dim=2)
