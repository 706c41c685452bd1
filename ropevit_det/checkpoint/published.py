"""The published birder weights this project starts from, addressable as ``birder://NAME``.

The values are copied from birder 0.8.4's own registry (``birder/net/rope_vit.py`` and
``birder.common.lib.get_pretrained_model_url``) so that downloading needs no birder at run time;
``tests/test_checkpoint_published.py`` checks that this table still equals birder's.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PublishedWeights", "PUBLISHED_WEIGHTS", "get_published"]

_INAT21_BASE_URL = "https://huggingface.co/birder-project/rope_vit_reg4_b14_capi-inat21/resolve/main"
_INAT21_DESCRIPTION = "RoPE ViT Reg4 B/14, pretrained with CAPI, fine-tuned on iNaturalist 2021 (10,000 species)"


@dataclass(frozen=True)
class PublishedWeights:
    """One published birder checkpoint.

    Args:
        name: birder's weights name, also the file stem (``NAME.pt``).
        network: birder network name.
        base_url: the folder the file is served from.
        sha256: hex digest of ``NAME.pt``.
        size_mb: file size in MB as birder's registry states it.
        resolution: ``(height, width)`` the weights were fine-tuned at.
        description: one line for humans.
    """

    name: str
    network: str
    base_url: str
    sha256: str
    size_mb: float
    resolution: tuple[int, int]
    description: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.pt"

    def url(self, base_url: str | None = None) -> str:
        """Download URL; ``base_url`` replaces the published folder (mirrors, tests)."""
        return f"{(base_url or self.base_url).rstrip('/')}/{self.file_name}"


PUBLISHED_WEIGHTS: dict[str, PublishedWeights] = {
    w.name: w
    for w in (
        PublishedWeights(
            name="rope_vit_reg4_b14_capi-inat21",
            network="rope_vit_reg4_b14",
            base_url=_INAT21_BASE_URL,
            sha256="25befb5a460cc80a5a7961db61e747916461bf6967f3d39d9294ee474bd31304",
            size_mb=358.2,
            resolution=(336, 336),
            description=_INAT21_DESCRIPTION + ", 336 px",
        ),
        PublishedWeights(
            name="rope_vit_reg4_b14_capi-inat21-224px",
            network="rope_vit_reg4_b14",
            base_url=_INAT21_BASE_URL,
            sha256="fb98a4f29a1c6e552a4e22eaf614b0f2d2adedefe2d510fa7e69309208dc0f9f",
            size_mb=357.2,
            resolution=(224, 224),
            description=_INAT21_DESCRIPTION + ", 224 px",
        ),
    )
}


def get_published(name: str) -> PublishedWeights:
    """Look up published weights by name.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    try:
        return PUBLISHED_WEIGHTS[name]
    except KeyError:
        raise ValueError(
            f"unknown published weights {name!r}; known: {sorted(PUBLISHED_WEIGHTS)}. "
            "For other birder weights, download the .pt file and pass its path."
        ) from None
