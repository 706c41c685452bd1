"""The camera-trap configs at MegaDetector 1000's CPU input sizes (``camera_trap/ropevit_faster_rcnn_cct{,_windowed}_
{640,768}.yaml``): the camera-trap recipe (global or windowed) with only the test size changed, so that a 4:3 frame
runs at 640 x 480 or 768 x 576, and a forward pass of the (tiny-depth) model at that size.
Their accuracy is unmeasured until a camera-trap model is trained (docs/PERFORMANCE_MEGADETECTOR.md)."""

from __future__ import annotations

import pytest
import torch
from detectron2.data import transforms as T
from detectron2.modeling import build_model

from ropevit_det import model_zoo
from tests.conftest import tiny_cfg

VARIANTS = [(base, px) for base in ("ropevit_faster_rcnn_cct", "ropevit_faster_rcnn_cct_windowed") for px in (640, 768)]


@pytest.mark.parametrize(("base", "px"), VARIANTS, ids=lambda v: str(v))
def test_size_config_is_its_base_with_another_test_size(base: str, px: int) -> None:
    cfg = model_zoo.get_config(f"camera_trap/{base}_{px}.yaml")
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (px * 3 // 4, px)
    reference = model_zoo.get_config(f"camera_trap/{base}.yaml")
    assert (reference.INPUT.MIN_SIZE_TEST, reference.INPUT.MAX_SIZE_TEST) == (800, 1333)
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 800, 1333
    assert cfg.dump() == reference.dump()  # nothing else differs: same training recipe, same weights


def _resized(cfg, frame_hw: tuple[int, int]):
    """A random frame of ``frame_hw`` resized as inference does (``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``)."""
    frame = torch.randint(0, 256, (*frame_hw, 3), dtype=torch.uint8).numpy()
    return (
        T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST).get_transform(frame).apply_image(frame)
    )


@pytest.mark.parametrize("px", [640, 768])
def test_the_long_side_of_a_16_9_frame_is_the_size_too(px: int) -> None:
    cfg = model_zoo.get_config(f"camera_trap/ropevit_faster_rcnn_cct_{px}.yaml")
    assert _resized(cfg, (1080, 1920)).shape[:2] == (px * 9 // 16, px)


@pytest.mark.parametrize(("base", "px"), VARIANTS, ids=lambda v: str(v))
def test_size_config_runs_a_frame_at_its_size(base: str, px: int) -> None:
    frame_hw = (1536, 2048)  # 4:3, the usual camera-trap frame
    cfg = tiny_cfg(
        model_zoo.get_config_file(f"camera_trap/{base}_{px}.yaml"),
        ["MODEL.ROPE_VIT.WINDOW_SIZE", "7", "MODEL.RPN.POST_NMS_TOPK_TEST", "50"],
    )
    resized = _resized(cfg, frame_hw)
    expected = (px * 3 // 4, px)
    assert resized.shape[:2] == expected  # the long side is px, as MegaDetector letterboxes to px
    model = build_model(cfg).eval()
    seen = []
    model.backbone.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        (out,) = model(
            [{"image": torch.as_tensor(resized).permute(2, 0, 1), "height": frame_hw[0], "width": frame_hw[1]}]
        )
    assert seen == [(-(-expected[0] // 32) * 32, px)]  # padded to the pyramid's divisibility, no further
    assert out["instances"].image_size == frame_hw
