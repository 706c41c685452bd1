"""Bad files: truncated, corrupt, foreign, or carrying pickled code. Each gives a clear ValueError that names
the file and says what to do; a pickle payload is refused (weights_only=True) and never runs."""

from __future__ import annotations

import os
import pickle

import pytest
import safetensors.torch
import torch

from ropevit_det.checkpoint import RoPEViTCheckpointer, read_birder_checkpoint
from tests.checkpoint_helpers import (
    build_d2_model,
    make_birder_net,
    save_birder_pt,
    save_birder_safetensors,
    tiny_cfg,
    vit_state,
)


class MkdirPayload:
    """Unpickling this calls ``os.mkdir(path)``: a visible, harmless stand-in for arbitrary code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    net = make_birder_net()
    directory = tmp_path_factory.mktemp("good")
    return {"pt": save_birder_pt(net, directory), "safetensors": save_birder_safetensors(net, directory)}


def _truncated(src, dst, fraction=0.5):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
@pytest.mark.parametrize("fraction", [0.5, 0.999])
def test_truncated_file_gives_a_clear_error(good_files, tmp_path, fmt, fraction):
    path = _truncated(good_files[fmt], tmp_path / f"partial.{fmt}", fraction)
    with pytest.raises(ValueError) as info:
        read_birder_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "truncated" in message and "Download the checkpoint again" in message
    assert info.value.__cause__ is not None  # the original error stays available for debugging
    assert "Traceback" not in message and "_pickle" not in message


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"", "truncated"),
        (b"these are my notes, not weights\n", "truncated, corrupt, or not a checkpoint"),
        (bytes(range(256)) * 40, "not a PyTorch checkpoint"),
    ],
    ids=["empty", "text", "binary-noise"],
)
def test_non_checkpoint_files_give_a_clear_error(tmp_path, content, expected):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=expected) as info:
        read_birder_checkpoint(path)
    assert str(path) in str(info.value)


def test_safetensors_without_birder_metadata_is_named(tmp_path):
    path = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"conv_proj.weight": torch.zeros(2, 3, 14, 14)}, str(path))
    with pytest.raises(ValueError, match=r"not a birder checkpoint: its metadata lacks \['signature', 'rgb_stats'\]"):
        read_birder_checkpoint(path)


def test_torch_file_that_is_not_birder_names_the_missing_keys(tmp_path):
    path = tmp_path / "detectron2.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "iteration": 3}, path)
    with pytest.raises(ValueError, match=r"missing \['state', 'signature', 'rgb_stats'\].*detectron2 checkpoint"):
        read_birder_checkpoint(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        read_birder_checkpoint(tmp_path / "nowhere.pt")


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_pickled_code_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "payload_ran"
    payload = {"state": {"w": torch.zeros(1)}, "signature": {}, "rgb_stats": MkdirPayload(str(marker))}
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(ValueError, match="nothing from the file was executed|Nothing from the file was executed"):
        read_birder_checkpoint(path)
    assert not marker.exists()
    model = build_d2_model(tiny_cfg())
    before = vit_state(model)
    with pytest.raises(ValueError, match=r"(?i)nothing from the file was executed"):
        RoPEViTCheckpointer(model).load(str(path))
    assert not marker.exists()
    assert all(torch.equal(before[k], v) for k, v in vit_state(model).items())
    # Control: the payload is live, so the checks above could fail. An unsafe load runs it.
    if writer == "torch.save":
        torch.load(path, weights_only=False)
    else:
        with open(path, "rb") as f:
            pickle.load(f)
    assert marker.is_dir()


def test_refusal_message_names_the_offending_global(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state": MkdirPayload(str(tmp_path / "x"))}, path)
    with pytest.raises(ValueError, match=r"refused to load.*mkdir"):
        read_birder_checkpoint(path)


def test_truncated_file_through_the_checkpointer(good_files, tmp_path):
    path = _truncated(good_files["pt"], tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="truncated"):
        RoPEViTCheckpointer(build_d2_model(tiny_cfg())).load(str(path))
