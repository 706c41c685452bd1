#!/usr/bin/env python
"""Small objects in 4K frames: plain inference against tiles, tiles + full frame and high resolution; see
docs/SMALL_OBJECTS.md.

The code lives in ``benchmarks/commands/benchmark_tiles.py``, outside the installed package (as detectron2 and timm keep
their benchmarks): run it from a clone. Options: ``python tools/benchmark_tiles.py --help``.
"""

import sys
from pathlib import Path

# benchmarks/ is deliberately not in the wheel, so it is importable only from the clone's root: put the root first,
# so this clone's benchmarks/ (and its ropevit_det) are the ones that run.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.commands.benchmark_tiles import main

if __name__ == "__main__":
    sys.exit(main())
