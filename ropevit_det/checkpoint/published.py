"""The published birder weights this project starts from, addressable as ``birder://NAME``.

The values are copied from birder 0.8.4's own registry (``birder/net/rope_vit.py`` and
``birder.common.lib.get_pretrained_model_url``) so that downloading needs no birder at run time;
``tests/checkpoint/test_checkpoint_published.py`` checks that this table still equals birder's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PublishedWeights", "PUBLISHED_WEIGHTS", "get_published"]

_HF = "https://huggingface.co/birder-project"
_CAPI = "RoPE ViT Reg4 B/14, pretrained with CAPI (self-supervised)"


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
        description: one line for humans: what the weights were trained on.
        classifier: the classification head the file carries ("" for none: an encoder only).
    """

    name: str
    network: str
    base_url: str
    sha256: str
    size_mb: float
    resolution: tuple[int, int]
    description: str
    classifier: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.pt"

    def url(self, base_url: str | None = None) -> str:
        """Download URL; ``base_url`` replaces the published folder (mirrors, tests)."""
        return f"{(base_url or self.base_url).rstrip('/')}/{self.file_name}"


def _published(tag: str, folder: str, sha256: str, size_mb: float, side: int, trained_on: str, classifier: str):
    name = f"rope_vit_reg4_b14_{tag}"
    return PublishedWeights(
        name=name,
        network="rope_vit_reg4_b14",
        base_url=f"{_HF}/{folder}/resolve/main",
        sha256=sha256,
        size_mb=size_mb,
        resolution=(side, side),
        description=f"{_CAPI}{trained_on}, {side} px",
        classifier=classifier,
    )


# Every rope_vit_reg4_b14 checkpoint of birder 0.8.4's registry (tests/checkpoint/test_checkpoint_published.py
# compares).
PUBLISHED_WEIGHTS: dict[str, PublishedWeights] = {
    w.name: w
    for w in (
        _published(
            "capi",
            "rope_vit_reg4_b14_capi",
            "175378d81734649567bfe82aac9557f9b0bf48dbd562f26e338b1958fa057472",
            327.0,
            224,
            ", not fine-tuned (ViTDet's MAE start, in kind)",
            "",
        ),
        _published(
            "capi-imagenet21k",
            "rope_vit_reg4_b14_capi-imagenet21k",
            "1325f35f0d8dff3270d6ce645f81865e9b8de7bacf17f94a9f5e2ef0cd66f56d",
            383.7,
            224,
            ", fine-tuned on ImageNet-21K",
            "ImageNet-21K classes",
        ),
        _published(
            "capi-places365",
            "rope_vit_reg4_b14_capi-places365",
            "4d3ef700eb0d454c9406e9b5c11f70106b46ed4a6ca24c1d89a60097ad78ea9a",
            328.1,
            224,
            ", fine-tuned on Places365 (scenes)",
            "Places365 scene classes",
        ),
        _published(
            "capi-intermediate-eu-common",
            "rope_vit_reg4_b14_capi-intermediate-eu-common",
            "5f9529dbb354ac755ee7c584fdc9227f469233ca35a09998ddf57afa54199e44",
            330.1,
            336,
            " with intermediate training, fine-tuned on eu-common (common European species)",
            "eu-common species",
        ),
        _published(
            "capi-inat21",
            "rope_vit_reg4_b14_capi-inat21",
            "25befb5a460cc80a5a7961db61e747916461bf6967f3d39d9294ee474bd31304",
            358.2,
            336,
            ", fine-tuned on iNaturalist 2021 (10,000 species)",
            "iNat21 species",
        ),
        _published(
            "capi-inat21-224px",
            "rope_vit_reg4_b14_capi-inat21",
            "fb98a4f29a1c6e552a4e22eaf614b0f2d2adedefe2d510fa7e69309208dc0f9f",
            357.2,
            224,
            ", fine-tuned on iNaturalist 2021 (10,000 species)",
            "iNat21 species",
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
