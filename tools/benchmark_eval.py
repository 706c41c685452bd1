#!/usr/bin/env python
"""COCO evaluation speed (faster-coco-eval vs pycocotools) and data-loading speed.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/benchmark_eval.py`` and also runs as ``ropevit-det benchmark-eval``. Options: ``python tools/benchmark_eval.py --help``.
"""
import sys

from ropevit_det.cli.benchmark_eval import main

if __name__ == "__main__":
    sys.exit(main())
