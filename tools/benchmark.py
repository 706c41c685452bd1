#!/usr/bin/env python
"""Speed of our model against detectron2's ViTDet-B, measured in the same run.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/benchmark.py`` and also runs as ``ropevit-det benchmark``. Options: ``python tools/benchmark.py --help``.
"""
import sys

from ropevit_det.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
