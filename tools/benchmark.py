#!/usr/bin/env python
"""Speed of our model against detectron2's ViTDet-B, measured in the same run.

The code lives in ``benchmarks/commands/benchmark.py``, outside the installed package (as detectron2 and timm keep
their benchmarks): run it from a clone. Options: ``python tools/benchmark.py --help``.
"""

import sys
from pathlib import Path

# benchmarks/ is deliberately not in the wheel, so it is importable only from the clone's root. Python puts this
# script's folder (tools/) on sys.path, not the root: put the root first, so this clone's benchmarks/ (and its
# ropevit_det) are the ones that run. Only tools/ scripts do this; `python -m benchmarks.commands.benchmark`
# from the root needs nothing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.commands.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
