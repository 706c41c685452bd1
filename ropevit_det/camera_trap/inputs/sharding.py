"""Deterministic parts of an input list: shards for job arrays, and each process's share of a distributed run.

Both use the same rule as detectron2's ``InferenceSampler``: contiguous runs of the sorted list, sizes
differing by at most one, earlier parts taking the remainder. Contiguous parts keep each camera folder on
few processes, and the rule depends only on the list and the numbers, so a re-run with the same flags
(``resume``) gives every process the same files again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["parse_shard", "part_of"]

T = TypeVar("T")


def part_of(items: Sequence[T], index: int, parts: int) -> list[T]:
    """The ``index``-th (0-based) of ``parts`` contiguous, near-equal parts of ``items``."""
    if parts < 1 or not 0 <= index < parts:
        raise ValueError(f"part index {index} is not in 0..{parts - 1}")
    size, left = divmod(len(items), parts)
    begin = index * size + min(index, left)
    end = begin + size + int(index < left)
    return list(items[begin:end])


def parse_shard(spec: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)``: the K-th (1-based, as SLURM's ``--array=1-N`` counts) of N shards."""
    try:
        k_text, n_text = spec.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ValueError(f"shard {spec!r} is not of the form K/N (e.g. 3/8)") from None
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"shard {spec!r}: K must be between 1 and N (N >= 1)")
    return k, n
