"""Shared test helpers: tiny-depth detectron2 configs so end-to-end tests stay fast on 2 CPU cores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.camtrap_helpers import CAMTRAP_MINI  # noqa: F401  (the sample frames in tests/assets)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# A narrow, shallow ViT with the real patch size and token layout: same code paths, a fraction of the cost.
TINY_VIT_OVERRIDES = [
    "MODEL.ROPE_VIT.EMBED_DIM",
    "64",
    "MODEL.ROPE_VIT.DEPTH",
    "2",
    "MODEL.ROPE_VIT.NUM_HEADS",
    "2",
    "MODEL.ROPE_VIT.MLP_DIM",
    "128",
    "MODEL.DEVICE",
    "cpu",
    "MODEL.WEIGHTS",
    "",
    "MODEL.SFP.SQUARE_PAD",
    "0",  # LSJ configs pad every batch to 1024; tests use small images
    "MODEL.ROPE_VIT.GLOBAL_BLOCKS",
    "[1]",  # where a config windows attention (ViTDet-B: 2, 5, 8, 11), the last block stays global
]


def tiny_cfg(config_file: str | Path, extra: list[str] | None = None):
    """A frozen-able cfg from ``config_file`` with the tiny-ViT overrides applied."""
    from ropevit_det.config import load_config

    return load_config(str(config_file), TINY_VIT_OVERRIDES + (extra or []))


@pytest.fixture(autouse=True)
def _deterministic_seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shapes_detector(tmp_path_factory):
    """A briefly trained detector with confident boxes, shared by the tests that compare fast paths with fp32."""
    from tests.trained_shapes import train_shapes_detector

    return train_shapes_detector(tmp_path_factory.mktemp("shapes_detector"))
