"""Multi-head attention (global, or with a key mask for windows), with a faster CPU path for bf16 inference.

On CPU in bf16, PyTorch's fused flash-attention kernel (``F.scaled_dot_product_attention``) runs far below
the bf16 matrix-product peak. The same attention written as per-head 2-D products, ``softmax(q_c k^T) v``
over chunks of queries, runs its two products on oneDNN's bf16 GEMM close to the peak, and the chunk x N
score block of one head stays in cache (docs/PERFORMANCE.md has the measurements and the command). No
maintained library offers this (SDPA's CPU backends are flash and the slower math path), hence the few
lines here.

The chunked path (global blocks, and the windows of windowed blocks) is taken only for bf16 inference on a CPU:

* CPU, bf16 inputs: fp32 keeps SDPA, so the parity mode stays bit-identical to birder;
* no autograd graph: backward through the chunks would keep every score block (N x N per head), which is
  what flash attention exists to avoid, so training keeps SDPA.

Its one numerical difference from the flash kernel: scores are rounded to bf16 before the softmax (see
``chunked_cpu_attention``), measured and bounded in ``tests/modeling/test_attention.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "CPU_QUERY_CHUNK",
    "chunked_cpu_attention",
    "attention",
    "uses_chunked_cpu_attention",
]

# Queries per chunk: a 256 x 5,481 bf16 score block (1024 px) is 2.7 MiB, cache-sized. Nearby sizes measured alike
# at 1024 px on the 2-core benchmark machine; 64 is 25% slower (too many small products).
CPU_QUERY_CHUNK = 256
# Bytes of one block of scores: about a core's L2 share, so softmax reads the scores from cache.
SCORE_BLOCK_BYTES = 3 * 2**20


def uses_chunked_cpu_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether ``attention`` takes the chunked CPU path for these inputs."""
    needs_graph = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
    return q.device.type == "cpu" and q.dtype == torch.bfloat16 and not needs_graph


def chunked_cpu_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None = None,
    query_chunk: int = CPU_QUERY_CHUNK,
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` for (B, heads, N, d) tensors, in cache-sized blocks of scores.

    Args:
        q, k, v: (B, heads, Nq, d) and (B, heads, Nk, d).
        key_mask: optional boolean (B or 1, 1, 1, Nk), False for keys to ignore (as SDPA's ``attn_mask``);
            every query must keep at least one key.
        query_chunk: queries per block.

    Long sequences (global blocks) go one head at a time; short ones (windows) take as many heads per
    product as fit ``SCORE_BLOCK_BYTES``. Precision: the products accumulate in fp32 but, unlike the flash
    kernel, return bf16 scores (PyTorch has no bf16 x bf16 -> fp32 product on CPU), so the softmax sees
    scores rounded to bf16; see ``tests/modeling/test_attention.py`` for the error this adds.
    """
    if q.dim() != 4 or k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"expected (B, heads, N, d) q, k, v; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    batch, heads, num_queries, head_dim = q.shape
    num_keys = k.shape[2]
    # Scaling q (N x d) is cheaper than scaling the scores (N x N); for d = 64 the scale 1/8 is exact.
    # Row-major operands (q, v and k^T, as (N, d) and (d, N) per head): the products run measurably faster
    # than on the strided views that the qkv projection's reshape/permute hands us.
    q = torch.mul(q, head_dim**-0.5, out=torch.empty(q.shape, dtype=q.dtype, device=q.device))
    k_t = k.transpose(-1, -2).contiguous()
    v = v.contiguous()
    bias = None
    if key_mask is not None:
        bias = torch.zeros(key_mask.shape, dtype=q.dtype, device=q.device).masked_fill(~key_mask, float("-inf"))
    chunk = min(query_chunk, num_queries)
    heads_per_step = max(1, min(heads, SCORE_BLOCK_BYTES // (chunk * num_keys * q.element_size())))
    out = torch.empty(batch, heads, num_queries, head_dim, dtype=q.dtype, device=q.device)
    # Autocast off: the inputs are already in the dtype wanted, and CPU autocast must not promote the
    # softmax or the products to fp32 behind our back.
    with torch.autocast(device_type="cpu", enabled=False):
        for b in range(batch):
            bias_b = None if bias is None else bias[b if bias.shape[0] > 1 else 0]
            for h0 in range(0, heads, heads_per_step):
                # An int index for single heads: 2-D products (mm) are faster than 1-batch bmm.
                hs = h0 if heads_per_step == 1 else slice(h0, h0 + heads_per_step)
                k_t_bh, v_bh = k_t[b, hs], v[b, hs]
                for start in range(0, num_queries, chunk):
                    qs = slice(start, start + chunk)
                    scores = torch.matmul(q[b, hs, qs], k_t_bh)
                    if bias_b is not None:
                        scores += bias_b
                    torch.matmul(torch.softmax(scores, dim=-1), v_bh, out=out[b, hs, qs])
    return out


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention with an optional boolean key mask (SDPA's ``attn_mask``): SDPA, or the chunked CPU path for
    bf16 inference (see the module docstring)."""
    if uses_chunked_cpu_attention(q, k, v):
        return chunked_cpu_attention(q, k, v, key_mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
