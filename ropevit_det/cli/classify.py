r"""Add species labels to any MegaDetector-format results file: ours, MegaDetector's, or RDE's output.

Examples:
  ropevit-det classify --results results_rde.json --images /data/card --output results_species.json \
      --classifier-weights birder://rope_vit_reg4_b14_capi-inat21 --taxa Mammalia,Aves \
      --geofence geofence_release.json --country KEN --rollup 0.7 --smooth-sequences

Each detection at or above --classify-threshold (default: the file's typical_detection_threshold, else 0.2) is
cropped from the full image (the box plus --crop-margin of context, squared) and classified; MegaDetector's
`classifications` go on the detection and `classification_categories` into the file. Labels already in the file
are replaced. The output is written once, atomically, and never over the input. `infer --classify` does the same
in the detection pass; this step is for files that exist already. The classifier's ViT shape comes from --config
(trailing KEY VALUE pairs override it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ropevit_det._deps import require_extras

DEFAULT_CONFIG = "camera_trap/ropevit_faster_rcnn_cct.yaml"  # a model-zoo name: the full ViT-B/14 at 336 px
DEFAULT_CLASSIFIER = "birder://rope_vit_reg4_b14_capi-inat21"


def build_parser() -> argparse.ArgumentParser:
    from ropevit_det.camera_trap.species.crops import DEFAULT_CONTEXT_MARGIN
    from ropevit_det.cli.species_args import add_species_args

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", required=True, help="MegaDetector-format results JSON to add species to")
    parser.add_argument("--images", required=True, help="folder the results' relative paths start from")
    parser.add_argument("--output", required=True, help="results JSON with species (not the --results file)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument(
        "--config",
        "--config-file",
        dest="config_file",
        default=DEFAULT_CONFIG,
        metavar="FILE_OR_NAME",
        help="config giving the classifier's ViT shape (default: %(default)s)",
    )
    parser.add_argument(
        "--classifier-weights",
        default=DEFAULT_CLASSIFIER,
        metavar="FILE_OR_NAME",
        help="birder file, birder://NAME, or detectron2 file with the classifier (default: %(default)s)",
    )
    parser.add_argument(
        "--classify-threshold",
        type=float,
        default=None,
        help="classify detections from this confidence (default: the file's typical_detection_threshold, else 0.2)",
    )
    parser.add_argument("--top-k", type=int, default=5, help="classes written per detection (default: %(default)s)")
    parser.add_argument(
        "--crop-margin",
        type=float,
        default=DEFAULT_CONTEXT_MARGIN,
        help="context around each box, fraction of its longer side (default: %(default)s)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument("--bf16", action="store_true", help="classify under bf16 autocast")
    add_species_args(parser.add_argument_group("species that fit the place"))
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    parser.set_defaults(classify=True)  # what the species flags' checks expect (cli/species_args.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    require_extras("classify", args)  # a missing optional package ends the run before any work
    from ropevit_det.cli.common import config_arg, reject_flags_among_overrides
    from ropevit_det.cli.species_args import build_species_filter, check_species_args

    reject_flags_among_overrides(args.opts)
    check_species_args(args)
    results_path, output = Path(args.results), Path(args.output)
    if output.resolve() == results_path.resolve():
        raise SystemExit(
            f"ERROR: --output is the --results file {results_path}: the input is never overwritten; "
            "pass another --output"
        )
    if output.exists() and not args.overwrite:
        raise SystemExit(f"ERROR: --output {output} exists; pass --overwrite (or another --output)")
    if not 0.0 <= (args.classify_threshold if args.classify_threshold is not None else 0.0) <= 1.0:
        raise SystemExit("ERROR: --classify-threshold must be in 0..1")
    if args.top_k < 1:
        raise SystemExit("ERROR: --top-k must be at least 1")

    from ropevit_det.camera_trap.results.md_format import ResultsFileError, load_results

    try:
        results = load_results(results_path)
    except FileNotFoundError:
        raise SystemExit(f"ERROR: --results {results_path} does not exist") from None
    except ResultsFileError as exc:
        raise SystemExit(f"ERROR: --results: {exc}") from None
    if not Path(args.images).is_dir():
        raise SystemExit(f"ERROR: --images {args.images} is not a folder")
    threshold = args.classify_threshold
    if threshold is None:
        threshold = float((results.get("info") or {}).get("typical_detection_threshold", 0.2))

    from ropevit_det.camera_trap.species.add_species import add_species
    from ropevit_det.camera_trap.species.classifier import load_species_classifier
    from ropevit_det.checkpoint import WeightsDownloadError
    from ropevit_det.config import load_config
    from ropevit_det.utils.atomic_json import write_json_atomic

    try:
        cfg = load_config(config_arg(args.config_file), list(args.opts))
        classifier = load_species_classifier(
            cfg, args.classifier_weights, device=args.device, bf16=args.bf16, margin=args.crop_margin, top_k=args.top_k
        )
    except (ValueError, FileNotFoundError, WeightsDownloadError) as exc:
        raise SystemExit(f"ERROR: --classifier-weights / --config: {exc}") from None
    classifier = build_species_filter(args, classifier)
    try:
        labelled, summary = add_species(results, args.images, classifier, threshold=threshold)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"ERROR: {exc}") from None
    if args.smooth_sequences:
        labelled = _smoothed(labelled, args)
    write_json_atomic(output, labelled, indent=1)
    print(
        f"{summary.classified} detections classified in {summary.images} images (threshold {threshold:g}; "
        f"{summary.below_threshold} below it); written to {output}"
    )
    if summary.missing:
        print(f"{len(summary.missing)} images not found under {args.images} (e.g. {summary.missing[0]})")
    if summary.unreadable:
        print(f"{len(summary.unreadable)} images could not be read (e.g. {summary.unreadable[0]})")
    if summary.videos:
        print(f"{summary.videos} videos left unclassified (use infer --classify on videos)")
    return 0


def _smoothed(results: dict, args: argparse.Namespace) -> dict:
    """``--smooth-sequences``: labels smoothed per sequence (from --sequences-cct, else capture times)."""
    from ropevit_det.camera_trap.postprocess.smoothing import (
        sequences_from_capture_times,
        sequences_from_cct,
        smooth_sequences,
    )

    try:
        if args.sequences_cct:
            sequences = sequences_from_cct(args.sequences_cct, results)
        else:
            sequences = sequences_from_capture_times(results, interval_seconds=args.sequence_interval)
        if not sequences:
            logging.getLogger("ropevit_det.classify").warning(
                "--smooth-sequences: no entry has a capture time ('datetime'); pass --sequences-cct FILE to give "
                "the sequences. Labels left as they are."
            )
            return results
        return smooth_sequences(results, sequences, classification_threshold=args.smooth_threshold)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        raise SystemExit(f"ERROR: --smooth-sequences: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
