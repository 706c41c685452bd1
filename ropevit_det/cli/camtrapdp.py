#!/usr/bin/env python
r"""Camtrap DP 1.0.2: publish detections as the TDWG camera-trap data package, validate one, import one for training.

  ropevit-det camtrapdp export --results results.json --deployments deployments.csv --images /data/cards \
      --output package/ [--package-metadata meta.yaml] [--copy-media] [--skip-undated] [--skip-failed]
  ropevit-det camtrapdp validate package/
  ropevit-det camtrapdp import --package package/ --images /data/cards --output train.json

export writes datapackage.json, deployments.csv, media.csv and observations.csv, then validates them (offline,
against the shipped 1.0.2 profile) and lists every metadata default it used. See docs/CAMTRAP_DP.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ropevit_det._deps import require_extras


def build_parser() -> argparse.ArgumentParser:
    from ropevit_det.camera_trap.camtrapdp.events import DEFAULT_EVENT_GAP_SECONDS

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = parser.add_subparsers(dest="step", required=True)
    export = steps.add_parser("export", help="MegaDetector-format results + deployments -> a Camtrap DP package")
    export.add_argument("--results", required=True, help="MegaDetector-format results JSON (ropevit-det infer)")
    export.add_argument(
        "--deployments",
        required=True,
        help="deployments CSV: deploymentID, latitude, longitude, deploymentStart, deploymentEnd, "
        "timezone, folder (+ optional deployments-table columns)",
    )
    export.add_argument("--images", required=True, help="image root the results' paths and the folders start from")
    export.add_argument("--output", required=True, help="package folder to write")
    export.add_argument(
        "--package-metadata",
        default=None,
        help="YAML or JSON: title, contributors, project, licenses, ... (defaults are listed)",
    )
    export.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="detections at or above this confidence are observations (default: the results' "
        "typical_detection_threshold, else 0.2)",
    )
    export.add_argument(
        "--classification-threshold",
        type=float,
        default=0.5,
        help="species labels below this confidence leave scientificName empty (default: %(default)s)",
    )
    export.add_argument(
        "--event-gap",
        type=float,
        default=DEFAULT_EVENT_GAP_SECONDS,
        help="seconds between two media that start a new event (default: %(default)s)",
    )
    export.add_argument("--cct", default=None, help="group events by this COCO Camera Traps file's seq_id instead")
    export.add_argument(
        "--skip-undated",
        action="store_true",
        help="leave out media without a capture time (counted) instead of stopping",
    )
    export.add_argument(
        "--skip-failed",
        action="store_true",
        help="leave out images the detector could not read (counted) instead of stopping",
    )
    export.add_argument(
        "--copy-media",
        action="store_true",
        help="copy the media into OUTPUT/media/ so filePath resolves inside the package",
    )
    export.add_argument(
        "--capture-method",
        choices=("activityDetection", "timeLapse"),
        default="activityDetection",
        help="media.captureMethod (default: %(default)s)",
    )
    export.add_argument("--overwrite", action="store_true", help="replace a package already in --output")
    validate = steps.add_parser("validate", help="validate a package against Camtrap DP 1.0.2 (offline)")
    validate.add_argument("package", help="package folder (or its datapackage.json)")
    imp = steps.add_parser("import", help="a Camtrap DP 1.x package with boxes -> COCO Camera Traps JSON")
    imp.add_argument("--package", required=True, help="package folder")
    imp.add_argument(
        "--images",
        required=True,
        help="where the media are: ROOT/filePath, or ROOT/fileName for media published as URLs",
    )
    imp.add_argument("--output", required=True, help="CCT JSON to write")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require_extras("camtrapdp", args)  # a missing optional package ends the run before any work
    from ropevit_det.camera_trap.results.md_format import ResultsFileError

    try:
        if args.step == "export":
            return _export(args)
        if args.step == "validate":
            from ropevit_det.camera_trap.camtrapdp.validate import validate_package

            result = validate_package(args.package)
            print(result.describe())
            return 0 if result.valid else 1
        return _import(args)
    except (ValueError, FileNotFoundError, ResultsFileError, OSError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


def _export(args: argparse.Namespace) -> int:
    from ropevit_det.camera_trap.camtrapdp.export import ExportOptions, export_package
    from ropevit_det.camera_trap.camtrapdp.validate import validate_package

    options = ExportOptions(
        threshold=args.threshold,
        classification_threshold=args.classification_threshold,
        event_gap_seconds=args.event_gap,
        cct_file=args.cct,
        skip_undated=args.skip_undated,
        skip_failed=args.skip_failed,
        copy_media=args.copy_media,
        capture_method=args.capture_method,
        overwrite=args.overwrite,
    )
    report = export_package(
        results=args.results,
        deployments=args.deployments,
        images=args.images,
        output=args.output,
        metadata=args.package_metadata,
        options=options,
    )
    print(report.describe())
    result = validate_package(args.output)
    print(result.describe())
    return 0 if result.valid else 1


def _import(args: argparse.Namespace) -> int:
    from ropevit_det.camera_trap.camtrapdp.import_coco import package_to_cct

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite or choose another --output")
    data, report = package_to_cct(args.package, args.images)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=1), encoding="utf-8")
    print(f"wrote {output}: {report.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
