#!/usr/bin/env python
"""Is the int8 CPU path as fast on torchao as on torch.ao.quantization? Same model, same run.

The code lives in ``benchmarks/commands/compare_int8_backends.py``, outside the installed package: run it from a clone.
Options: ``python tools/compare_int8_backends.py --help``.
"""

import sys
from pathlib import Path

# benchmarks/ is not in the wheel, so it is importable only from the clone's root (see tools/benchmark.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.commands.compare_int8_backends import main

if __name__ == "__main__":
    sys.exit(main())
