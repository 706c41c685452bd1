#!/usr/bin/env python
"""Checkpoint cost of the results journal over a 1,000,000-image run (fake detector); see docs/SCALE.md.

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/benchmark_journal.py`` and also runs as ``ropevit-det benchmark-journal``.
"""
import sys

from ropevit_det.cli.benchmark_journal import main

if __name__ == "__main__":
    sys.exit(main())
