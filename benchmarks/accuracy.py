"""Accuracy guard for the fast modes: how far their neck features move from fp32 global attention.

bf16 autocast is a numerical change only, so its neck must stay within cosine 0.999 of fp32 on the same
weights. Windowed attention changes the architecture (each patch attends to its window and the special
tokens only); pretrained weights saw global attention, so it is a fine-tuning choice, and its deviation is
reported rather than bounded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ropevit_det.modeling.rope_vit import RoPEViT

__all__ = ["BF16_MIN_COSINE", "NeckAgreement", "neck_agreement", "windowed_copy"]

BF16_MIN_COSINE = 0.999


@dataclass
class NeckAgreement:
    """Cosine similarity of a candidate neck to the fp32 global-attention reference.

    ``cosine_mean`` / ``cosine_min``: per feature-map location (over channels), mean and worst over all
    locations and images. ``cosine_flat``: the whole map flattened, lowest over images.
    """

    mode: str
    cosine_mean: float
    cosine_min: float
    cosine_flat: float
    relative_l2: float

    def as_dict(self) -> dict:
        return asdict(self)


def windowed_copy(vit: RoPEViT, window_size: int, global_blocks: Sequence[int]) -> RoPEViT:
    """A RoPEViT with ``vit``'s weights and windowed attention outside ``global_blocks``.

    Built from ``vit``'s own shape arguments; only the attention layout differs. RoPE and position
    tables are recomputed, not copied (they are a function of the grid).
    """
    windowed = RoPEViT(
        img_size=vit.pos_embed_grid[0] * vit.patch_size,
        patch_size=vit.patch_size,
        embed_dim=vit.embed_dim,
        depth=len(vit.encoder.block),
        num_heads=vit.num_heads,
        mlp_dim=vit.encoder.block[0].mlp[0].out_features,
        num_reg_tokens=vit.num_reg_tokens,
        rope_temperature=vit.rope_temperature,
        rope_positions=vit.rope_positions,
        rope_reference_grid=vit.rope_reference_grid,
        window_size=window_size,
        global_block_indexes=tuple(global_blocks),
        num_classes=0 if vit.classifier is None else vit.classifier.out_features,
        in_chans=vit.in_chans,
        norm_eps=vit.norm.eps,
    )
    windowed.load_state_dict(vit.state_dict(), strict=True)
    return windowed.to(vit.pos_embedding.device).eval()


@torch.no_grad()
def _neck(vit: RoPEViT, images: torch.Tensor, autocast_dtype: torch.dtype | None) -> torch.Tensor:
    context = (
        torch.autocast(images.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with context:
        return vit.detection_features(images)["neck"].float()


def neck_agreement(
    reference: RoPEViT,
    candidate: RoPEViT,
    images: torch.Tensor,
    autocast_dtype: torch.dtype | None,
    mode: str = "",
    reference_neck: torch.Tensor | None = None,
) -> NeckAgreement:
    """Compare ``candidate`` (run under ``autocast_dtype``) with ``reference`` in fp32 on ``images``.

    Args:
        reference: the fp32, global-attention model (eval mode).
        candidate: the model under test; may be ``reference`` itself (bf16 alone).
        images: normalised (B, 3, H, W) input.
        autocast_dtype: autocast dtype for the candidate, ``None`` for fp32.
        mode: label stored in the result.
        reference_neck: the reference's neck on ``images``, if already computed (saves a forward pass).
    """
    ref = _neck(reference, images, None) if reference_neck is None else reference_neck.float()
    out = _neck(candidate, images, autocast_dtype)
    if out.shape != ref.shape:
        raise ValueError(f"neck shapes differ: candidate {tuple(out.shape)}, reference {tuple(ref.shape)}")
    if not torch.isfinite(out).all():
        raise FloatingPointError(f"mode {mode!r}: the neck has non-finite values")
    ref64, out64 = ref.double(), out.double()
    per_location = F.cosine_similarity(out64, ref64, dim=1)  # (B, H, W)
    flat = F.cosine_similarity(out64.flatten(1), ref64.flatten(1), dim=1)
    relative_l2 = ((out64 - ref64).flatten(1).norm(dim=1) / ref64.flatten(1).norm(dim=1)).max()
    return NeckAgreement(
        mode=mode,
        cosine_mean=float(per_location.mean()),
        cosine_min=float(per_location.min()),
        cosine_flat=float(flat.min()),
        relative_l2=float(relative_l2),
    )
