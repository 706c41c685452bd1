"""The benchmark harness (speed, memory, FLOPs, accuracy guard against ViTDet-B and MegaDetector v5a): outside the
installed package, run from a clone with ``python tools/benchmark.py`` and its siblings."""

from .accuracy import BF16_MIN_COSINE, NeckAgreement, neck_agreement, windowed_copy
from .measure import PeakMemory, count_flops, matmul_peak_gflops, time_repeats
from .models import MDV5A_MODES, OUR_MODES, VITDET_MODES, ModelSpec, auto_window_size, build_benchmark_model
from .report import markdown_report
from .runner import TASKS, BenchmarkSettings, compute_ratios, run_benchmark

__all__ = [
    "BF16_MIN_COSINE",
    "NeckAgreement",
    "neck_agreement",
    "windowed_copy",
    "PeakMemory",
    "count_flops",
    "matmul_peak_gflops",
    "time_repeats",
    "MDV5A_MODES",
    "OUR_MODES",
    "VITDET_MODES",
    "ModelSpec",
    "auto_window_size",
    "build_benchmark_model",
    "markdown_report",
    "TASKS",
    "BenchmarkSettings",
    "compute_ratios",
    "run_benchmark",
]
