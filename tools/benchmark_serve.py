#!/usr/bin/env python
"""Load benchmark of ``ropevit-det serve`` on loopback, against in-process batch inference on the same frames.

The code lives in ``benchmarks/commands/benchmark_serve.py``, outside the installed package: run it from a clone.
Options: ``python tools/benchmark_serve.py --help``.
"""

import sys
from pathlib import Path

# benchmarks/ is not in the wheel, so it is importable only from the clone's root (see tools/benchmark.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.commands.benchmark_serve import main

if __name__ == "__main__":
    sys.exit(main())
