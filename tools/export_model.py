#!/usr/bin/env python
"""Export a detector to ONNX or TorchScript (detectron2's TracingAdapter), fixed input size.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/export.py`` and also runs as ``ropevit-det export``. Options: ``python tools/export_model.py --help``.
"""

import sys

from ropevit_det.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
