#!/usr/bin/env python
"""Repeat-detection elimination (find | apply) on a MegaDetector-format results file.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/rde.py`` and also runs as ``ropevit-det rde``. Options: ``python tools/rde.py --help``.
"""

import sys

from ropevit_det.cli.rde import main

if __name__ == "__main__":
    sys.exit(main())
