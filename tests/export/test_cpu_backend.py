"""The fast paths for CPUs without bf16 (``tools/infer.py --backend int8|onnxruntime``) against fp32 eager,
on the briefly trained shapes detector (``shapes_detector`` in conftest.py: confident boxes, so that the
comparison is of real detections, not of near-tied noise):

* neck cosine (per location, mean) >= 0.999 for the exact export (ONNX Runtime), >= 0.99 for int8 (both engines:
  torch.ao, the default, and torchao);
* every fp32 detection above 0.3 has a detection of its class with IoU >= 0.9 from the backend.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from ropevit_det.export import INT8_ENGINES
from tests.trained_shapes import MODEL_OVERRIDES, assert_matched, detections_of, load_shapes_model, shapes_inputs

try:
    import onnxruntime
except ImportError as exc:  # a failure, not a skip: setup_env.sh installs it (setup.py test extra)
    raise ImportError(f"{exc}: pip install onnx onnxruntime (or bash tools/setup_env.sh)") from None

MIN_SCORE, MIN_IOU = 0.3, 0.9
EXACT_MIN_COSINE, INT8_MIN_COSINE = 0.999, 0.99


@pytest.fixture(scope="module")
def trained(shapes_detector):
    cfg, model = load_shapes_model(shapes_detector)
    return cfg, model, shapes_inputs(shapes_detector)


def _neck_cosine(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(reference.flatten(2), candidate.flatten(2), dim=1).mean().item()


def _normalised(model, inputs) -> torch.Tensor:
    return torch.stack(
        [(i["image"].float() - model.pixel_mean.view(3, 1, 1)) / model.pixel_std.view(3, 1, 1) for i in inputs[:2]]
    )


def _quantized_linears(module: torch.nn.Module) -> int:
    """How many linear layers of ``module`` hold int8 weights, whichever engine quantized them."""
    ao = [m for m in module.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    torchao = [
        m
        for m in module.modules()
        if isinstance(m, torch.nn.Linear) and type(m.weight).__module__.startswith("torchao.")
    ]
    return len(ao) + len(torchao)


@pytest.mark.parametrize("engine", INT8_ENGINES)
def test_int8_neck_cosine(trained, engine):
    from ropevit_det.export import quantize_vit_linears

    _, model, inputs = trained
    vit = model.backbone.net.vit
    images = _normalised(model, inputs)
    quantized = quantize_vit_linears(copy.deepcopy(vit), engine)
    # Every encoder linear layer (qkv, proj and the MLP's two per block), nothing outside the encoder.
    assert _quantized_linears(quantized) == _quantized_linears(quantized.encoder) == 4 * len(vit.encoder.block)
    with torch.no_grad():
        cosine = _neck_cosine(vit(images)["neck"], quantized(images)["neck"])
    assert INT8_MIN_COSINE <= cosine < 1.0, cosine  # < 1: int8 really ran


def test_torchao_engine_raises_no_deprecation_warning(trained):
    """The maintained engine: quantizing and running it warns of nothing deprecated (torch.ao does, every call)."""
    from ropevit_det.export import quantize_vit_linears

    _, model, inputs = trained
    images = _normalised(model, inputs)[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        quantized = quantize_vit_linears(copy.deepcopy(model.backbone.net.vit), "torchao")
        with torch.no_grad():
            quantized(images)


def test_default_int8_engine_is_torch_ao_while_torch_ships_it(monkeypatch):
    from ropevit_det.export import default_int8_engine

    assert default_int8_engine() == "torch.ao"  # the faster one on this CPU (docs/PERFORMANCE_MEGADETECTOR.md)
    monkeypatch.delattr(torch.ao.quantization, "quantize_dynamic")
    assert default_int8_engine() == "torchao"  # once PyTorch removes it


def test_unknown_int8_engine_is_refused(trained):
    from ropevit_det.export import quantize_vit_linears

    with pytest.raises(ValueError, match="unknown int8 engine 'fbgemm'"):
        quantize_vit_linears(copy.deepcopy(trained[1].backbone.net.vit), "fbgemm")


def test_onnx_neck_cosine(trained, tmp_path):
    from ropevit_det.export import export_vit_onnx

    _, model, inputs = trained
    vit = model.backbone.net.vit
    images = _normalised(model, inputs)[:1]
    path = tmp_path / "vit.onnx"
    path.write_bytes(export_vit_onnx(vit, tuple(images.shape[-2:])))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    neck = torch.from_numpy(session.run(None, {"image": images.numpy()})[0])
    with torch.no_grad():
        assert _neck_cosine(vit(images)["neck"], neck) >= EXACT_MIN_COSINE


@pytest.mark.parametrize("backend", ["int8", "int8:torchao", "onnxruntime"])
def test_backend_keeps_every_confident_fp32_detection(trained, backend):
    from ropevit_det.engine.predictor import Detector
    from ropevit_det.export import Int8Detector, cpu_detector

    cfg, model, inputs = trained
    if backend == "int8:torchao":
        fast = Int8Detector(model, engine="torchao")
    else:
        # The export at the frames' own size: a larger canvas would add padding tokens to global attention and
        # test the padding, not the runtime (eager batches of mixed sizes pad the same way).
        fast = cpu_detector(backend, model, cfg, threads=1, input_hw=tuple(inputs[0]["image"].shape[-2:]))
    reference = Detector(model, "cpu")
    confident_total = 0
    for item in inputs:
        confident_total += assert_matched(
            detections_of(reference([item])[0]),
            detections_of(fast([item])[0]),
            min_score=MIN_SCORE,
            min_iou=MIN_IOU,
            label=backend,
        )
    assert confident_total >= len(inputs), "too few confident detections: the guard would prove little"


def test_batch_job_runs_the_int8_backend(shapes_detector, trained, tmp_path, monkeypatch):
    import json

    from ropevit_det.camera_trap.detection.batch_job import run_batch_job
    from ropevit_det.camera_trap.detection.job_settings import BatchJobSettings
    from ropevit_det.export import cpu_backend

    calls: list[int] = []
    original = cpu_backend.Int8Detector.__call__
    monkeypatch.setattr(
        cpu_backend.Int8Detector, "__call__", lambda self, inputs: calls.append(1) or original(self, inputs)
    )
    out = tmp_path / "int8.json"
    summary = run_batch_job(
        BatchJobSettings(
            config_file=shapes_detector.config_file,
            weights=str(shapes_detector.weights),
            input=str(shapes_detector.val_images[0].parent),
            output=str(out),
            class_names="shape",
            num_workers=0,
            progress=False,
            backend="int8",
            opts=MODEL_OVERRIDES,
        )
    )
    assert summary.failures == 0
    assert calls, "--backend int8 did not run the int8 detector"
    images = json.loads(out.read_text())["images"]
    assert len(images) == len(shapes_detector.val_images)
    assert sum(len(i.get("detections", [])) for i in images) >= len(images)


def test_infer_tool_refuses_a_backend_with_bf16(tmp_path):
    from ropevit_det.cli import infer

    with pytest.raises(SystemExit, match="--backend int8 runs on the CPU in fp32"):
        infer.main(
            [
                "--config",
                "x.yaml",
                "--weights",
                "w.pth",
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "o.json"),
                "--backend",
                "int8",
                "--bf16",
            ]
        )
