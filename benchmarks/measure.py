"""Measurement primitives for ``tools/benchmark.py``: wall time, peak memory, FLOPs, matmul peak.

All of them work on the CPU and on CUDA, so that one benchmark run compares models under one set of rules.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

logger = logging.getLogger(__name__)

__all__ = ["PeakMemory", "TimedResult", "count_flops", "matmul_peak_gflops", "synchronize", "time_repeats"]


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer read afterwards covers it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class TimedResult:
    """Seconds of each timed repeat (warm-up excluded) and the FLOPs counted in the first warm-up."""

    seconds: list[float]
    flops: int | None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_repeats(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int, with_flops: bool = True
) -> TimedResult:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed.

    Args:
        fn: one unit of work (a forward pass, a training step).
        device: where ``fn`` runs; CUDA work is synchronised before each clock read.
        warmup: untimed runs first (allocator warm-up, autocast weight casts, cuDNN/oneDNN choices, lazy
            optimizer state). Must be at least 1 when ``with_flops``: FLOPs are counted in the first one,
            so counting costs no extra run and its dispatch overhead never enters the timed repeats.
        repeats: timed runs; report their median.
        with_flops: count FLOPs in the first warm-up run.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if with_flops and warmup < 1:
        raise ValueError("FLOPs are counted in the first warm-up run: use warmup >= 1, or with_flops=False")
    flops = None
    for i in range(warmup):
        if i == 0 and with_flops:
            flops = count_flops(fn)
        else:
            fn()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return TimedResult(seconds, flops)


def _sdpa_flop_mapping() -> dict:
    # torch's FlopCounterMode counts the CUDA SDPA kernels (flash, efficient, cuDNN) but not the CPU one,
    # `_scaled_dot_product_flash_attention_for_cpu` (checked on torch 2.14): without these two entries
    # every attention product on the CPU would count as zero. Their arguments start like the CUDA
    # kernels' (query, key, value / grad_out, query, key, value), so torch's own formulas apply.
    # Masked-out keys (window padding) are counted: the figure is the work executed, not the work needed.
    aten = torch.ops.aten
    mapping = {}
    forward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    backward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if forward is not None:
        mapping[forward] = _cpu_sdpa_flop
    if backward is not None:
        mapping[backward] = _cpu_sdpa_backward_flop
    return mapping


# FlopCounterMode hands custom formulas the shapes of the op's tensor arguments (and out_shape).
def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(
    grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs
) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (multiply and add counted separately: 2 per MAC) of the matrix products and convolutions
    that ``fn`` runs, forward and backward, with torch's ``FlopCounterMode``. Element-wise work, ROIAlign
    and NMS are not counted; they are a small share of a ViT detector's FLOPs."""
    with FlopCounterMode(display=False, custom_mapping=_sdpa_flop_mapping()) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, size: int | None = None, repeats: int = 10) -> float:
    """Best GFLOP/s of a square ``size`` matrix product in ``dtype``: this machine's practical peak.

    The best of several runs, not the median: a peak is what the hardware can reach, and slower runs
    only say that something else was running. Default sizes are large enough to be compute-bound:
    2048 on the CPU (~17 GFLOP, a fraction of a second), 8192 on a GPU.
    """
    size = size or (8192 if device.type == "cuda" else 2048)
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    for _ in range(2):
        torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _proc_status_mb(field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", _PROC_STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{_PROC_STATUS} has no {field} line")
    return int(match.group(1)) / 1024


def _release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap pages back to the OS, so that the resident set size
    before a model is built is not inflated by what the previous model left in malloc's free lists."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError) as e:  # musl or another libc without malloc_trim
            logger.debug("malloc_trim unavailable: %s", e)


class PeakMemory:
    """Peak memory of one measurement, above a baseline taken before the model was built.

    * CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensors only).
    * CPU: the process's resident-set high-water mark (``VmHWM``), which Linux resets when ``5`` is
      written to ``/proc/self/clear_refs``. ``ru_maxrss`` cannot be reset, so within one process it
      would only ever report the largest measurement so far; this gives each measurement its own peak.
      Resident memory includes everything the process touches (weights, activations, optimizer state,
      allocator caches), so CPU and CUDA figures are comparable between models, not with each other.

    Where the high-water mark cannot be reset (not Linux), ``peak_mb`` returns ``None``.

    Args:
        device: the device the measured models run on.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._baseline_mb = 0.0
        self.cpu_supported = device.type == "cuda" or self._cpu_reset_works()

    @staticmethod
    def _cpu_reset_works() -> bool:
        try:
            _CLEAR_REFS.write_text("5")
            _proc_status_mb("VmHWM")
        except (OSError, RuntimeError) as e:
            logger.warning("Per-measurement CPU peak memory unavailable (%s); peak_mem_mb will be null", e)
            return False
        return True

    def current_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device) / 2**20
        return _proc_status_mb("VmRSS")

    def set_baseline(self) -> None:
        """Call before building a model: later peaks are reported above this level."""
        _release_free_memory()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self._baseline_mb = self.current_mb() if self.cpu_supported else 0.0

    def reset_peak(self) -> None:
        """Start a new measurement: the peak restarts from the memory in use now.

        Free heap pages that glibc still holds from the previous measurement are handed back first;
        otherwise they would stay resident and count towards this measurement's peak.
        """
        _release_free_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.cpu_supported:
            _CLEAR_REFS.write_text("5")

    def peak_mb(self) -> float | None:
        """Highest level since ``reset_peak``, minus the baseline, in MiB."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20 - self._baseline_mb
        if not self.cpu_supported:
            return None
        return _proc_status_mb("VmHWM") - self._baseline_mb
