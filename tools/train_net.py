#!/usr/bin/env python
"""Train or evaluate a RoPE ViT detector on COCO-format or CCT data (detectron2 ``launch``).

A thin wrapper, kept because detectron2 users run `python tools/...`: the code lives in
``ropevit_det/cli/train.py`` and also runs as ``ropevit-det train``. Options: ``python tools/train_net.py --help``.
"""

import sys

from ropevit_det.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
