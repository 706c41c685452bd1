"""birder -> detectron2 conversion: the key table, strictness (leftover / missing keys, shapes), metadata,
and the converter tool, checked by loading with detectron2's own DetectionCheckpointer."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from ropevit_det.checkpoint import (
    KeyMappingError,
    birder_to_d2_checkpoint,
    birder_to_d2_key_table,
    check_against_model,
    convert_birder_state,
    read_birder_checkpoint,
)
from ropevit_det.checkpoint.birder_format import sha256_of
from ropevit_det.cli import convert as convert_birder_to_d2  # noqa: E402  (tools/convert_birder_to_d2.py)
from tests.checkpoint_helpers import (
    CLASS_TO_IDX,
    REPO_ROOT,
    RGB_STATS,
    TINY,
    TINY_SIZE,
    build_d2_model,
    make_birder_net,
    neck_parity,
    save_birder_pt,
    save_birder_safetensors,
    tiny_cfg,
)


@pytest.fixture(scope="module")
def birder_net():
    return make_birder_net()


@pytest.fixture(scope="module", params=["pt", "safetensors"])
def birder_file(request, birder_net, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    save = save_birder_pt if request.param == "pt" else save_birder_safetensors
    return save(birder_net, directory)


def test_key_table_is_one_to_one_and_complete_for_birder():
    table = birder_to_d2_key_table(depth=12)
    assert len(table) == 5 + 12 * 12 + 2
    assert len(set(table.values())) == len(table)
    assert table["encoder.block.11.mlp.3.bias"] == "backbone.net.vit.encoder.block.11.mlp.3.bias"
    assert "classifier.weight" not in table
    assert birder_to_d2_key_table(12, keep_classifier=True)["classifier.weight"] == "backbone.net.vit.classifier.weight"
    # The table, built from the depth alone, covers exactly birder's full-size state dict minus the classifier.
    full = make_birder_net(config=None, size=336)
    assert set(table) == set(full.state_dict()) - {"classifier.weight", "classifier.bias"}


def test_read_both_formats_gives_the_same_checkpoint(birder_net, birder_file):
    ckpt = read_birder_checkpoint(birder_file)
    assert ckpt.resolution == (TINY_SIZE, TINY_SIZE)
    assert ckpt.class_to_idx == CLASS_TO_IDX
    assert ckpt.rgb_stats == {k: tuple(v) for k, v in RGB_STATS.items()}
    assert ckpt.source_name == birder_file.name and ckpt.sha256 == sha256_of(birder_file)
    assert ckpt.state.keys() == birder_net.state_dict().keys()
    for key, value in birder_net.state_dict().items():
        torch.testing.assert_close(ckpt.state[key], value, rtol=0, atol=0)


def test_converted_checkpoint_carries_metadata(birder_file):
    ckpt = read_birder_checkpoint(birder_file)
    out = birder_to_d2_checkpoint(ckpt)
    assert out["__author__"] == "ropevit_det" and out["matching_heuristics"] is False
    assert all(k.startswith("backbone.net.vit.") for k in out["model"])
    assert not any("classifier" in k for k in out["model"])
    assert out["pixel_mean"] == pytest.approx([255 * m for m in RGB_STATS["mean"]])
    assert out["pixel_std"] == pytest.approx([255 * s for s in RGB_STATS["std"]])
    assert out["input_format"] == "RGB"
    assert out["resolution"] == [TINY_SIZE, TINY_SIZE]
    assert out["source_file"] == birder_file.name and out["source_sha256"] == sha256_of(birder_file)
    assert out["class_to_idx"] == CLASS_TO_IDX
    kept = birder_to_d2_checkpoint(ckpt, keep_classifier=True)["model"]
    torch.testing.assert_close(kept["backbone.net.vit.classifier.weight"], ckpt.state["classifier.weight"])


def test_leftover_source_key_is_an_error_naming_it(birder_net):
    state = dict(birder_net.state_dict())
    state["encoder.block.0.attn.q_norm.weight"] = torch.ones(32)
    with pytest.raises(KeyMappingError, match=r"left over.*encoder\.block\.0\.attn\.q_norm\.weight"):
        convert_birder_state(state)


def test_missing_source_key_is_an_error_naming_it(birder_net):
    state = dict(birder_net.state_dict())
    del state["encoder.block.1.norm2.bias"], state["reg_tokens"]
    with pytest.raises(KeyMappingError, match=r"missing.*encoder\.block\.1\.norm2\.bias") as info:
        convert_birder_state(state)
    assert "reg_tokens" in str(info.value)


def test_keep_classifier_without_a_classifier_is_an_error(birder_net):
    state = {k: v for k, v in birder_net.state_dict().items() if not k.startswith("classifier.")}
    with pytest.raises(KeyMappingError, match=r"classifier\.weight.*without keep_classifier") as info:
        convert_birder_state(state, keep_classifier=True)
    assert info.value.argument == "keep_classifier" and "--" not in str(info.value)  # the library's terms


def test_converter_names_the_flag_of_the_argument_at_fault(birder_net, tmp_path, capsys, monkeypatch):
    """The library's error names ``keep_classifier``; the command line adds its flag."""
    import dataclasses

    real_read = convert_birder_to_d2.read_birder_checkpoint

    def read_without_classifier(path):
        checkpoint = real_read(path)
        state = {k: v for k, v in checkpoint.state.items() if not k.startswith("classifier.")}
        return dataclasses.replace(checkpoint, state=state)

    monkeypatch.setattr(convert_birder_to_d2, "read_birder_checkpoint", read_without_classifier)
    src = save_birder_pt(birder_net, tmp_path)
    assert convert_birder_to_d2.main([str(src), str(tmp_path / "o.pth"), "--keep-classifier"]) == 1
    err = capsys.readouterr().err
    assert "without keep_classifier" in err and "ERROR: --keep-classifier: " in err
    assert not (tmp_path / "o.pth").exists()


def test_narrower_vit_into_wider_config_names_tensor_and_both_shapes(tmp_path):
    """ViT-S into ViT-B, scaled down: a width-32 checkpoint against a width-64 model."""
    narrow = make_birder_net(config={**TINY, "hidden_dim": 32, "mlp_dim": 64})
    ckpt = read_birder_checkpoint(save_birder_pt(narrow, tmp_path))
    model = build_d2_model(tiny_cfg())
    with pytest.raises(KeyMappingError) as info:
        birder_to_d2_checkpoint(ckpt, model_state=model.state_dict())
    message = str(info.value)
    assert "backbone.net.vit.conv_proj.weight: checkpoint (32, 3, 14, 14) vs model (64, 3, 14, 14)" in message
    assert "backbone.net.vit.pos_embedding: checkpoint (1, 21, 32) vs model (1, 21, 64)" in message
    assert "ViT-S" in message


def test_resolution_mismatch_hint_names_the_weights_resolution(birder_net, tmp_path):
    ckpt = read_birder_checkpoint(save_birder_pt(birder_net, tmp_path))
    converted = birder_to_d2_checkpoint(ckpt)["model"]
    model = build_d2_model(tiny_cfg(img_size=84))
    expected = r"pos_embedding: checkpoint \(1, 21, 64\) vs model \(1, 41, 64\)"
    with pytest.raises(KeyMappingError, match=expected) as info:
        check_against_model(converted, model.state_dict(), resolution=ckpt.resolution)
    assert "trained at 56x56" in str(info.value) and "PRETRAIN_IMG_SIZE" in str(info.value)


def test_converted_file_loads_with_plain_detectron2_checkpointer(birder_net, birder_file, tmp_path):
    dst = tmp_path / "converted.pth"
    assert convert_birder_to_d2.main([str(birder_file), str(dst)]) == 0
    model = build_d2_model(tiny_cfg())
    assert neck_parity(model, birder_net, TINY_SIZE) > 1e-2  # sanity: a fresh model differs from birder
    extra = DetectionCheckpointer(model).load(str(dst))
    assert neck_parity(model, birder_net, TINY_SIZE) < 1e-5
    assert extra["source_sha256"] == sha256_of(birder_file)


def test_converter_keep_classifier_and_refuses_to_overwrite(birder_net, tmp_path, capsys):
    src = save_birder_pt(birder_net, tmp_path)
    dst = tmp_path / "with_classifier.pth"
    assert convert_birder_to_d2.main([str(src), str(dst), "--keep-classifier"]) == 0
    saved = torch.load(dst, weights_only=True)
    assert "backbone.net.vit.classifier.weight" in saved["model"]
    assert convert_birder_to_d2.main([str(src), str(dst)]) == 2
    assert "--force" in capsys.readouterr().err


def test_converter_reports_bad_input_without_traceback(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("not a checkpoint")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "convert_birder_to_d2.py"), str(bad), str(tmp_path / "o.pth")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "notes.pt" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.pth").exists()


def test_converter_help_explains_itself():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "convert_birder_to_d2.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    for phrase in (".safetensors", "weights_only=True", "--keep-classifier", "pixel_mean", "sha256", "birder://"):
        assert phrase in result.stdout, phrase


def test_format_is_recognised_by_content_not_name(birder_net, tmp_path):
    src = save_birder_safetensors(birder_net, tmp_path)
    renamed = tmp_path / "downloaded.pt"
    renamed.write_bytes(src.read_bytes())
    ckpt = read_birder_checkpoint(renamed)
    assert ckpt.class_to_idx == CLASS_TO_IDX and ckpt.state.keys() == birder_net.state_dict().keys()


def test_resolution_falls_back_to_the_position_embedding(birder_net, tmp_path):
    """Without an input shape in the signature, the grid of pos_embedding (after 5 special tokens) decides."""
    path = tmp_path / "no_signature.pt"
    torch.save({"state": birder_net.state_dict(), "signature": {}, "rgb_stats": RGB_STATS}, path)
    assert read_birder_checkpoint(path).resolution == (TINY_SIZE, TINY_SIZE)
