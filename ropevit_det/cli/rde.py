#!/usr/bin/env python
r"""Repeat-detection elimination: remove the rock that fires in thousands of frames of one camera.

Steps (MegaDetector's procedure, run by its own code):
  1. python tools/rde.py find --results results.json --images /data/card --output-dir rde/
     renders one tile per box that recurs in --occurrences images of one camera, into rde/filtering_<date>/;
  2. look at the tiles and DELETE THE ONES THAT SHOW REAL ANIMALS (the tiles left are false positives);
  3. python tools/rde.py apply --results results.json --filtering-dir rde/filtering_<date> --output clean.json
     writes the results without the boxes whose tiles are still there.

Cameras are the images' folders (--folder-levels N: N levels up, e.g. 1 for camera/card/IMG.JPG), or the
CCT location with --cct FILE.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ropevit_det._deps import require_extras
from ropevit_det.camera_trap.results.md_format import ResultsFileError
from ropevit_det.cli.common import user_error_message

# The library's argument names (UserInputError.argument) as this command's flags.
LIBRARY_FLAGS = {
    "occurrences": "--occurrences",
    "iou": "--iou",
    "folder_levels": "--cct / --folder-levels",
    "exclude_categories": "--exclude",
    "categories": "--blur",
    "image_dir": "--images",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = parser.add_subparsers(dest="step", required=True)
    find = steps.add_parser("find", help="step 1: find recurring boxes, render their tiles")
    find.add_argument("--results", required=True, help="MegaDetector-format results JSON")
    find.add_argument("--images", required=True, help="folder the results' relative paths start from")
    find.add_argument("--output-dir", required=True, help="where the filtering_<date> folder is made")
    cameras = find.add_mutually_exclusive_group()
    cameras.add_argument(
        "--folder-levels",
        type=int,
        default=0,
        help="cameras are the folders N levels above each image's folder (default: %(default)s)",
    )
    cameras.add_argument("--cct", default=None, help="CCT file: cameras are the images' 'location'")
    find.add_argument(
        "--occurrences",
        type=int,
        default=20,
        help="flag a box seen in at least N images of one camera (default: %(default)s)",
    )
    find.add_argument("--iou", type=float, default=0.9, help="IoU of 'the same box' (default: %(default)s)")
    find.add_argument("--confidence-min", type=float, default=0.1, help="compare from this confidence (%(default)s)")
    find.add_argument("--confidence-max", type=float, default=1.0, help="compare up to this confidence (%(default)s)")
    find.add_argument("--min-size", type=float, default=0.0, help="smallest box area compared, fraction of the image")
    find.add_argument(
        "--max-size",
        type=float,
        default=0.2,
        help="largest box area compared, fraction of the image (default: %(default)s)",
    )
    find.add_argument("--exclude", default="", help="detection categories never flagged, e.g. person,vehicle")
    find.add_argument(
        "--blur",
        default="",
        metavar="CATEGORIES",
        help="blur these detection categories in every tile, e.g. person,vehicle (tiles are made "
        "from blurred copies in OUTPUT_DIR/blurred_images)",
    )
    find.add_argument("--workers", type=int, default=4, help="threads (default: %(default)s)")
    find.add_argument("--quiet", action="store_true", help="no progress output from MegaDetector")
    apply = steps.add_parser("apply", help="step 3: remove the boxes whose tiles are still in the filtering folder")
    apply.add_argument("--results", required=True, help="the results file given to 'find'")
    apply.add_argument("--filtering-dir", required=True, help="the filtering_<date> folder 'find' wrote")
    apply.add_argument("--output", required=True, help="results without the repeat detections")
    apply.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    apply.add_argument("--quiet", action="store_true", help="no progress output from MegaDetector")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    require_extras("rde", args)  # a missing optional package ends the run before any work
    from ropevit_det.camera_trap.postprocess.rde import RdeOptions, apply_repeats, find_repeats

    try:
        if args.step == "find":
            options = RdeOptions(
                confidence_min=args.confidence_min,
                confidence_max=args.confidence_max,
                iou=args.iou,
                occurrences=args.occurrences,
                min_size=args.min_size,
                max_size=args.max_size,
                folder_levels=args.folder_levels,
                cct_file=args.cct,
                exclude_categories=[c.strip() for c in args.exclude.split(",") if c.strip()],
                blur=[c.strip() for c in args.blur.split(",") if c.strip()],
                workers=args.workers,
                quiet=args.quiet,
            )
            folder, suspicious = find_repeats(args.results, args.images, args.output_dir, options)
            for det in suspicious:
                print(f"  {det.tile.name}: {det.category} at {list(det.bbox)} in {det.images} images of {det.camera}")
            print(
                f"{len(suspicious)} recurring boxes; tiles in {folder}\nnext: delete the tiles that show real "
                f"animals, then run: ropevit-det rde apply --results {args.results} --filtering-dir {folder} "
                "--output RESULTS_WITHOUT_REPEATS.json"
            )
        else:
            if Path(args.output).exists() and not args.overwrite:
                raise SystemExit(f"ERROR: {args.output} exists; pass --overwrite or another --output")
            counts = apply_repeats(args.results, args.filtering_dir, args.output, quiet=args.quiet)
            print(
                f"removed {counts['removed']} detections from {counts['images_changed']} images "
                f"({counts['removed_tiles']} tiles left as false positives, {counts['kept_tiles']} deleted as "
                f"real animals); written to {args.output}"
            )
    except (ValueError, OSError, ResultsFileError, ImportError) as exc:
        raise SystemExit(user_error_message(exc, LIBRARY_FLAGS)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
