#!/usr/bin/env python
"""Merge MegaDetector-format results files (job-array shards of tools/infer.py, or separate runs).

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/merge.py`` and also runs as ``ropevit-det merge``. Options: ``python tools/merge_results.py --help``.
"""

import sys

from ropevit_det.cli.merge import main

if __name__ == "__main__":
    sys.exit(main())
