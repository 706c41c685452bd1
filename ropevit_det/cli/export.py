#!/usr/bin/env python
r"""Export a trained detector to ONNX or TorchScript, through detectron2's TracingAdapter.

Examples:
  ropevit-det export --config configs/camera_trap/ropevit_faster_rcnn_cct.yaml \
      --weights output/my_survey/model_final.pth --format onnx --output model.onnx
  # run the file from Python: ropevit_det.export.ExportedDetector("model.onnx", runtime="onnxruntime")
  # (ropevit-det infer --backend onnxruntime|openvino exports the model itself at start-up)

The graph has a FIXED input size (--input-size H W; default: MODEL.SFP.SQUARE_PAD when set, else
INPUT.MIN_SIZE_TEST x 4/3 of it, the shape of most camera-trap frames). RoPE tables and the resized position
embedding are traced for that size only. At run time each image is resized as the config says, shrunk if it
still does not fit, and padded to the export size; boxes come back in the original image's pixels.
Inputs: image (3, H, W) float pixels in INPUT.FORMAT, image_hw (2,) int64 content size.
Outputs: boxes (N, 4) xyxy in the padded input's pixels, scores (N,), classes (N,) [, masks (N, 1, 28, 28)].
Trailing KEY VALUE pairs override config keys.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ropevit_det._deps import require_extras
from ropevit_det.checkpoint import WeightsDownloadError
from ropevit_det.cli.common import config_arg
from ropevit_det.config import load_config

logger = logging.getLogger("ropevit_det.export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        "--config-file",
        dest="config_file",
        required=True,
        metavar="FILE_OR_NAME",
        help="detector config (a file or a model-zoo name)",
    )
    parser.add_argument("--weights", required=True, metavar="FILE_OR_NAME", help="detector weights (model_final.pth)")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="default: %(default)s")
    parser.add_argument("--output", required=True, help="file to write (e.g. model.onnx or model.ts)")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="the fixed input size of the graph (default: MODEL.SFP.SQUARE_PAD when set, else "
        "INPUT.MIN_SIZE_TEST high by 4/3 of it wide)",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require_extras("export", args)  # a missing optional package ends the run before any work
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ropevit_det.engine.predictor import load_detector
    from ropevit_det.export import ExportInfo, default_input_hw, export_model, outputs_of

    cfg = load_config(config_arg(args.config_file), [*args.opts, "MODEL.DEVICE", "cpu"])
    cfg.MODEL.WEIGHTS = args.weights
    cfg.freeze()
    try:
        model, _ = load_detector(cfg)
        input_hw = tuple(args.input_size) if args.input_size else default_input_hw(model, cfg.INPUT.MIN_SIZE_TEST)
        info = ExportInfo(
            input_hw=input_hw,
            pixel_mean=tuple(cfg.MODEL.PIXEL_MEAN),
            input_format=cfg.INPUT.FORMAT,
            outputs=outputs_of(model),
            num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            score_thresh=cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
            config=Path(args.config_file).name,
            fmt=args.format,
        )
        logger.info("tracing at a fixed input size of %d x %d (%s)", *input_hw, args.format)
        data = export_model(model, info)
    except (ValueError, FileNotFoundError, WeightsDownloadError) as exc:
        hint = " (pass --input-size H W)" if "input size" in str(exc) else ""
        raise SystemExit(f"ERROR: {exc}{hint}") from None
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    logger.info(
        "wrote %s (%.1f MB): inputs image (3, %d, %d) float, image_hw (2,) int64; outputs %s",
        output,
        len(data) / 2**20,
        *input_hw,
        ", ".join(info.outputs),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
