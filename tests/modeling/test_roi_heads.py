"""The test-time candidate cap (ropevit_det/modeling/roi_heads.py): off by default and then exactly
detectron2's StandardROIHeads; when on, a prefix of detectron2's own output."""

from __future__ import annotations

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances

from ropevit_det.config import load_config
from ropevit_det.modeling.roi_heads import CandidateCappedFastRCNNOutputLayers, cap_candidates
from tests.conftest import CONFIGS, tiny_cfg

NUM_CLASSES = 20


def test_cap_keeps_exactly_the_best_foreground_scores() -> None:
    scores = torch.rand(50, NUM_CLASSES + 1, generator=torch.Generator().manual_seed(0))
    scores[7, 3] = float("nan")  # detectron2 drops this row itself; it must never be among the best
    capped = cap_candidates(scores, 40)
    kept = capped[:, :-1] > 0
    assert kept.sum() == 40
    finite = torch.where(torch.isfinite(scores[:, :-1]), scores[:, :-1], torch.tensor(-1.0))
    assert capped[:, :-1][kept].min() >= finite.flatten().topk(40).values.min()
    torch.testing.assert_close(capped[:, -1], scores[:, -1])  # background column untouched
    assert torch.isnan(capped[7, 3])
    assert cap_candidates(scores, 0) is scores and cap_candidates(scores, 50 * NUM_CLASSES) is scores


def _predictors(cap: int) -> tuple[FastRCNNOutputLayers, CandidateCappedFastRCNNOutputLayers]:
    kwargs = dict(
        input_shape=ShapeSpec(channels=32),
        box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=NUM_CLASSES,
        test_score_thresh=0.0,
        test_nms_thresh=0.5,
        test_topk_per_image=100,
    )
    torch.manual_seed(0)
    standard = FastRCNNOutputLayers(**kwargs)
    capped = CandidateCappedFastRCNNOutputLayers(**kwargs, test_topk_candidates=cap)
    capped.load_state_dict(standard.state_dict())
    # Larger weights than the default init: peaked class scores, as from a trained model.
    for layer in (standard.cls_score, capped.cls_score):
        torch.nn.init.normal_(layer.weight, std=0.5, generator=torch.Generator().manual_seed(1))
    return standard, capped


def _inputs(num_proposals: int = 300, size: int = 200):
    generator = torch.Generator().manual_seed(2)
    xy = torch.rand(num_proposals, 2, generator=generator) * size * 0.7
    wh = torch.rand(num_proposals, 2, generator=generator) * size * 0.3 + 4
    proposals = Instances((size, size), proposal_boxes=Boxes(torch.cat([xy, xy + wh], dim=1)))
    features = torch.randn(num_proposals, 32, generator=generator)
    return features, [proposals]


@pytest.mark.parametrize("cap", [0, 300 * NUM_CLASSES])
def test_no_cap_or_a_cap_above_all_candidates_is_detectron2_exactly(cap: int) -> None:
    standard, capped = _predictors(cap)
    features, proposals = _inputs()
    with torch.no_grad():
        expected, expected_idx = standard.inference(standard(features), proposals)
        got, got_idx = capped.inference(capped(features), proposals)
    assert len(expected[0]) == 100
    for field in ("pred_boxes", "scores", "pred_classes"):
        a, b = expected[0].get(field), got[0].get(field)
        torch.testing.assert_close(getattr(b, "tensor", b), getattr(a, "tensor", a), rtol=0, atol=0)
    torch.testing.assert_close(got_idx[0], expected_idx[0], rtol=0, atol=0)


@pytest.mark.parametrize("cap", [60, 150, 1000])  # 60: fewer candidates than detections per image
def test_capped_output_is_a_prefix_of_detectron2s(cap: int) -> None:
    """Greedy NMS decides each candidate from higher-scoring ones only, so keeping the top K decides
    them identically: the capped output is detectron2's, cut where the top K run out."""
    standard, capped = _predictors(cap)
    features, proposals = _inputs()
    with torch.no_grad():
        expected = standard.inference(standard(features), proposals)[0][0]
        got = capped.inference(capped(features), proposals)[0][0]
    n = len(got)
    assert 0 < n <= len(expected) and n <= cap
    torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor[:n], rtol=0, atol=0)
    torch.testing.assert_close(got.scores, expected.scores[:n], rtol=0, atol=0)
    torch.testing.assert_close(got.pred_classes, expected.pred_classes[:n], rtol=0, atol=0)
    if cap >= 1000:
        assert n == len(expected) == 100  # a cap 10x the detections per image changed nothing here


def test_capped_roi_heads_start_from_standard_roi_heads_weights() -> None:
    torch.manual_seed(0)
    standard = build_model(tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml", ["MODEL.ROI_HEADS.NAME", "StandardROIHeads"]))
    after_standard = torch.rand(1)
    torch.manual_seed(0)
    capped = build_model(tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml", ["MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST", "500"]))
    assert torch.rand(1) == after_standard  # the random state moved exactly as with StandardROIHeads
    assert isinstance(capped.roi_heads.box_predictor, CandidateCappedFastRCNNOutputLayers)
    assert capped.roi_heads.box_predictor.test_topk_candidates == 500
    a, b = standard.state_dict(), capped.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cap_with_heads_that_ignore_it_is_an_error() -> None:
    with pytest.raises(ValueError, match="CandidateCappedROIHeads"):
        load_config(str(CONFIGS / "ropevit_cascade_mrcnn.yaml"), ["MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST", "1000"])
    with pytest.raises(ValueError, match=">= 0"):
        load_config(str(CONFIGS / "ropevit_mrcnn.yaml"), ["MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST", "-1"])


def test_fused_channel_layer_norm_is_detectron2s_layer_norm() -> None:
    from detectron2.layers.batch_norm import LayerNorm

    from ropevit_det.modeling.norms import ChannelLayerNorm, use_fused_channel_layer_norms

    reference = LayerNorm(16)
    torch.nn.init.normal_(reference.weight)
    torch.nn.init.normal_(reference.bias)
    holder = torch.nn.Sequential(reference)
    x = torch.randn(3, 16, 7, 5) * 4 + 2
    expected = reference(x)
    assert use_fused_channel_layer_norms(holder) == 1
    fused = holder[0]
    assert isinstance(fused, ChannelLayerNorm) and fused.weight is reference.weight and fused.eps == reference.eps
    torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)
    assert fused(torch.zeros(0, 16, 14, 14)).shape == (0, 16, 14, 14)  # no detections: empty mask-head batch


def test_model_norms_are_fused_with_unchanged_parameter_names_and_outputs() -> None:
    import copy

    from detectron2.layers.batch_norm import LayerNorm

    from ropevit_det.modeling.norms import use_detectron2_layer_norms

    torch.manual_seed(0)
    standard_heads = build_model(tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml", ["MODEL.ROI_HEADS.NAME", "StandardROIHeads"]))
    torch.manual_seed(0)
    # Threshold 0: random weights score every class near 1/81, below the default 0.05.
    ours = build_model(tiny_cfg(CONFIGS / "ropevit_mrcnn.yaml", ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])).eval()
    assert not any(isinstance(m, LayerNorm) for m in ours.modules())  # pyramid, box head and mask head
    a, b = standard_heads.state_dict(), ours.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # The same model with detectron2's own LayerNorm put back everywhere: same detections.
    reference = copy.deepcopy(ours)
    # Pyramid: 2 per level plus 1 in the 4x upsampling; 4 convs each in the box and mask heads.
    assert use_detectron2_layer_norms(reference) == 9 + 4 + 4
    image = {"image": torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(1)) * 255}
    with torch.no_grad():
        features = ours.backbone(ours.preprocess_image([image]).tensor)
        got, expected = ours([image])[0]["instances"], reference([image])[0]["instances"]
    assert all(f.is_contiguous() for f in features.values())
    assert len(got) == len(expected) > 0
    torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(got.scores, expected.scores, rtol=1e-4, atol=1e-5)
    # Masks are thresholded at 0.5 after pasting: float rounding may flip a stray pixel, no more.
    assert (got.pred_masks != expected.pred_masks).float().mean() < 1e-3
