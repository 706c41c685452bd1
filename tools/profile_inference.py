#!/usr/bin/env python
"""Operator-level profile of full inference (torch.profiler).

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/profile_inference.py`` and also runs as ``ropevit-det profile``. Options: ``python tools/profile_inference.py --help``.
"""
import sys

from ropevit_det.cli.profile_inference import main

if __name__ == "__main__":
    sys.exit(main())
