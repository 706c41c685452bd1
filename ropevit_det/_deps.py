"""Fail early, and say how to fix it, when a dependency that pip cannot install for us is missing."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, Callable

DETECTRON2_HELP = (
    "detectron2 is not installed (it is not published on PyPI). Install it one of two ways:\n"
    "  1. official, needs GitHub:  pip install --no-build-isolation "
    "'git+https://github.com/facebookresearch/detectron2.git'\n"
    "  2. offline registry fallback (no compiled ops):  bash tools/setup_env.sh\n"
    "     (pip download --no-deps --python-version 3.10 --only-binary=:all: sal-detectron2==0.7.2, "
    "then python -m installer on the wheel)"
)


def require_detectron2() -> None:
    if importlib.util.find_spec("detectron2") is None:
        raise ImportError(DETECTRON2_HELP)


# --- optional packages: which command needs which extra -------------------------------------------------------
# A command that needs an optional package says which extra installs it, before it does any work (no journal, no
# export left behind by a run that could never finish).

MEGADETECTOR_VERSION = "10.0.28"

# need -> (the top-level modules it takes, the command that installs them; the extra is the one named in it). The
# megadetector package itself is installed with --no-deps: its own requirements pull a YOLO training stack whose
# sdist needs the network.
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "camtrap": (
        ("megadetector", "pandas", "sklearn", "humanfriendly", "jsonpickle", "cv2"),
        f'pip install "ropevit_det[camtrap]" && pip install --no-deps megadetector=={MEGADETECTOR_VERSION}',
    ),
    "camtrapdp": (("frictionless",), 'pip install "ropevit_det[camtrap]"'),
    "export": (("onnx",), 'pip install "ropevit_det[export]"'),
    "onnxruntime": (("onnx", "onnxruntime"), 'pip install "ropevit_det[export]"'),
    "openvino": (("onnx", "openvino"), 'pip install "ropevit_det[openvino]"'),
    # python tools/benchmark.py (from a clone): detectron2's ViTDet-B baseline imports timm; MegaDetector v5a's
    # network is the yolov5 package's, installed with --no-deps as megadetector is.
    "vitdet": (("timm",), 'pip install "ropevit_det[bench]"'),
    "mdv5a": (
        ("yolov5", "thop", "seaborn", "psutil", "megadetector"),
        'pip install "ropevit_det[bench]" && pip install --no-deps yolov5==7.0.14 ultralytics '
        f"megadetector=={MEGADETECTOR_VERSION}",
    ),
}


def _infer_needs(args: Any) -> list[str]:
    needs = ["camtrap"] if getattr(args, "smooth_sequences", False) else []
    backend = getattr(args, "backend", None)
    return needs + ([backend] if backend in ("onnxruntime", "openvino") else [])


# command -> which of EXTRAS its parsed arguments need (the table the CLIs consult first).
COMMAND_NEEDS: dict[str, Callable[[Any], list[str]]] = {
    "review": lambda args: ["camtrap"],
    "rde": lambda args: ["camtrap"],
    "infer": _infer_needs,
    "classify": lambda args: ["camtrap"] if getattr(args, "smooth_sequences", False) else [],
    "export": lambda args: ["export"] if getattr(args, "format", None) == "onnx" else [],
    "camtrapdp": lambda args: ["camtrapdp"] if getattr(args, "step", None) in ("export", "validate") else [],
    "benchmark": lambda args: (
        (["vitdet"] if getattr(args, "vitdet_modes", ()) else [])
        + (["mdv5a"] if getattr(args, "mdv5a_modes", ()) else [])
        + [
            {"ort": "onnxruntime", "openvino": "openvino"}[m]
            for m in getattr(args, "ours_modes", None) or ()
            if m in ("ort", "openvino")
        ]
    ),
}

# How the user runs each command (the benchmarks run from a clone, not through ropevit-det).
PROGRAMS = {"benchmark": "python tools/benchmark.py"}


def missing_extra(command: str, args: Any) -> str | None:
    """One line naming what ``command`` with ``args`` needs and is not installed, with the command that installs
    it; None when everything it needs is importable (``find_spec``: nothing is imported here)."""
    for extra in COMMAND_NEEDS.get(command, lambda _: [])(args):
        modules, install = EXTRAS[extra]
        missing = [m for m in modules if _absent(m)]
        if missing:
            extra_name = install.split("[")[1].split("]")[0]
            program = PROGRAMS.get(command, f"ropevit-det {command}")
            return f"{program} needs {', '.join(missing)} (not installed), from the extra [{extra_name}]: {install}"
    return None


def require_extras(command: str, args: Any) -> None:
    """End the run with :func:`missing_extra`'s line (exit status 2) when an optional package is missing."""
    line = missing_extra(command, args)
    if line is not None:
        print(f"ERROR: {line}", file=sys.stderr)
        raise SystemExit(2)


def _absent(module: str) -> bool:
    if module in sys.modules:  # imported already (some, e.g. humanfriendly, then have no __spec__ to find)
        return sys.modules[module] is None
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent package missing
        return True
