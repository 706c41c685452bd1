#!/usr/bin/env python
"""Split a COCO Camera Traps JSON file into train / val (/ test) files with no camera location in two splits.

Example:
    python tools/split_cct.py data/cct.json --output-dir data/splits --val-fraction 0.15 --seed 0
writes data/splits/cct_train.json and data/splits/cct_val.json and prints the locations of each split.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ropevit_det.camera_trap.data.cct import read_cct_json
from ropevit_det.camera_trap.data.split import split_by_location
from ropevit_det.cli.common import os_error_sentence
from ropevit_det.utils.atomic_json import write_json_atomic


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cct_json", help="COCO Camera Traps JSON file to split")
    parser.add_argument("--output-dir", required=True, help="folder for <name>_train.json, <name>_val.json, ...")
    parser.add_argument("--name", default=None, help="file name stem of the outputs (default: the input's stem)")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="target fraction of images in val")
    parser.add_argument("--test-fraction", type=float, default=0.0, help="target fraction in test (0: no test split)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the order in which locations are drawn")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return parser


# The library names its arguments; on the command line they are these flags.
FLAG_OF_ARGUMENT = {"val_fraction": "--val-fraction", "test_fraction": "--test-fraction"}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return _split(args)
    except (ValueError, OSError) as error:
        message = os_error_sentence(error) if isinstance(error, OSError) else str(error)
        for argument, flag in FLAG_OF_ARGUMENT.items():
            message = message.replace(argument, flag)
        raise SystemExit(f"ERROR: {message}") from None


def _split(args: argparse.Namespace) -> int:
    data = read_cct_json(args.cct_json)
    splits, summary = split_by_location(
        data,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        source=f"CCT file {args.cct_json}",
    )
    out_dir = Path(args.output_dir)
    stem = args.name or Path(args.cct_json).stem
    outputs = {name: out_dir / f"{stem}_{name}.json" for name in splits}
    existing = [str(p) for p in outputs.values() if p.exists()]
    if existing and not args.overwrite:
        print(f"error: {', '.join(existing)} exist; pass --overwrite to replace them", file=sys.stderr)
        return 2
    for name, split in splits.items():
        write_json_atomic(outputs[name], split, indent=1)
    print(summary.table())
    for name, locations in summary.locations.items():
        shown = ", ".join(locations[:10]) + (f", ... ({len(locations)} in all)" if len(locations) > 10 else "")
        print(f"{name} locations: {shown}")
        print(f"  -> {outputs[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
