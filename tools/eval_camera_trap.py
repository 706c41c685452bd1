#!/usr/bin/env python
"""Camera-trap metrics of a MegaDetector-format results file against CCT or COCO ground truth.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/eval_camtrap.py`` and also runs as ``ropevit-det eval-camtrap``. Options: ``python
tools/eval_camera_trap.py --help``.
"""

import sys

from ropevit_det.cli.eval_camtrap import main

if __name__ == "__main__":
    sys.exit(main())
