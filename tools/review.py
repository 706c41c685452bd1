#!/usr/bin/env python
"""Write MegaDetector's HTML review page for a results file (sample frames; TP/FP/FN/TN with ground truth).

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/review.py`` and also runs as ``ropevit-det review``. Options: ``python tools/review.py --help``.
"""

import sys

from ropevit_det.cli.review import main

if __name__ == "__main__":
    sys.exit(main())
