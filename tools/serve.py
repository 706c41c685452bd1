#!/usr/bin/env python
"""Serve a detector over HTTP (MegaDetector-format entries for uploaded images).

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/serve.py`` and also runs as ``ropevit-det serve``. Options: ``python tools/serve.py --help``.
"""

import sys

from ropevit_det.cli.serve import main

if __name__ == "__main__":
    sys.exit(main())
