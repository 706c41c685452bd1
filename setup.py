#!/usr/bin/env python
"""ropevit_det: birder's RoPE ViT-B/14 (reg4, CAPI + iNat21) as a detectron2 backbone.

detectron2 itself is not on PyPI, so it is not listed in ``install_requires``;
``tools/setup_env.sh`` installs it (official source install, or a registry fallback).
"""
from setuptools import find_packages, setup

setup(
    name="ropevit_det",
    version="0.1.0",
    description="birder's RoPE ViT-B/14 (reg4) as a detectron2 backbone: ViTDet-style Mask R-CNN / Cascade",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(exclude=("tests", "tests.*", "tools", "configs")),
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
        "shapely",  # detectron2's FixedSizeCrop (LSJ) crops polygon masks with it
        "matplotlib",  # precision/recall plots (tools/eval_camera_trap.py)
        "setuptools<81",  # detectron2.model_zoo imports pkg_resources
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "birder==0.8.4",  # the reference implementation the parity tests compare against
            "timm",  # detectron2's own ViTDet backbone (benchmark baseline) imports it
        ],
    },
)
