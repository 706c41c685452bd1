"""birder's ``rope_vit_reg4_b14`` as a plain ``nn.Module``, for detection.

Parameter names match birder's state dict one-to-one (``conv_proj``, ``class_token``, ``reg_tokens``,
``pos_embedding``, ``encoder.block.N.*``, ``norm``, ``classifier``), so pretrained weights load with
``strict=True`` and no name heuristics. The module never sees a detectron2 ``cfg``: it takes keyword
arguments, so yacs builders and LazyConfig can both construct it.

Position policy, decided here once:

* The learned absolute embedding covers the 5 special tokens and the pretraining grid
  (``img_size // patch_size``, 24x24 at 336 px). For any other grid, its patch part is resized
  bicubically in float32 (as birder does); the special-token part is used as is.
* RoPE coordinates are mapped onto a reference grid, by default the pretraining grid
  (``rope_positions="interpolate"``; ``rope_reference_grid`` is birder's ``pt_grid_size``), or left as raw
  integer positions (``"extrapolate"``).

Inputs whose height or width is not a multiple of the patch size are zero-padded at the bottom and
right. After pixel normalisation zero is the dataset mean colour, so the last row/column of patches
sees part real image, part flat mean colour; their features are slightly less informative, and no
feature at all is lost (the output grid is ``ceil(H / 14) x ceil(W / 14)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from torchvision.ops import StochasticDepth

from .attention import attention
from .rope import RoPEPositions, apply_rope, build_rope_embedding
from .windows import windowed_attention


class RoPEAttention(nn.Module):
    """Multi-head self-attention with RoPE on the patch tokens; special tokens are not rotated."""

    def __init__(self, *, dim: int, num_heads: int, num_special_tokens: int, window_size: int = 0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.num_special_tokens = num_special_tokens
        self.window_size = window_size
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        # ``rope`` holds identity rotations (sin 0, cos 1) for the special tokens: one fused op, no slicing.
        q = apply_rope(q, rope).type_as(v)
        k = apply_rope(k, rope).type_as(v)
        if self.window_size > 0:
            out = windowed_attention(q, k, v, self.num_special_tokens, grid_size, self.window_size)
        else:
            out = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block; ``mlp`` indices (0 and 3) follow torchvision's ``MLP`` as birder uses it."""

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        num_special_tokens: int,
        drop_path: float = 0.0,
        window_size: int = 0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = RoPEAttention(
            dim=dim, num_heads=num_heads, num_special_tokens=num_special_tokens, window_size=window_size
        )
        self.drop_path = StochasticDepth(drop_path, mode="row")
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp_dim, dim), nn.Dropout(0.0)
        )

    def forward(self, x: torch.Tensor, rope: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), rope, grid_size))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Encoder(nn.Module):
    """Holds ``block`` so that parameter names read ``encoder.block.N`` as in birder."""

    def __init__(self, blocks: Sequence[EncoderBlock]) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)


class RoPEViT(nn.Module):
    """RoPE ViT with register tokens; defaults are birder's ``rope_vit_reg4_b14`` at 336 px.

    Args:
        img_size: pretraining resolution; the absolute position embedding covers ``img_size // patch_size``
            patches per side.
        patch_size, embed_dim, depth, num_heads, mlp_dim: the transformer's shape (B/14: 14, 768, 12, 12, 3072).
        num_reg_tokens: register tokens, placed before the class token as in birder: ``[REG x4, CLS, PATCH...]``.
        rope_temperature: RoPE frequency base (birder: 100).
        rope_positions: ``"interpolate"`` maps RoPE coordinates onto ``rope_reference_grid`` for any input
            size; ``"extrapolate"`` uses raw integer patch positions.
        rope_reference_grid: the grid whose coordinate range RoPE positions are mapped onto (birder's
            ``pt_grid_size``); defaults to the absolute embedding's grid, ``(img_size // patch_size,) * 2``.
        drop_path_rate: stochastic depth, linearly increasing to this value over the blocks.
        window_size: ViTDet-style windowed attention on the patch grid (0 = global everywhere, as pretrained).
            In windowed blocks each window attends to its own patches plus the special tokens, and the special
            tokens attend globally to everything, so the registers keep carrying global context.
        global_block_indexes: blocks that stay global when ``window_size > 0``.
        use_act_checkpoint: recompute each block in the backward pass to save activation memory.
        freeze_patch_embed: freeze ``conv_proj`` and the position embedding and special tokens.
        freeze_blocks: freeze the first ``k`` blocks.
        num_classes: size of the classification head (0 = no head; the iNat21 head has 10,000).
        in_chans: input channels (3, RGB).
        norm_eps: LayerNorm epsilon.
    """

    def __init__(
        self,
        *,
        img_size: int = 336,
        patch_size: int = 14,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_dim: int = 3072,
        num_reg_tokens: int = 4,
        rope_temperature: float = 100.0,
        rope_positions: RoPEPositions = "interpolate",
        rope_reference_grid: tuple[int, int] | None = None,
        drop_path_rate: float = 0.0,
        window_size: int = 0,
        global_block_indexes: Sequence[int] = (),
        use_act_checkpoint: bool = False,
        freeze_patch_embed: bool = False,
        freeze_blocks: int = 0,
        num_classes: int = 0,
        in_chans: int = 3,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if img_size % patch_size != 0:
            raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        if rope_positions not in ("interpolate", "extrapolate"):
            raise ValueError(f"rope_positions must be 'interpolate' or 'extrapolate', got {rope_positions!r}")
        bad_globals = [i for i in global_block_indexes if not 0 <= i < depth]
        if bad_globals:
            raise ValueError(f"global_block_indexes {bad_globals} out of range for depth {depth}")
        if not 0 <= freeze_blocks <= depth:
            raise ValueError(f"freeze_blocks must be in [0, {depth}], got {freeze_blocks}")

        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.in_chans = in_chans
        self.num_reg_tokens = num_reg_tokens
        self.num_special_tokens = num_reg_tokens + 1
        # Two grids with different jobs: the learned absolute embedding is stored on ``pos_embed_grid`` (and
        # resized from it); RoPE coordinates are mapped onto ``rope_reference_grid`` (birder: pt_grid_size).
        self.pos_embed_grid = (img_size // patch_size, img_size // patch_size)
        self.rope_reference_grid = (
            tuple(rope_reference_grid) if rope_reference_grid is not None else self.pos_embed_grid
        )
        self.rope_positions = rope_positions
        self.rope_temperature = rope_temperature
        self.use_act_checkpoint = use_act_checkpoint
        self.window_size = window_size
        self.global_block_indexes = tuple(global_block_indexes)

        self.conv_proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.reg_tokens = nn.Parameter(torch.zeros(1, num_reg_tokens, embed_dim))
        num_positions = self.num_special_tokens + self.pos_embed_grid[0] * self.pos_embed_grid[1]
        self.pos_embedding = nn.Parameter(torch.empty(1, num_positions, embed_dim).normal_(std=0.02))

        drop_rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth > 1 else [drop_path_rate]
        blocks = []
        for i in range(depth):
            block_window = 0 if i in self.global_block_indexes else window_size
            blocks.append(
                EncoderBlock(
                    dim=embed_dim,
                    num_heads=num_heads,
                    mlp_dim=mlp_dim,
                    num_special_tokens=self.num_special_tokens,
                    drop_path=drop_rates[i],
                    window_size=block_window,
                    norm_eps=norm_eps,
                )
            )
        self.encoder = Encoder(blocks)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.classifier = nn.Linear(embed_dim, num_classes) if num_classes > 0 else None

        self._init_weights()
        # Non-persistent cache: RoPE tables are a pure function of the grid and never saved (as in birder).
        self._rope_cache: dict[tuple[int, int, torch.device], torch.Tensor] = {}
        self._freeze(freeze_patch_embed, freeze_blocks)

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        fan_in = self.in_chans * self.patch_size**2
        nn.init.trunc_normal_(self.conv_proj.weight, std=fan_in**-0.5)
        nn.init.zeros_(self.conv_proj.bias)

    def _freeze(self, freeze_patch_embed: bool, freeze_blocks: int) -> None:
        frozen: list[nn.Parameter] = []
        if freeze_patch_embed:
            frozen += [*self.conv_proj.parameters(), self.pos_embedding, self.class_token, self.reg_tokens]
        for block in self.encoder.block[:freeze_blocks]:
            frozen += list(block.parameters())
        for param in frozen:
            param.requires_grad_(False)

    def position_embedding(self, grid_size: tuple[int, int]) -> torch.Tensor:
        """Absolute embedding for ``[special tokens, patches]`` on ``grid_size``, resized when it differs."""
        if grid_size == self.pos_embed_grid:
            return self.pos_embedding
        n = self.num_special_tokens
        special, patches = self.pos_embedding[:, :n], self.pos_embedding[:, n:]
        patches = patches.reshape(1, *self.pos_embed_grid, -1).permute(0, 3, 1, 2).float()
        patches = F.interpolate(patches, size=grid_size, mode="bicubic", align_corners=False, antialias=False)
        patches = patches.permute(0, 2, 3, 1).reshape(1, grid_size[0] * grid_size[1], -1)
        return torch.cat([special, patches.to(special.dtype)], dim=1)

    def rope_embedding(self, grid_size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """``[sin | cos]`` rows for the whole sequence: identity (0 | 1) for the special tokens, which birder
        leaves unrotated (``x * 1 + rot(x) * 0`` is exactly ``x``), then the patch grid's RoPE."""
        key = (*grid_size, device)
        if key not in self._rope_cache:
            head_dim = self.embed_dim // self.num_heads
            patches = build_rope_embedding(
                head_dim, self.rope_temperature, grid_size, self.rope_reference_grid, self.rope_positions, device=device
            )
            identity = torch.cat(
                [
                    torch.zeros(self.num_special_tokens, head_dim, device=device),
                    torch.ones(self.num_special_tokens, head_dim, device=device),
                ],
                dim=1,
            )
            self._rope_cache[key] = torch.cat([identity, patches.to(identity.dtype)], dim=0)
        return self._rope_cache[key]

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"RoPEViT expects images shaped (batch, {self.in_chans}, height, width), got {tuple(x.shape)}. "
                "Convert grayscale or RGBA inputs to RGB (detectron2: INPUT.FORMAT 'RGB')."
            )

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patchify, add special tokens and positions, run the blocks. Returns all tokens and the grid."""
        self._check_input(x)
        H, W = x.shape[-2:]
        pad_h, pad_w = -H % self.patch_size, -W % self.patch_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.conv_proj(x)
        grid_size = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)
        B = x.shape[0]
        special = [self.reg_tokens.expand(B, -1, -1), self.class_token.expand(B, -1, -1)]
        x = torch.cat(special + [x], dim=1) + self.position_embedding(grid_size)
        rope = self.rope_embedding(grid_size, x.device)
        for block in self.encoder.block:
            if self.use_act_checkpoint and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, rope, grid_size, use_reentrant=False)
            else:
                x = block(x, rope, grid_size)
        return x, grid_size

    def detection_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"neck": (B, embed_dim, ceil(H / patch), ceil(W / patch))}``: the last block's patch tokens,
        without the final norm (birder's ``detection_features``)."""
        tokens, (gh, gw) = self._encode(x)
        patches = tokens[:, self.num_special_tokens :].transpose(1, 2)
        return {"neck": patches.reshape(x.shape[0], self.embed_dim, gh, gw)}

    def forward_classification(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits: final norm, class token, classifier (birder's classification forward)."""
        if self.classifier is None:
            raise RuntimeError("this RoPEViT has no classifier; build it with num_classes > 0")
        tokens, _ = self._encode(x)
        return self.classifier(self.norm(tokens)[:, self.num_reg_tokens])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.detection_features(x)
