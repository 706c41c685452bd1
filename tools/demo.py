#!/usr/bin/env python
"""The demo (``make demo``): train and evaluate on a synthetic shapes dataset, on the CPU.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/demo.py`` and also runs as ``ropevit-det demo``. Options: ``python tools/demo.py --help``.
"""

import sys

from ropevit_det.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
