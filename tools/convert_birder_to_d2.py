#!/usr/bin/env python
"""Convert a birder checkpoint into a detectron2 checkpoint.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/convert.py`` and also runs as ``ropevit-det convert``. Options: ``python
tools/convert_birder_to_d2.py --help``.
"""

import sys

from ropevit_det.cli.convert import main

if __name__ == "__main__":
    sys.exit(main())
