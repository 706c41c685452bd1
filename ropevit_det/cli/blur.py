r"""Blurred copies of every image with a person or a vehicle, before images are shared or reviewed.

Examples:
  ropevit-det blur --results results.json --images /data/card --output-dir card_blurred/
  # pixelate instead, blur from confidence 0.05, and copy the images without people too (a complete card)
  ropevit-det blur --results results.json --images /data/card --output-dir card_blurred/ \
      --method pixelate --threshold 0.05 --copy-unblurred

Each copy sits at the same relative path under --output-dir, with its EXIF and file times; the originals are
never written. Run it again to resume: finished copies are skipped. Videos are not blurred (they are listed);
an image whose detection failed is not copied. docs/REVIEW.md ("Privacy") says what is blurred and how.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ropevit_det.camera_trap.privacy.blur import BLUR_METHODS, DEFAULT_BLUR_CATEGORIES
from ropevit_det.camera_trap.results.md_format import ResultsFileError
from ropevit_det.cli.common import user_error_message

# The library's argument names (UserInputError.argument) as this command's flags.
LIBRARY_FLAGS = {"categories": "--categories", "threshold": "--threshold", "unblurred": "--copy-unblurred"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", required=True, help="MegaDetector-format results JSON")
    parser.add_argument("--images", required=True, help="folder the results' relative paths start from (ROOT)")
    parser.add_argument("--output-dir", required=True, help="where the blurred copies go (not ROOT)")
    parser.add_argument(
        "--categories",
        default=",".join(DEFAULT_BLUR_CATEGORIES),
        help="detection categories to blur, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.1,
        help="blur detections from this confidence (default: %(default)s; low on purpose)",
    )
    parser.add_argument("--method", choices=BLUR_METHODS, default="gaussian", help="default: %(default)s")
    parser.add_argument(
        "--copy-unblurred", action="store_true", help="also copy, unchanged, the images with nothing to blur"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    from ropevit_det.camera_trap.privacy.blur import BlurStyle
    from ropevit_det.camera_trap.privacy.copies import BlurOptions, blur_copies

    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    try:
        options = BlurOptions(
            categories=categories,
            threshold=args.threshold,
            style=BlurStyle(method=args.method),
            unblurred="copy" if args.copy_unblurred else "skip",
        )
        summary = blur_copies(args.results, args.images, args.output_dir, options)
    except (ValueError, FileNotFoundError, ResultsFileError) as exc:
        raise SystemExit(user_error_message(exc, LIBRARY_FLAGS)) from None
    print(
        f"{summary.blurred} images blurred ({summary.boxes} regions), {summary.unblurred} copied unchanged, "
        f"{summary.already_done} already done; in {summary.output_dir}"
    )
    if summary.missing:
        print(f"{len(summary.missing)} images not found under {args.images} (e.g. {summary.missing[0]})")
    if summary.failed_not_copied:
        print(f"{len(summary.failed_not_copied)} images whose detection failed were not copied")
    if summary.video_frames:
        print(
            f"{summary.video_frames} frames of {summary.videos_with_detections} videos written blurred as "
            "<video>.frame_<N>.jpg (videos themselves are never copied)"
        )
    if summary.videos_not_blurred:
        print(
            f"{len(summary.videos_not_blurred)} videos with a detection to blur could not be decoded "
            f"(e.g. {summary.videos_not_blurred[0]}); look at them before sharing"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
