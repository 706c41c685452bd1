r"""Merge MegaDetector-format results files of one detector: the shards of a job array, or separate runs.

Examples:
  # 8 shards of one input (tools/infer.py --shard K/8), checked against the input for missing images
  python tools/merge_results.py --output results.json --input /data/card_2024_06 shards/results_*.json \
      --unprocessed-list todo.txt
  # then, if images are missing (the merge prints these commands), process them and merge again:
  python tools/infer.py ... --input todo.txt --input-root /data/card_2024_06 --output rest.json
  python tools/merge_results.py --output complete.json --input /data/card_2024_06 results.json rest.json

Refused, with the files named: an image in two files (overlapping shards), and files whose detection or
classification categories, or detector, differ. The merged file passes MegaDetector's validator.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ropevit_det.camera_trap.inputs.list_file import write_list_file
from ropevit_det.camera_trap.inputs.listing import list_inputs
from ropevit_det.camera_trap.results.md_format import ResultsFileError
from ropevit_det.camera_trap.results.merge import MergeError, merge_results
from ropevit_det.utils.atomic_json import write_json_atomic

logger = logging.getLogger("ropevit_det.merge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", nargs="+", metavar="RESULTS_JSON", help="MD-format results files to merge")
    parser.add_argument("--output", required=True, help="merged results JSON (written atomically)")
    parser.add_argument(
        "--input",
        default=None,
        help="the input the shards were made from (folder, .txt or .json list, glob, as for infer): "
        "report the images that no results file holds",
    )
    parser.add_argument(
        "--unprocessed-list",
        metavar="TXT",
        default=None,
        help="with --input: write the unprocessed images there, one absolute path a line, verbatim "
        "(names with line breaks as JSON strings; a .json name writes a JSON list): an --input "
        "for infer",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise SystemExit(f"ERROR: {output} exists; pass --overwrite to replace it, or another --output")
    if args.unprocessed_list and not args.input:
        raise SystemExit("ERROR: --unprocessed-list needs --input (the list of images that should be there)")
    if output.resolve() in {Path(p).resolve() for p in args.results}:
        raise SystemExit(f"ERROR: --output {output} is also one of the files to merge; write elsewhere")
    root, expected = None, None
    if args.input:
        try:
            root, expected = list_inputs(args.input)
        except (ValueError, FileNotFoundError) as exc:
            raise SystemExit(f"ERROR: --input: {exc}") from None
    try:
        merged = merge_results(args.results, expected_files=expected)
    except FileNotFoundError as exc:
        raise SystemExit(f"ERROR: {exc.filename} does not exist; pass the results files to merge") from None
    except (MergeError, ResultsFileError) as exc:
        raise SystemExit(f"ERROR: cannot merge: {exc}") from None
    try:
        write_json_atomic(output, merged.data, indent=1)
    except OSError as exc:
        raise SystemExit(
            f"ERROR: cannot write --output {output} ({exc.strerror or exc}); pass a file in a writable folder"
        ) from None
    logger.info("%d images from %d files written to %s", len(merged.data["images"]), len(args.results), output)
    if expected is not None:
        if merged.unprocessed:
            logger.warning(
                "%d of %d input images are in no results file, e.g. %s",
                len(merged.unprocessed),
                len(expected),
                ", ".join(merged.unprocessed[:5]),
            )
        else:
            logger.info("every one of the %d input images is in the merged results", len(expected))
        if args.unprocessed_list:
            lines = [str(root / rel) for rel in merged.unprocessed]
            try:
                write_list_file(args.unprocessed_list, lines)  # read back verbatim by infer --input
            except OSError as exc:
                raise SystemExit(
                    f"ERROR: cannot write --unprocessed-list {args.unprocessed_list} "
                    f"({exc.strerror or exc}); pass a file in a writable folder"
                ) from None
            logger.info("%d unprocessed images listed in %s", len(lines), args.unprocessed_list)
            if lines:
                # --input-root keeps the entries' paths relative to this input (cam3/d.jpg, not d.jpg), so that
                # the re-run's file merges with this one into the paths Timelapse expects.
                logger.warning(
                    "process them with: ropevit-det infer ... --input %s --input-root %s --output "
                    "rest.json; then merge again: ropevit-det merge --input %s --output complete.json %s "
                    "rest.json",
                    args.unprocessed_list,
                    root,
                    args.input,
                    output,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
