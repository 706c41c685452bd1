#!/usr/bin/env python
"""Split a COCO Camera Traps file into location-disjoint train/val/test files.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/split_cct.py`` and also runs as ``ropevit-det split-cct``. Options: ``python tools/split_cct.py
--help``.
"""

import sys

from ropevit_det.cli.split_cct import main

if __name__ == "__main__":
    sys.exit(main())
