"""2-D rotary position embedding (RoPE) for the patch grid, numerically identical to birder's
``rope_style="default"``, ``rope_rot_type="standard"`` RoPE.

Written here rather than imported from birder because birder is the *reference* the tests compare
against (a test-only dependency), and the one policy this project needs on top of it, mapping
positions onto the pretraining grid for larger inputs, must live in one place (see ``rope_coordinates``).
"""

from __future__ import annotations

from typing import Literal

import torch

RoPEPositions = Literal["interpolate", "extrapolate"]


def rope_frequency_bands(head_dim: int, temperature: float, device: torch.device | None = None) -> torch.Tensor:
    """Frequencies for one axis: ``head_dim // 4`` bands, ``temperature ** -(i / n)``."""
    if head_dim % 4 != 0:
        raise ValueError(f"RoPE needs a head dimension divisible by 4 (2 axes x sin/cos), got {head_dim}")
    num_bands = head_dim // 4
    exponents = torch.arange(0, num_bands, 1, device=device) / num_bands
    return 1.0 / (temperature**exponents)


def rope_coordinates(
    grid_size: tuple[int, int],
    pt_grid_size: tuple[int, int],
    positions: RoPEPositions,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(h*w, 2) patch coordinates in "ij" order (row, column).

    ``"interpolate"`` maps the grid onto the pretraining grid (birder's ``pt_grid_size``): row r of an
    h-row grid sits at ``r / h * pt_h``, so a 1024 px input sees the same coordinate range as the 336 px
    pretraining images. ``"extrapolate"`` uses raw integer positions (birder's default dynamic-size behaviour).
    """
    if positions == "interpolate":
        scale = pt_grid_size
    elif positions == "extrapolate":
        scale = grid_size
    else:
        raise ValueError(f"rope_positions must be 'interpolate' or 'extrapolate', got {positions!r}")
    axes = [torch.arange(size, device=device) / size * ref for size, ref in zip(grid_size, scale)]
    return torch.stack(torch.meshgrid(axes, indexing="ij"), dim=-1).reshape(-1, 2)


def build_rope_embedding(
    head_dim: int,
    temperature: float,
    grid_size: tuple[int, int],
    pt_grid_size: tuple[int, int],
    positions: RoPEPositions,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(h*w, 2*head_dim) tensor holding ``[sin | cos]`` for each patch, in birder's layout."""
    bands = rope_frequency_bands(head_dim, temperature, device=device)
    angles = rope_coordinates(grid_size, pt_grid_size, positions, device=device).unsqueeze(-1) * bands
    sin = angles.sin().flatten(-2).repeat_interleave(2, dim=-1)
    cos = angles.cos().flatten(-2).repeat_interleave(2, dim=-1)
    return torch.cat([sin, cos], dim=-1)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rope(x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., N, head_dim) by ``embedding`` (N, 2*head_dim) from ``build_rope_embedding``."""
    sin, cos = embedding.tensor_split(2, dim=-1)
    return x * cos + _rotate_half(x) * sin
