#!/usr/bin/env python
"""Convert a birder RoPE ViT checkpoint into a detectron2 checkpoint (see ``--help``)."""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import uuid
from pathlib import Path

import torch

from ropevit_det.checkpoint import birder_to_d2_checkpoint, convert_trusted_pickle, read_birder_checkpoint
from ropevit_det.checkpoint.conversion import VIT_PREFIX
from ropevit_det.cli.common import user_error_message

DESCRIPTION = f"""\
Convert a birder rope_vit_reg4_b14 checkpoint into a detectron2 checkpoint that DetectionCheckpointer
loads as is (no matching heuristics).

Input (SRC), either birder format, recognised by content:
  .pt           torch.save({{"state", "signature", "rgb_stats", "class_to_idx", ...}}), read with
                torch.load(weights_only=True): a file holding pickled code is refused, never executed.
  .safetensors  tensors plus signature / rgb_stats / class_to_idx as JSON metadata.

Output (DST), a torch file {{"model": {{...}}, "__author__": "ropevit_det", "matching_heuristics": False, ...}}:
  - every ViT tensor, renamed through one explicit key table to "{VIT_PREFIX}<birder name>";
    a source key the table does not know, or a table key the source lacks, is an error naming the keys;
  - the classifier (classifier.*) is dropped unless --keep-classifier is given;
  - metadata: rgb_stats, pixel_mean / pixel_std (rgb_stats x255, RGB order: use them as MODEL.PIXEL_MEAN /
    MODEL.PIXEL_STD), resolution, class_to_idx, source file name and sha256, birder version.
Shapes are checked when the file is loaded into a model: ropevit_det's RoPEViTCheckpointer (used by the
project's tools) stops with an error naming each tensor that is missing or of the wrong shape (e.g. ViT-S
weights into a ViT-B config); a plain DetectionCheckpointer loads the file too, but only warns.
Converting is optional: MODEL.WEIGHTS may also point at the raw birder file, or at birder://NAME for the
published weights (downloaded once into $ROPEVIT_DET_CACHE, default ~/.cache/ropevit_det).

With --trusted-pickle, SRC is instead a legacy weights file (.pkl, .pth) that the safe loaders refuse because it
holds pickled objects: it is read with full pickle, WHICH RUNS ANY CODE IT HOLDS (give only a file you trust),
and written as DST with tensors, numbers and strings only, which every loader of this project reads with
weights_only=True. See docs/WEIGHTS.md (trust model).
"""

EPILOG = """\
example:
  python tools/convert_birder_to_d2.py rope_vit_reg4_b14_capi-inat21.pt inat21_d2.pth
  then: MODEL.WEIGHTS inat21_d2.pth
"""


# The conversion arguments this command sets through a flag: errors naming an argument name the flag too.
# The library's argument names (UserInputError.argument) as this command's flags.
ARGUMENT_FLAGS = {"keep_classifier": "--keep-classifier"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "src",
        metavar="SRC",
        type=Path,
        help="birder checkpoint (.pt or .safetensors); with --trusted-pickle a legacy .pkl/.pth",
    )
    parser.add_argument("dst", metavar="DST", type=Path, help="detectron2 checkpoint to write (e.g. .pth)")
    parser.add_argument(
        "--keep-classifier",
        action="store_true",
        help=f"keep birder's classifier as {VIT_PREFIX}classifier.* (for the camera-trap species path; the model "
        "must then have MODEL.ROPE_VIT.NUM_CLASSES equal to the classifier's classes)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    parser.add_argument(
        "--trusted-pickle",
        action="store_true",
        help="SRC is a legacy weights file you trust: unpickle it fully (this runs code it holds) and write its "
        "tensors and plain data to DST, loadable with weights_only=True",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.dst.exists() and not args.force:
        print(f"error: {args.dst} exists; pass --force to overwrite it", file=sys.stderr)
        return 2
    if args.trusted_pickle:
        return convert_trusted(args.src, args.dst)
    try:
        checkpoint = read_birder_checkpoint(args.src)
        converted = birder_to_d2_checkpoint(checkpoint, keep_classifier=args.keep_classifier)
    except (FileNotFoundError, ValueError) as e:
        print(user_error_message(e, ARGUMENT_FLAGS), file=sys.stderr)
        return 1
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.dst.with_name(f"{args.dst.name}.{uuid.uuid4().hex}.partial")
    try:
        torch.save(converted, tmp)
        os.replace(tmp, args.dst)  # never leave a half-written DST behind
    finally:
        tmp.unlink(missing_ok=True)
    kept = "kept" if args.keep_classifier else "dropped"
    print(
        f"wrote {args.dst}: {len(converted['model'])} tensors (classifier {kept}), trained at "
        f"{checkpoint.resolution[0]}x{checkpoint.resolution[1]}, MODEL.PIXEL_MEAN "
        f"{[round(v, 3) for v in converted['pixel_mean']]}, MODEL.PIXEL_STD "
        f"{[round(v, 3) for v in converted['pixel_std']]}, from {checkpoint.source_name} (sha256 {checkpoint.sha256})"
    )
    return 0


def convert_trusted(src: Path, dst: Path) -> int:
    try:
        checkpoint, left_out = convert_trusted_pickle(src, dst)
    except (OSError, ValueError, pickle.UnpicklingError, AttributeError, ModuleNotFoundError) as e:
        print(f"error: {src}: {e}", file=sys.stderr)
        return 1
    model = checkpoint.get("model")
    count = len(model) if isinstance(model, dict) else 0
    dropped = f"; left out (not plain data): {', '.join(left_out)}" if left_out else ""
    print(f"wrote {dst}: {count} tensors from {src} (trusted legacy file), loadable with weights_only=True{dropped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
