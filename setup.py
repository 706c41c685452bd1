#!/usr/bin/env python
"""ropevit_det: birder's RoPE ViT-B/14 (reg4, CAPI + iNat21) as a detectron2 backbone.

detectron2 itself is not on PyPI, so it is not listed in ``install_requires``;
``tools/setup_env.sh`` installs it (official source install, or a registry fallback), and
``ropevit-det env`` says which one is present.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# ropevit-det serve (docs/SERVE.md); the test extra has them too, for tests/serve/test_serve.py.
SERVE_REQUIRES = [
    "fastapi>=0.115",
    "uvicorn>=0.30",
    "python-multipart>=0.0.18",  # FastAPI's multipart/form-data parser
    "prometheus_client>=0.20",
]


def link_model_zoo_configs() -> None:
    """Expose the top-level ``configs/`` inside the package as ``ropevit_det/model_zoo/configs``.

    ``configs/`` stays the one source of truth where clone users expect it. As detectron2's setup.py does
    for its model zoo, we link it into the package (so an editable install always sees the current files)
    and let package_data carry the files into wheels; where symlinks are unavailable we copy instead.
    Building from an sdist, ``configs/`` may be absent but the package folder already holds the files.
    """
    source = HERE / "configs"
    target = HERE / "ropevit_det" / "model_zoo" / "configs"
    if not source.is_dir():
        return
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    try:
        os.symlink(os.path.relpath(source, target.parent), target, target_is_directory=True)
    except OSError:
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))


link_model_zoo_configs()
README = HERE / "README.md"

setup(
    name="ropevit_det",
    version="0.1.0",
    description="birder's RoPE ViT-B/14 (reg4) as a detectron2 backbone: ViTDet-style Mask R-CNN / Cascade",
    long_description=README.read_text(encoding="utf-8") if README.exists() else "",
    long_description_content_type="text/markdown",
    # benchmarks/ (the speed harness, run from a clone as python tools/benchmark*.py) stays out of the wheel.
    packages=find_packages(exclude=("tests", "tests.*", "tools", "configs", "benchmarks", "benchmarks.*")),
    package_data={
        "ropevit_det.model_zoo": ["configs/*.yaml", "configs/**/*.yaml", "configs/**/*.py"],
        # The Camtrap DP 1.0.2 profile, table schemas and the schemas they refer to, with their licences:
        # validation runs offline against these files.
        "ropevit_det.camera_trap.camtrapdp": ["profile/*.json", "profile/LICENSE-*", "profile/*.md"],
    },
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy>=1.24",
        "Pillow>=9",
        "fvcore",
        "iopath",
        "pycocotools>=2.0.7",
        "faster-coco-eval>=1.6",
        "safetensors>=0.4",
        "tqdm",
        "tensorboard",
        "tabulate",
        "shapely",  # detectron2's FixedSizeCrop (LSJ) crops polygon masks with it
        "matplotlib",  # precision/recall plots (ropevit-det eval-camtrap)
        "av>=12",  # PyAV: camera-trap videos (frames, frame rate, creation time) in ropevit-det infer
        "setuptools<81",  # detectron2.model_zoo imports pkg_resources
        # infer --backend int8: the maintained successor of torch.ao.quantization (the int8 engine once PyTorch
        # removes torch.ao's; no dependencies of its own, imported only by that backend).
        "torchao>=0.18",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "ruff>=0.6",  # make test lints and format-checks the tree first (ruff.toml)
            "birder==0.8.4",  # the reference implementation the parity tests compare against
            "timm",  # detectron2's own ViTDet backbone (benchmark baseline) imports it
            "onnx>=1.16",  # ropevit-det export --format onnx, and its tests
            "onnxruntime>=1.17",  # runs the ONNX export (tests, infer --backend onnxruntime)
            "selenium>=4.10",  # drives headless Chromium in the review-page test (chromium-driver from apt)
            "frictionless>=5.13.1",  # the Camtrap DP tests validate packages as TDWG's own tests do
            "PyYAML",  # the Camtrap DP export test reads a YAML metadata file
            "hypothesis>=6.100",  # property-based tests of the readers of results, CCT and merge inputs
            "httpx",  # the serve tests' client
            "schemathesis>=4",  # fuzzes the server against its OpenAPI schema
            *SERVE_REQUIRES,  # tests/serve/test_serve.py runs the server
        ],
        "serve": SERVE_REQUIRES,
        # What MegaDetector's post-processing imports (review pages, repeat-detection elimination, compare,
        # sort, CSV, classification smoothing). The megadetector package itself is installed with --no-deps
        # (tools/setup_env.sh): its own requirements pull a YOLO training stack whose sdist needs the network:
        #   pip install "ropevit_det[camtrap]" && pip install --no-deps megadetector==10.0.28
        "camtrap": [
            "pandas>=2.1.1",
            "scikit-learn>=1.3.1",
            "humanfriendly>=10.0",
            "fastquadtree>=1.1.2",
            "send2trash",
            "python-dateutil",
            "jsonpickle>=3.0.2",
            "requests>=2.31.0",
            "opencv-python-headless>=4.8",
            "pytest",  # megadetector.utils.path_utils imports it at module level
            # ropevit-det camtrapdp: validation (TDWG's camtrap-dp tests use frictionless), YAML package metadata.
            "frictionless>=5.13.1",
            "PyYAML",
            "reverse_geocoder>=1.5",  # camera coordinates -> country and region, offline (GeoNames data inside)
            "pycountry>=22.1",  # ISO 3166-1 alpha-2 (reverse_geocoder) -> alpha-3 (SpeciesNet's geofence keys)
        ],
        # ropevit-det export --format onnx, and infer --backend onnxruntime (ropevit_det/_deps.py says which command
        # needs which extra, before it does any work).
        "export": [
            "onnx>=1.16",
            "onnxruntime>=1.17",
        ],
        # infer --backend openvino: the model is exported to ONNX at start-up, then run by OpenVINO.
        "openvino": [
            "onnx>=1.16",
            "openvino>=2024.0",
        ],
        # infer --tiles: SAHI's slicing and merging. sahi itself is installed with --no-deps by tools/setup_env.sh:
        # its requirements pull opencv-python, which would overwrite the cv2 of opencv-python-headless; what its
        # slicing and postprocess modules import is listed here.
        "tiles": [
            "shapely>=2.0",
            "opencv-python-headless>=4.8",
            "Pillow>=8.2",
            "tqdm>=4.48",
        ],
        # MegaDetector v5a's network as a benchmark peer (python tools/benchmark.py --mdv5a-modes, from a clone):
        # what the yolov5
        # package's model code imports. yolov5==7.0.14 and ultralytics themselves are installed with --no-deps by
        # tools/setup_env.sh: yolov5's requirements pull a training stack (sahi, roboflow, boto3) and pin old hubs.
        "bench": [
            "timm",  # detectron2's own ViTDet backbone, the baseline of python tools/benchmark.py, imports it
            "pandas",
            "seaborn",
            "thop",
            "psutil",
            "PyYAML",
            "scipy",
            "opencv-python-headless>=4.8",
        ],
    },
    entry_points={"console_scripts": ["ropevit-det = ropevit_det.cli.main:main"]},
)
