"""The load report (``backbone: N/M tensors loaded; heads: ...``) counts the tensors actually copied."""

from __future__ import annotations

import logging
import re

import torch
from fvcore.common.checkpoint import _IncompatibleKeys

from ropevit_det.checkpoint import VIT_PREFIX, RoPEViTCheckpointer, birder_to_d2_checkpoint, read_birder_checkpoint
from ropevit_det.checkpoint.checkpointer import load_report
from tests.checkpoint_helpers import build_d2_model, make_birder_net, save_birder_pt, tiny_cfg

LOGGER = "ropevit_det.checkpoint.checkpointer"
REPORT = re.compile(r"backbone: (\d+)/(\d+) tensors loaded; heads: (.*)")


def _report(caplog) -> re.Match:
    lines = [m for r in caplog.records if (m := REPORT.fullmatch(r.getMessage()))]
    assert len(lines) == 1, caplog.messages
    return lines[0]


def test_vit_only_checkpoint_counts_the_vit_and_no_head(tmp_path, caplog):
    d2 = birder_to_d2_checkpoint(read_birder_checkpoint(save_birder_pt(make_birder_net(), tmp_path)))
    torch.save(d2, tmp_path / "vit_only.pth")
    model = build_d2_model(tiny_cfg())
    with caplog.at_level(logging.INFO, logger=LOGGER):
        RoPEViTCheckpointer(model).load(str(tmp_path / "vit_only.pth"))
    state = model.state_dict()
    # Counted independently: ViT tensors of the model that now hold exactly the file's values.
    copied = [k for k in state if k.startswith(VIT_PREFIX) and torch.equal(state[k], d2["model"][k])]
    n_vit = sum(k.startswith(VIT_PREFIX) for k in state)
    match = _report(caplog)
    assert (int(match[1]), int(match[2])) == (len(copied), n_vit) == (n_vit, n_vit)
    assert match[3] == "initialised from scratch"


def test_vit_and_every_head_tensor_count_both(tmp_path, caplog):
    source = build_d2_model(tiny_cfg())
    d2 = birder_to_d2_checkpoint(read_birder_checkpoint(save_birder_pt(make_birder_net(), tmp_path)))
    heads = {k: v for k, v in source.state_dict().items() if not k.startswith(VIT_PREFIX)}
    d2["model"].update(heads)
    torch.save(d2, tmp_path / "full.pth")
    model = build_d2_model(tiny_cfg())
    with caplog.at_level(logging.INFO, logger=LOGGER):
        RoPEViTCheckpointer(model).load(str(tmp_path / "full.pth"))
    match = _report(caplog)
    assert match[1] == match[2] and match[3] == f"{len(heads)}/{len(heads)} tensors loaded"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in heads.items())


def test_tensors_skipped_by_the_loader_are_not_counted():
    model_state = {VIT_PREFIX + "a": 0, VIT_PREFIX + "b": 0, VIT_PREFIX + "c": 0, "head.w": 0, "head.b": 0}
    offered = [VIT_PREFIX + "a", VIT_PREFIX + "b", VIT_PREFIX + "c", "head.w", "extra"]
    skipped = _IncompatibleKeys(
        missing_keys=["head.b"], unexpected_keys=["extra"], incorrect_shapes=[(VIT_PREFIX + "c", (2,), (3,))]
    )
    assert load_report(model_state, offered, skipped) == (
        "backbone: 2/3 tensors loaded; heads: 1/2 tensors loaded, the rest initialised from scratch"
    )


def test_a_file_without_classifier_says_so(tmp_path, caplog):
    """As the self-supervised rope_vit_reg4_b14_capi: an encoder with no classification head."""
    path = save_birder_pt(make_birder_net(num_classes=0), tmp_path, num_classes=0)
    model = build_d2_model(tiny_cfg())
    with caplog.at_level(logging.INFO, logger=LOGGER):
        RoPEViTCheckpointer(model).load(str(path))
    match = _report(caplog)
    assert match[1] == match[2]
    assert (
        match[3] == "initialised from scratch; classifier: none in the file (an encoder without a classification head)"
    )
