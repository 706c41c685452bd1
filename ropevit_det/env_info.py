"""What a bug report needs, as detectron2's ``collect_env`` gives it, plus what matters to this project:
which detectron2 build is present (and what its missing ``_C`` ops cost), CPU bf16 support, and which
published weights are already in the ``birder://`` cache.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import sys
from pathlib import Path

Row = tuple[str, str]

# CPU flags (Linux /proc/cpuinfo names) that give PyTorch a fast bf16 matmul on the CPU.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_flags() -> set[str]:
    """The CPU's feature flags on Linux; an empty set elsewhere (unknown, not 'absent')."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass  # not Linux: no cpuinfo to read, reported as unknown below
    return set()


def cpu_bf16_support() -> str:
    """'yes (...)', 'no (...)' or 'unknown': whether ``--bf16`` on this CPU is a real speed-up."""
    flags = cpu_flags()
    if not flags:
        return "unknown (no /proc/cpuinfo); try tools/benchmark.py --quick and compare fp32 with bf16"
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    if found:
        return f"yes ({', '.join(found)}): --bf16 and the fast mode are real speed-ups on this CPU"
    return "no (neither avx512_bf16 nor amx_bf16): bf16 is slow here; use fp32, or infer --backend int8"


def detectron2_rows() -> list[Row]:
    try:
        import detectron2
    except ImportError:
        return [("detectron2", "not installed: bash tools/setup_env.sh, or see docs/INSTALL.md")]
    path = Path(detectron2.__file__).parent
    fallback = _version("sal-detectron2")
    if fallback != "not installed":
        build = f"registry fallback sal-detectron2 {fallback}"
    else:
        build = f"official build {detectron2.__version__}"
    rows: list[Row] = [("detectron2", f"{detectron2.__version__} @{path} ({build})")]
    try:
        importlib.import_module("detectron2._C")
        rows.append(("detectron2._C", "loaded: compiled ROIAlign/NMS, deformable conv, rotated boxes"))
    except ImportError as error:
        rows.append(
            (
                "detectron2._C",
                f"not loaded ({error}): ROIAlign and NMS come from torchvision; "
                "deformable conv and rotated-box ops are unavailable",
            )
        )
    return rows


def weights_cache_rows() -> list[Row]:
    from .checkpoint.path_handler import cache_dir
    from .checkpoint.published import PUBLISHED_WEIGHTS

    folder = cache_dir()
    present = [name for name, w in PUBLISHED_WEIGHTS.items() if (folder / w.file_name).is_file()]
    return [
        ("weights cache", f"{folder} ({'exists' if folder.is_dir() else 'not created yet'})"),
        ("published weights cached", ", ".join(present) if present else "none"),
    ]


def collect_env_rows() -> list[Row]:
    import torch
    import torchvision

    import ropevit_det

    rows: list[Row] = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", " ")),
        ("ropevit_det", f"{ropevit_det.__version__} @{Path(ropevit_det.__file__).parent}"),
        ("torch", f"{torch.__version__} @{Path(torch.__file__).parent}"),
        ("torch CUDA build", str(torch.version.cuda)),
        ("torchvision", torchvision.__version__),
        ("numpy", _version("numpy")),
        ("Pillow", _version("Pillow")),
    ]
    rows += detectron2_rows()
    rows += [
        ("CPU", platform.processor() or platform.machine()),
        ("CPU cores (os.cpu_count)", str(os.cpu_count())),
        ("torch CPU capability", torch.backends.cpu.get_cpu_capability()),
        ("CPU bf16", cpu_bf16_support()),
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            rows.append(
                (
                    f"GPU {i}",
                    f"{props.name}, {props.total_memory / 2**30:.0f} GiB, capability {props.major}.{props.minor}",
                )
            )
    else:
        rows.append(("GPU", "none: torch.cuda.is_available() is False"))
    rows += [
        (name, _version(name))
        for name in ("birder", "faster-coco-eval", "pycocotools", "fvcore", "megadetector", "onnxruntime")
    ]
    rows += weights_cache_rows()
    return rows


def collect_env_info() -> str:
    rows = collect_env_rows()
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
