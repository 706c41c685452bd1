#!/usr/bin/env python
"""Detect in camera-trap images and write MegaDetector-format results.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/infer.py`` and also runs as ``ropevit-det infer``. Options: ``python tools/infer.py --help``.
"""

import sys

from ropevit_det.cli.infer import main

if __name__ == "__main__":
    sys.exit(main())
