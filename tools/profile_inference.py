#!/usr/bin/env python
"""Operator-level profile of full inference (torch.profiler).

The code lives in ``benchmarks/commands/profile_inference.py``, outside the installed package (as detectron2 and
timm keep
their benchmarks): run it from a clone. Options: ``python tools/profile_inference.py --help``.
"""

import sys
from pathlib import Path

# benchmarks/ is deliberately not in the wheel, so it is importable only from the clone's root. Python puts this
# script's folder (tools/) on sys.path, not the root: put the root first, so this clone's benchmarks/ (and its
# ropevit_det) are the ones that run. Only tools/ scripts do this; `python -m benchmarks.commands.profile_inference`
# from the root needs nothing.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.commands.profile_inference import main

if __name__ == "__main__":
    sys.exit(main())
