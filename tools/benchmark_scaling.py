#!/usr/bin/env python
"""Images/s of a 2-process inference run against 1 process on the same machine; see docs/SCALE.md.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/benchmark_scaling.py`` and also runs as ``ropevit-det benchmark-scaling``.
"""
import sys

from ropevit_det.cli.benchmark_scaling import main

if __name__ == "__main__":
    sys.exit(main())
