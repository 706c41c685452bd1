#!/usr/bin/env python
r"""Write MegaDetector's HTML review page for a results file: sample frames, and with ground truth TP/FP/FN/TN.

Examples:
  # choose a threshold: frames with and without detections, per category, at 0.2
  python tools/review.py --results results.json --images /data/card_2024_06 --output-dir review/ --threshold 0.2

  # with ground truth (CCT or COCO): true/false positive/negative pages and the precision/recall curve
  python tools/review.py --results results.json --images /data/card --output-dir review/ --gt val_cct.json

Open review/index.html in a browser. The page is MegaDetector's (postprocess_batch_results); its printed
precision/recall differ from `ropevit-det eval-camtrap` by definition (docs/REVIEW.md says where and why).
"""

from __future__ import annotations

import argparse
import logging
import sys

from ropevit_det._deps import require_extras
from ropevit_det.camera_trap.results.md_format import ResultsFileError
from ropevit_det.cli.common import user_error_message

# The library's argument names (UserInputError.argument) as this command's flags.
LIBRARY_FLAGS = {
    "gt_prefix": "--gt-strip-prefix / --gt-add-prefix",
    "categories": "--blur",
    "threshold": "--threshold",
    "sort_order": "--sort",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", required=True, help="MegaDetector-format results JSON (tools/infer.py)")
    parser.add_argument("--images", required=True, help="folder the results' relative paths start from")
    parser.add_argument("--output-dir", required=True, help="where index.html and its pages go")
    parser.add_argument("--gt", default=None, help="ground truth, COCO Camera Traps or plain COCO JSON")
    parser.add_argument(
        "--gt-strip-prefix",
        default=None,
        help="leading folders to remove from ground-truth file_name before matching results",
    )
    parser.add_argument("--gt-add-prefix", default="", help="text to put in front of ground-truth file_name")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="draw and count detections from this confidence (default: the results file's typical_detection_threshold)",
    )
    parser.add_argument("--sample", type=int, default=1000, help="frames rendered, -1 for all (default: %(default)s)")
    parser.add_argument("--image-width", type=int, default=1000, help="rendered width in pixels (default: %(default)s)")
    parser.add_argument(
        "--sort",
        default="filename",
        choices=("filename", "confidence", "random"),
        help="order of the frames on each page (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=4, help="rendering threads, 0 for none (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress output from MegaDetector")
    parser.add_argument(
        "--blur",
        default="",
        metavar="CATEGORIES",
        help="blur these detection categories in every frame the page shows, e.g. person,vehicle "
        "(the page is made from blurred copies in OUTPUT_DIR/blurred_images)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    require_extras("review", args)  # a missing optional package ends the run before any work
    from ropevit_det.camera_trap.postprocess.review import ReviewOptions, write_review

    options = ReviewOptions(
        threshold=args.threshold,
        gt_file=args.gt,
        gt_strip_prefix=args.gt_strip_prefix,
        gt_add_prefix=args.gt_add_prefix,
        num_samples=args.sample,
        image_width=args.image_width,
        workers=args.workers,
        sort_order=args.sort,
        quiet=args.quiet,
        blur=[c.strip() for c in args.blur.split(",") if c.strip()],
    )
    try:
        summary = write_review(args.results, args.images, args.output_dir, options)
    except (ValueError, OSError, ResultsFileError, ImportError) as exc:
        raise SystemExit(user_error_message(exc, LIBRARY_FLAGS)) from None
    print(
        f"review page: {summary.index_html} (threshold {summary.threshold:g}, {summary.images} images"
        + (f", ground truth {args.gt}" if args.gt else "")
        + ")"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
