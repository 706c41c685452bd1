#!/usr/bin/env python
"""Score a MegaDetector-format results file the way camera-trap people do.

Example:
    python tools/eval_camera_trap.py --results results.json --gt val_cct.json \\
        --threshold 0.2 --json metrics.json --plot pr.png

Prints image-level (and, with seq_id in the ground truth, sequence-level) precision / recall / F1 of
"animal present", the false-positive rate on empty frames, recall at a target precision, precision at a
target recall, and box COCO AP / AP50.

With ``--glance-report GLANCE.json`` (results of ``infer --glance PX --glance-threshold 2`` on the same images;
``--results`` the single-pass run; no ``--gt`` needed) it reports instead what glance-then-look costs there: the
escalation rate and the recall lost against single-pass inference at each escalation threshold, and the highest
threshold that loses nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ropevit_det.camera_trap.metrics import (
    POSITIVE_CLASSES,
    EvalOptions,
    evaluate_results,
    format_table,
    plot_pr_curves,
)
from ropevit_det.cli.common import os_error_sentence
from ropevit_det.utils.atomic_json import write_json_atomic


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="MegaDetector-format results JSON (e.g. from tools/infer.py)")
    parser.add_argument(
        "--gt",
        default=None,
        help="ground truth: COCO Camera Traps or plain COCO JSON (required unless --glance-report)",
    )
    parser.add_argument(
        "--glance-report",
        default=None,
        metavar="GLANCE_RESULTS",
        help="results of `infer --glance PX --glance-threshold 2` on the images of --results (a "
        "single-pass run): report the escalation rate and the recall lost at each escalation "
        "threshold, and suggest the highest that loses nothing",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="confidence threshold (default: the results file's typical_detection_threshold, else 0.2)",
    )
    parser.add_argument(
        "--category",
        default="animal",
        choices=POSITIVE_CLASSES,
        help="class whose presence is scored ('any': any non-empty label / any detection)",
    )
    parser.add_argument("--target-precision", type=float, default=0.95, help="report recall at this precision")
    parser.add_argument("--target-recall", type=float, default=0.95, help="report precision at this recall")
    parser.add_argument(
        "--mapping",
        default=None,
        help='JSON {species: "animal"|"person"|"vehicle"|"ignore"} for ground-truth species names',
    )
    parser.add_argument(
        "--image-root",
        default=None,
        help="image folder, to read width/height missing from the ground truth (box AP only)",
    )
    parser.add_argument(
        "--gt-strip-prefix",
        default=None,
        help="leading folders to remove from ground-truth file_name before matching results",
    )
    parser.add_argument(
        "--gt-add-prefix", default="", help="text to put in front of ground-truth file_name after stripping"
    )
    parser.add_argument("--no-box-ap", action="store_true", help="skip COCO box AP (image-level metrics only)")
    parser.add_argument("--json", default=None, help="also write the metrics (and PR curves) to this JSON file")
    parser.add_argument("--plot", default=None, help="write a precision/recall curve PNG here")
    return parser


# The library names its options; on the command line they are these flags.
FLAG_OF_OPTION = {
    "gt_strip_prefix": "--gt-strip-prefix",
    "gt_add_prefix": "--gt-add-prefix",
    "mapping_file": "--mapping",
    "image_root": "--image-root",
}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return _evaluate(args)
    except (ValueError, OSError, KeyError) as error:
        message = os_error_sentence(error) if isinstance(error, OSError) else str(error)
        for option, flag in FLAG_OF_OPTION.items():
            message = message.replace(option, flag)
        raise SystemExit(f"ERROR: {message}") from None


def _glance_report(args: argparse.Namespace) -> int:
    from ropevit_det.camera_trap.metrics.glance_report import format_glance_report, glance_report
    from ropevit_det.camera_trap.results.md_format import load_results

    full = load_results(args.results)
    typical = args.threshold
    if typical is None:
        typical = float((full.get("info") or {}).get("detector_metadata", {}).get("typical_detection_threshold", 0.2))
    report = glance_report(full, load_results(args.glance_report), typical)
    print(format_glance_report(report))
    if args.json:
        write_json_atomic(args.json, report.as_dict(), indent=1)
        print(f"\nglance report written to {args.json}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if args.glance_report:
        return _glance_report(args)
    if args.gt is None:
        raise ValueError(
            "--gt is required (ground truth: COCO Camera Traps or plain COCO JSON), unless --glance-report is given"
        )
    options = EvalOptions(
        threshold=args.threshold,
        positive_class=args.category,
        target_precision=args.target_precision,
        target_recall=args.target_recall,
        mapping_file=args.mapping,
        image_root=args.image_root,
        gt_strip_prefix=args.gt_strip_prefix,
        gt_add_prefix=args.gt_add_prefix,
        box_ap=not args.no_box_ap,
    )
    report = evaluate_results(args.results, args.gt, options)
    print(format_table(report))
    if args.json:
        write_json_atomic(args.json, report, indent=1)
        print(f"\nmetrics written to {args.json}")
    if args.plot:
        plot_pr_curves(report, args.plot)
        print(f"precision/recall curve written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
