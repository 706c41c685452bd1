"""One benchmark run: every model and mode at every size and batch, in one process, under one set of rules.

Models are built one at a time and freed before the next, so each peak-memory figure belongs to one model.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from detectron2.utils.events import EventStorage

from .accuracy import BF16_MIN_COSINE, neck_agreement, windowed_copy
from .md1000 import PEERS, build_peer, peer_frame, peer_postprocess
from .measure import PeakMemory, matmul_peak_gflops, synchronize, time_repeats
from .megadetector import MDV5A_IMAGE_SIZE
from .models import (
    MDV5A_MODES,
    OUR_MODES,
    RUNTIME_TASKS,
    TINY_GLOBAL_BLOCKS,
    VITDET_GLOBAL_BLOCKS,
    VITDET_MODES,
    ModelSpec,
    auto_window_size,
    build_benchmark_model,
    synthetic_images,
    synthetic_training_batch,
)

logger = logging.getLogger(__name__)

INT8_MIN_COSINE = 0.99  # the quantization guard (tests/export/test_cpu_backend.py holds the same bound)
TASKS = ("backbone", "inference", "train_step")

__all__ = [
    "TASKS",
    "BenchmarkSettings",
    "DeviceUnavailableError",
    "Row",
    "SettingsError",
    "compute_ratios",
    "run_benchmark",
]


class SettingsError(ValueError):
    """A ``BenchmarkSettings`` field holds a value the run cannot use. ``field`` names it, so that a command
    line can name the flag that set it (``tools/benchmark.py`` does)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class DeviceUnavailableError(SettingsError, RuntimeError):
    """The ``device`` asked for is not there (a ``RuntimeError`` too: the machine lacks it, not the value)."""


@dataclass
class BenchmarkSettings:
    """What one run measures. See ``tools/benchmark.py --help`` for each option."""

    device: str = "cpu"
    sizes: Sequence[int] = (1024,)
    batches: Sequence[int] = (1,)
    train_batches: Sequence[int] | None = None  # None: the same as batches
    tasks: Sequence[str] = TASKS
    ours_modes: Sequence[str] = ("parity", "bf16", "fast")
    vitdet_modes: Sequence[str] = ("fp32",)
    mdv5a_modes: Sequence[str] = ()  # MegaDetector v5a peer: fp32 (CPU) and/or fp16 (GPU)
    # MegaDetector peers by name (md1000.PEERS: mdv5a, cedar, larch, sorrel, spruce), each run in the first of
    # mdv5a_modes (fp32 when none is given); "mdv5a" here is the same as mdv5a_modes=("fp32",)
    peers: Sequence[str] = ()
    boxes_only: bool = False  # ours without the mask head (Faster R-CNN, as the camera-trap config)
    interleave: bool = False  # round-robin repeats over all models (see measure_interleaved)
    warmup: int = 1
    repeats: int = 3
    window: int | None = None  # None: auto_window_size(size)
    score_thresh: float = 0.0
    topk_candidates: int = 0  # MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST for both models (0: detectron2's NMS as is)
    train_instances: int = 8
    weights: str = ""
    accuracy: bool = True
    accuracy_size: int | None = None  # None: the first benchmark size
    count_flops: bool = True
    tiny: bool = False
    threads: int | None = None

    def peer_mode(self) -> str:
        """The precision every MegaDetector peer runs in: the first of ``mdv5a_modes``, fp32 when none."""
        return self.mdv5a_modes[0] if self.mdv5a_modes else "fp32"

    def peer_specs(self) -> list[ModelSpec]:
        """One spec per MegaDetector model and mode measured: v5a in each of ``mdv5a_modes`` (or the peer mode
        when only ``peers`` names it), then each MegaDetector 1000 peer in the peer mode."""
        v5a_modes = list(self.mdv5a_modes) or (["fp32"] if "mdv5a" in self.peers else [])
        specs = [MDV5A_MODES[m] for m in v5a_modes]
        base = MDV5A_MODES[self.peer_mode()]
        for name in self.peers:
            if name != "mdv5a":
                peer = PEERS[name]
                specs.append(
                    dataclasses.replace(
                        base,
                        model=name,
                        description=f"MegaDetector 1000 {name} ({peer.architecture}), {base.mode}, "
                        f"{peer.image_size} px letterbox",
                    )
                )
        return specs

    def validate(self) -> None:
        """Raises ``SettingsError`` naming the field at fault (``DeviceUnavailableError`` for a missing CUDA
        device); ``ImportError`` where a mode's runtime package is not installed."""
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise SettingsError(f"unknown task(s) {unknown}; choose from {list(TASKS)}", "tasks")
        for name, modes, table in (
            ("ours", self.ours_modes, OUR_MODES),
            ("vitdet", self.vitdet_modes, VITDET_MODES),
            ("mdv5a", self.mdv5a_modes, MDV5A_MODES),
        ):
            bad = [m for m in modes if m not in table]
            if bad:
                raise SettingsError(f"unknown {name} mode(s) {bad}; choose from {sorted(table)}", f"{name}_modes")
        unknown_peers = [p for p in self.peers if p not in PEERS]
        if unknown_peers:
            raise SettingsError(f"unknown MegaDetector peer(s) {unknown_peers}; choose from {list(PEERS)}", "peers")
        runtimes = [OUR_MODES[m] for m in self.ours_modes if OUR_MODES[m].runtime]
        if runtimes and not self.device.startswith("cpu"):
            raise SettingsError(
                f"mode(s) {[s.mode for s in runtimes]} run the export on the CPU; device is {self.device!r}", "device"
            )
        # A runtime is named by its package (the test extra has onnxruntime; openvino is optional).
        for spec in runtimes:
            if importlib.util.find_spec(spec.runtime) is None:
                raise ImportError(f"mode {spec.mode!r} needs the {spec.runtime} package (pip install {spec.runtime})")
        if runtimes and not set(self.tasks) & set(RUNTIME_TASKS):
            raise SettingsError(
                f"mode(s) {[s.mode for s in runtimes]} measure task(s) {list(RUNTIME_TASKS)} only "
                f"(the export is the whole detector); tasks asked for: {list(self.tasks)}",
                "tasks",
            )
        if (self.mdv5a_modes or self.peers) and self.topk_candidates <= 0:
            raise SettingsError(
                "the MegaDetector peer needs a candidate cap for both models (e.g. topk_candidates "
                "1000): random weights pass every anchor, so uncapped post-processing measures noise",
                "topk_candidates",
            )
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {self.device!r} was asked for, but torch sees no CUDA device", "device"
            )
        if self.topk_candidates < 0:
            raise SettingsError(
                f"topk_candidates must be >= 0 (0 = no cap), got {self.topk_candidates}", "topk_candidates"
            )
        if any(s < 32 or s % 32 for s in self.sizes):
            raise SettingsError(
                f"sizes must be multiples of 32 (the pyramid's stride-32 level): {list(self.sizes)}", "sizes"
            )


@dataclass
class Row:
    model: str
    mode: str
    task: str
    size: int
    batch: int
    seconds_median: float | None
    peak_mem_mb: float | None
    gflops: float | None
    fraction_of_peak: float | None
    precision: str = "fp32"
    window: int = 0
    seconds_all: list[float] = field(default_factory=list)
    error: str | None = None  # e.g. CUDA out of memory: the row stays, with no figures

    @property
    def images_per_second(self) -> float | None:
        return self.batch / self.seconds_median if self.seconds_median else None


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _task_fn(
    task: str, model: torch.nn.Module, spec: ModelSpec, images: torch.Tensor, settings: BenchmarkSettings
) -> tuple[Callable[[], object], Callable[[], None]]:
    """(the unit of work for ``task``, a clean-up to call after measuring it)."""
    device = images.device
    if task == "backbone":
        model.eval()
        normalized = (images - model.pixel_mean) / model.pixel_std

        def backbone() -> object:
            with torch.no_grad(), _autocast(device, spec.autocast_dtype):
                return model.backbone(normalized)

        return backbone, lambda: None
    if task == "inference" and spec.runtime:
        inputs = [{"image": image} for image in images]  # the exported detector pads and post-processes itself
        return lambda: model(inputs), lambda: None
    if task == "inference":
        model.eval()
        inputs = [{"image": image} for image in images]

        def inference() -> object:
            with torch.no_grad(), _autocast(device, spec.autocast_dtype):
                return model(inputs)

        return inference, lambda: None
    if task == "train_step":
        model.train()
        batch = synthetic_training_batch(images, settings.train_instances)
        params = [p for p in model.parameters() if p.requires_grad]
        # The ViTDet recipe's optimizer (lr, weight decay); parameter groups do not change the step's cost.
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1)
        storage = EventStorage(0)  # detectron2's losses log to the current event storage

        def train_step() -> None:
            with storage:
                with _autocast(device, spec.autocast_dtype):
                    losses = model(batch)
                loss = sum(losses.values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        def cleanup() -> None:
            optimizer.state.clear()
            model.zero_grad(set_to_none=True)

        return train_step, cleanup
    raise ValueError(f"unknown task {task!r}")


def _skips(spec: ModelSpec, task: str) -> bool:
    """Whether ``spec`` has no row for ``task``: int8 layers have no backward, a runtime mode runs the whole
    exported detector only (``RUNTIME_TASKS``)."""
    return (task == "train_step" and spec.int8_linears) or (spec.runtime is not None and task not in RUNTIME_TASKS)


def _peak_for(spec: ModelSpec, peaks: dict[str, float]) -> float:
    return peaks["bf16" if spec.autocast_dtype is not None else "fp32"]


def measure_model(
    spec: ModelSpec, size: int, settings: BenchmarkSettings, peaks: dict[str, float], memory: PeakMemory
) -> list[Row]:
    """All tasks and batches for one model in one mode at one size."""
    device = torch.device(settings.device)
    window = 0
    if spec.windowed:
        window = settings.window or auto_window_size(size)
    memory.set_baseline()
    torch.manual_seed(0)
    model = build_benchmark_model(
        spec,
        size,
        settings.device,
        settings.score_thresh,
        window,
        settings.weights,
        settings.tiny,
        settings.topk_candidates,
        settings.boxes_only,
        settings.threads,
    )
    rows = []
    train_batches = settings.batches if settings.train_batches is None else settings.train_batches
    for batch in sorted(set(settings.batches) | set(train_batches if "train_step" in settings.tasks else ())):
        images = synthetic_images(batch, size, device)
        for task in settings.tasks:
            if batch not in (train_batches if task == "train_step" else settings.batches):
                continue
            if _skips(spec, task):
                continue  # int8: no backward; runtime modes: the exported whole detector only
            fn, cleanup = _task_fn(task, model, spec, images, settings)
            memory.reset_peak()
            started = time.perf_counter()
            # A compiled model compiles in its first runs (FLOP counting runs under a dispatch mode, so the
            # run after it compiles again): give it two more warm-up runs.
            warmup = settings.warmup + (2 if spec.compile_blocks else 0)
            try:
                # torch's FLOP counter does not see the quantized linear kernels (no (partial) count for
                # int8), nor what an ONNX runtime runs.
                timed = time_repeats(
                    fn,
                    device,
                    warmup,
                    settings.repeats,
                    settings.count_flops and not spec.int8_linears and not spec.runtime,
                )
            except torch.cuda.OutOfMemoryError as e:
                # One configuration that does not fit must not lose the rest of the run: keep a row saying so.
                cleanup()
                torch.cuda.empty_cache()
                logger.warning("%s/%s %s %dpx x%d: CUDA out of memory", spec.model, spec.mode, task, size, batch)
                rows.append(
                    Row(
                        spec.model,
                        spec.mode,
                        task,
                        size,
                        batch,
                        None,
                        None,
                        None,
                        None,
                        spec.precision,
                        window,
                        [],
                        f"CUDA out of memory: {str(e).splitlines()[0]}",
                    )
                )
                continue
            peak_mb = memory.peak_mb()
            cleanup()
            gflops = timed.flops / 1e9 if timed.flops is not None else None
            fraction = gflops / timed.median / _peak_for(spec, peaks) if gflops else None
            row = Row(
                spec.model,
                spec.mode,
                task,
                size,
                batch,
                timed.median,
                peak_mb,
                gflops,
                fraction,
                spec.precision,
                window,
                timed.seconds,
            )
            rows.append(row)
            logger.info(
                "%s/%s %s %dpx x%d: %.3f s median (%.0f s total), peak %s MB, %s GFLOP",
                spec.model,
                spec.mode,
                task,
                size,
                batch,
                row.seconds_median,
                time.perf_counter() - started,
                _fmt(peak_mb),
                _fmt(gflops),
            )
        del images
    del model
    return rows


MDV5A_TINY_IMAGE_SIZE = 320  # --tiny: a small letterbox, for smoke tests of the peer path


def mdv5a_image_size(settings: BenchmarkSettings) -> int:
    return peer_image_size("mdv5a", settings)


def peer_image_size(peer: str, settings: BenchmarkSettings) -> int:
    """The letterbox's long side for a MegaDetector peer (its published size; 320 with ``tiny``)."""
    return MDV5A_TINY_IMAGE_SIZE if settings.tiny else PEERS[peer].image_size


def mdv5a_task_fns(
    model: torch.nn.Module, spec: ModelSpec, settings: BenchmarkSettings, batch: int
) -> dict[str, Callable[[], object]]:
    """``{"backbone": the network alone, "inference": network + post-processing}`` on a batch of letterboxed
    4:3 frames (see ``megadetector.py`` and ``md1000.py``), for ``model`` from ``build_peer(spec.model)`` (made
    ``half()`` for fp16)."""
    device = torch.device(settings.device)
    frame = torch.from_numpy(peer_frame(spec.model, peer_image_size(spec.model, settings))).permute(2, 0, 1)
    pixels = frame.to(device).unsqueeze(0).repeat(batch, 1, 1, 1)
    half = spec.autocast_dtype == torch.float16  # MegaDetector runs model.half() on GPUs, not autocast
    autocast = spec.autocast_dtype if spec.autocast_dtype == torch.bfloat16 else None
    postprocess = peer_postprocess(spec.model, settings.topk_candidates)

    def scaled() -> torch.Tensor:  # MegaDetector's preprocessing of a uint8 batch
        x = pixels.float() / 255.0
        return x.half() if half else x

    network_input = scaled()

    def network() -> object:
        with torch.no_grad(), _autocast(device, autocast):
            return model(network_input)[0]

    def inference() -> object:
        with torch.no_grad(), _autocast(device, autocast):
            prediction = model(scaled())[0]
        return postprocess(prediction)

    return {"backbone": network, "inference": inference}


def _build_mdv5a(spec: ModelSpec, settings: BenchmarkSettings) -> torch.nn.Module:
    model = build_peer(spec.model, settings.device, tiny=settings.tiny)
    return model.half() if spec.autocast_dtype == torch.float16 else model


def measure_mdv5a(
    spec: ModelSpec, settings: BenchmarkSettings, peaks: dict[str, float], memory: PeakMemory
) -> list[Row]:
    """A MegaDetector model's network alone (task "backbone") and with its post-processing (task "inference");
    rows carry the letterbox's long side as their size and the peer's name as their model."""
    device = torch.device(settings.device)
    image_size = peer_image_size(spec.model, settings)
    memory.set_baseline()
    model = _build_mdv5a(spec, settings)
    rows = []
    for batch in settings.batches:
        for task, fn in mdv5a_task_fns(model, spec, settings, batch).items():
            if task not in settings.tasks:
                continue
            memory.reset_peak()
            timed = time_repeats(fn, device, settings.warmup, settings.repeats, settings.count_flops)
            gflops = timed.flops / 1e9 if timed.flops is not None else None
            fraction = gflops / timed.median / _peak_for(spec, peaks) if gflops else None
            row = Row(
                spec.model,
                spec.mode,
                task,
                image_size,
                batch,
                timed.median,
                memory.peak_mb(),
                gflops,
                fraction,
                spec.precision,
                0,
                timed.seconds,
            )
            rows.append(row)
            logger.info(
                "%s/%s %s %dpx x%d: %.3f s median, peak %s MB, %s GFLOP",
                spec.model,
                spec.mode,
                task,
                image_size,
                batch,
                row.seconds_median,
                _fmt(row.peak_mem_mb),
                _fmt(gflops),
            )
    del model
    return rows


def measure_interleaved(specs: Sequence[ModelSpec], size: int, settings: BenchmarkSettings) -> list[Row]:
    """Every model built once, warmed up, then ``settings.repeats`` rounds in which each (model, task, batch)
    runs once, in turn.

    Why: on a shared machine the load drifts over minutes; measured one model after another, the drift lands
    on whichever model ran during it and the ratios measure the neighbours. Round-robin spreads it over all
    models. All models stay resident, so no per-model peak memory is given (``peak_mem_mb`` is None: take it
    from a sequential run), and no FLOPs are counted."""
    device = torch.device(settings.device)
    jobs: list[tuple[ModelSpec, str, int, int, Callable[[], object]]] = []
    models = []
    for spec in specs:
        torch.manual_seed(0)
        if spec.model in PEERS:
            model = _build_mdv5a(spec, settings)
            for batch in settings.batches:
                for task, fn in mdv5a_task_fns(model, spec, settings, batch).items():
                    if task in settings.tasks:
                        jobs.append((spec, task, peer_image_size(spec.model, settings), batch, fn))
        else:
            window = (settings.window or auto_window_size(size)) if spec.windowed else 0
            model = build_benchmark_model(
                spec,
                size,
                settings.device,
                settings.score_thresh,
                window,
                settings.weights,
                settings.tiny,
                settings.topk_candidates,
                settings.boxes_only,
                settings.threads,
            )
            for batch in settings.batches:
                images = synthetic_images(batch, size, device)
                for task in settings.tasks:
                    if task == "train_step":
                        raise ValueError("interleaved runs measure inference tasks only (backbone, inference)")
                    if _skips(spec, task):
                        continue
                    jobs.append((spec, task, size, batch, _task_fn(task, model, spec, images, settings)[0]))
        models.append(model)
    for _, _, _, _, fn in jobs:
        for _ in range(settings.warmup):
            fn()
    seconds: list[list[float]] = [[] for _ in jobs]
    for round_ in range(settings.repeats):
        for times, (spec, task, job_size, batch, fn) in zip(seconds, jobs):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - start)
            logger.info(
                "round %d: %s/%s %s %dpx x%d: %.3f s",
                round_ + 1,
                spec.model,
                spec.mode,
                task,
                job_size,
                batch,
                times[-1],
            )
    rows = []
    for times, (spec, task, job_size, batch, _) in zip(seconds, jobs):
        window = (settings.window or auto_window_size(size)) if spec.windowed else 0
        rows.append(
            Row(
                spec.model,
                spec.mode,
                task,
                job_size,
                batch,
                statistics.median(times),
                None,
                None,
                None,
                spec.precision,
                window,
                times,
            )
        )
    del models
    return rows


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def accuracy_guard(size: int, settings: BenchmarkSettings) -> list[dict]:
    """Neck agreement of each fast mode with fp32 global attention on the same weights (ours only)."""
    device = torch.device(settings.device)
    torch.manual_seed(0)
    model = build_benchmark_model(
        OUR_MODES["parity"], size, settings.device, settings.score_thresh, 0, settings.weights, settings.tiny
    )
    vit = model.backbone.net.vit.eval()
    images = (synthetic_images(1, size, device, seed=1) - model.pixel_mean) / model.pixel_std
    del model
    precision = torch.bfloat16
    window = settings.window or auto_window_size(size)
    global_blocks = TINY_GLOBAL_BLOCKS if settings.tiny else VITDET_GLOBAL_BLOCKS
    windowed = windowed_copy(vit, window, global_blocks)
    with torch.no_grad():
        reference = vit.detection_features(images)["neck"]
    results = []
    from ropevit_det.export.cpu_backend import quantize_vit_linears

    int8 = quantize_vit_linears(copy.deepcopy(vit))
    int8_windowed = quantize_vit_linears(copy.deepcopy(windowed))
    for mode, candidate, dtype in (
        ("bf16", vit, precision),
        (f"windowed{window} fp32", windowed, None),
        (f"fast (bf16 + windowed{window})", windowed, precision),
        ("int8 (linear layers)", int8, None),
        (f"int8_fast (int8 + windowed{window} fp32)", int8_windowed, None),
    ):
        agreement = neck_agreement(vit, candidate, images, dtype, mode, reference_neck=reference).as_dict()
        if dtype is not None and candidate is vit:
            agreement["guard"] = f"cosine_mean >= {BF16_MIN_COSINE}"
            agreement["passed"] = agreement["cosine_mean"] >= BF16_MIN_COSINE
        elif candidate is int8:
            agreement["guard"] = f"cosine_mean >= {INT8_MIN_COSINE}"
            agreement["passed"] = agreement["cosine_mean"] >= INT8_MIN_COSINE
        else:
            agreement["guard"] = "reported only: windowed attention is a fine-tuning choice"
            agreement["passed"] = None
        agreement["size"] = size
        results.append(agreement)
    return results


def _lookup(rows: Sequence[Row], model: str, mode: str, task: str, size: int, batch: int) -> Row | None:
    for row in rows:
        if (row.model, row.mode, row.task, row.size, row.batch) == (model, mode, task, size, batch):
            return row
    return None


def compute_ratios(
    rows: Sequence[Row],
    size: int,
    batch: int,
    baseline_mode: str = "fp32",
    train_batch: int | None = None,
    mdv5a_mode: str | None = None,
    mdv5a_size: int = MDV5A_IMAGE_SIZE,
) -> dict[str, float | None]:
    """Ours / ViTDet-B (``baseline_mode``) at one size and batch; ``None`` where a row was not measured.

    ``train_step_vs_vitdet`` and ``train_mem_vs_vitdet`` use our fastest training mode ("fast"); the
    per-mode figures are there too. ``train_batch`` (default ``batch``) is the batch of the train_step rows.
    With ``mdv5a_mode``, the ``*_vs_mdv5a`` entries of :func:`mdv5a_ratios` are added.
    """
    train_batch = batch if train_batch is None else train_batch

    def ratio(mode: str, task: str, attr: str = "seconds_median") -> float | None:
        b = train_batch if task == "train_step" else batch
        ours = _lookup(rows, "ours", mode, task, size, b)
        base = _lookup(rows, "vitdet", baseline_mode, task, size, b)
        if ours is None or base is None or not getattr(ours, attr) or not getattr(base, attr):
            return None
        return getattr(ours, attr) / getattr(base, attr)

    ratios = {
        "inference_fast_vs_vitdet": ratio("fast", "inference"),
        "inference_parity_vs_vitdet": ratio("parity", "inference"),
        "train_step_vs_vitdet": ratio("fast", "train_step"),
        "train_mem_vs_vitdet": ratio("fast", "train_step", "peak_mem_mb"),
    }
    for mode in ("parity", "bf16", "fast"):
        for task in TASKS:
            ratios[f"{task}_{mode}_vs_vitdet"] = ratio(mode, task)
        ratios[f"train_mem_{mode}_vs_vitdet"] = ratio(mode, "train_step", "peak_mem_mb")
    parity = _lookup(rows, "ours", "parity", "inference", size, batch)
    for mode in ("int8", "int8_fast", "ort", "openvino"):
        row = _lookup(rows, "ours", mode, "inference", size, batch)
        if parity is not None and row is not None and parity.seconds_median and row.seconds_median:
            ratios[f"inference_speedup_{mode}_over_parity"] = parity.seconds_median / row.seconds_median
    if mdv5a_mode is not None:
        ratios.update(mdv5a_ratios(rows, size, batch, mdv5a_mode, mdv5a_size))
    return ratios


def peer_ratios(
    rows: Sequence[Row], size: int, batch: int, peer: str, peer_mode: str, peer_size: int
) -> dict[str, float]:
    """:func:`mdv5a_ratios` against any MegaDetector peer: ``{task}_{mode}_vs_{peer}``,
    ``images_per_second_{mode}_vs_{peer}`` and ``inference_mem_{mode}_vs_{peer}``, measured pairs only."""
    ratios: dict[str, float] = {}
    modes = sorted({r.mode for r in rows if r.model == "ours"}, key=lambda m: list(OUR_MODES).index(m))
    for mode in modes:
        for task in ("backbone", "inference"):
            ours = _lookup(rows, "ours", mode, task, size, batch)
            other = _lookup(rows, peer, peer_mode, task, peer_size, batch)
            if ours is None or other is None or not ours.seconds_median or not other.seconds_median:
                continue
            ratios[f"{task}_{mode}_vs_{peer}"] = ours.seconds_median / other.seconds_median
            if task == "inference":
                ratios[f"images_per_second_{mode}_vs_{peer}"] = other.seconds_median / ours.seconds_median
                if ours.peak_mem_mb and other.peak_mem_mb:
                    ratios[f"inference_mem_{mode}_vs_{peer}"] = ours.peak_mem_mb / other.peak_mem_mb
    return ratios


def mdv5a_ratios(rows: Sequence[Row], size: int, batch: int, mdv5a_mode: str, mdv5a_size: int) -> dict[str, float]:
    """Ours (``size``) against MegaDetector v5a (``mdv5a_mode``, letterboxed to ``mdv5a_size``), same batch:
    ``{task}_{mode}_vs_mdv5a`` time ratios (lower is better; task "backbone" = the network alone) and
    ``images_per_second_{mode}_vs_mdv5a`` (inference; higher is better: the issue's goals are stated in it),
    ``inference_mem_{mode}_vs_mdv5a`` peak-memory ratios. Only pairs measured in this run."""
    return peer_ratios(rows, size, batch, "mdv5a", mdv5a_mode, mdv5a_size)


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS has none): on a shared machine they say how far
    absolute times can be trusted."""
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def machine_info(device: torch.device, peaks: dict[str, float], load_at_start: tuple | None = None) -> dict:
    info = {
        "device": device.type,
        "device_name": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "matmul_peak_gflops": peaks,
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_average(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    else:
        try:
            with open("/proc/cpuinfo") as f:
                names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
            info["device_name"] = names[0] if names else info["device_name"]
        except OSError:
            pass  # not Linux: keep platform.processor()
        info["cpu_count"] = os.cpu_count()
    return info


def run_benchmark(settings: BenchmarkSettings, on_progress: Callable[[dict], None] | None = None) -> dict:
    """Measure everything ``settings`` asks for. Returns the JSON-ready result (rows, ratios, machine, ...).

    Args:
        settings: what to measure.
        on_progress: called with the partial result (``"partial": True``) after each model, so that a run
            stopped by a time limit still leaves what it measured.
    """
    settings.validate()
    load_at_start = load_average()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    peaks = {
        "fp32": matmul_peak_gflops(device, torch.float32),
        "bf16": matmul_peak_gflops(device, torch.bfloat16),
    }
    logger.info("matmul peak on %s: fp32 %.0f GFLOP/s, bf16 %.0f GFLOP/s", device, peaks["fp32"], peaks["bf16"])
    memory = PeakMemory(device)
    model_specs = [VITDET_MODES[m] for m in settings.vitdet_modes] + [OUR_MODES[m] for m in settings.ours_modes]
    peer_specs = settings.peer_specs()
    specs = peer_specs + model_specs
    rows: list[Row] = []
    # MegaDetector once, at its own size: its rows are the same whatever our sizes are.
    if settings.interleave:
        for i, size in enumerate(settings.sizes):
            rows += measure_interleaved((peer_specs if i == 0 else []) + model_specs, size, settings)
    else:
        for spec in peer_specs:
            rows += measure_mdv5a(spec, settings, peaks, memory)
        for size in settings.sizes:
            for spec in model_specs:
                rows += measure_model(spec, size, settings, peaks, memory)
                if on_progress is not None:
                    on_progress({**_result(settings, specs, rows, [], device, peaks, load_at_start), "partial": True})
    accuracy = []
    if settings.accuracy:
        accuracy = accuracy_guard(settings.accuracy_size or settings.sizes[0], settings)
    return _result(settings, specs, rows, accuracy, device, peaks, load_at_start)


def _result(
    settings: BenchmarkSettings,
    specs: Sequence[ModelSpec],
    rows: Sequence[Row],
    accuracy: list[dict],
    device: torch.device,
    peaks: dict[str, float],
    load_at_start: tuple | None = None,
) -> dict:
    first = (settings.sizes[0], settings.batches[0])
    first_train = settings.batches[0] if not settings.train_batches else settings.train_batches[0]
    v5a_modes = [s.mode for s in specs if s.model == "mdv5a"]
    peer = dict(mdv5a_mode=v5a_modes[0], mdv5a_size=mdv5a_image_size(settings)) if v5a_modes else {}
    result = {
        "rows": [_row_dict(r) for r in rows],
        "ratios": compute_ratios(rows, *first, train_batch=first_train, **peer),
        "ratios_at": {
            "size": first[0],
            "batch": first[1],
            "train_batch": first_train,
            "baseline": "vitdet fp32",
            **({"mdv5a": f"{peer['mdv5a_mode']} at {peer['mdv5a_size']} px"} if peer else {}),
        },
        "ratios_all": {
            f"{s}px_batch{b}": compute_ratios(rows, s, b)
            for s in settings.sizes
            for b in sorted({r.batch for r in rows})
        },
        "accuracy": accuracy,
        "machine": machine_info(device, peaks, load_at_start),
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()},
        "modes": {f"{s.model}/{s.mode}": s.description for s in specs},
    }
    for name in settings.peers:
        if name != "mdv5a":  # v5a's ratios are in "ratios" already
            result["ratios"].update(
                peer_ratios(rows, *first, name, settings.peer_mode(), peer_image_size(name, settings))
            )
    if settings.peers:
        result["peers"] = {
            s.model: {
                "architecture": PEERS[s.model].architecture,
                "image_size": peer_image_size(s.model, settings),
                "stride": PEERS[s.model].stride,
                "megadetector_speed_vs_v5a": PEERS[s.model].speed_vs_v5a,
            }
            for s in specs
            if s.model in PEERS
        }
    if "bf16" in settings.vitdet_modes:
        result["ratios_vs_vitdet_bf16"] = compute_ratios(rows, *first, baseline_mode="bf16", train_batch=first_train)
    return result


def _row_dict(row: Row) -> dict:
    d = asdict(row)
    d["images_per_second"] = row.images_per_second
    d["ms_per_image"] = 1000 * row.seconds_median / row.batch if row.seconds_median else None
    return d
