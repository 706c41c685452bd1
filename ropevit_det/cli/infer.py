#!/usr/bin/env python
r"""Run a detector over a folder of camera-trap images and write MegaDetector-format results (Timelapse, AddaxAI).

Examples:
  # a folder (searched recursively), checkpointing every 1000 images; run again with --resume after a crash
  python tools/infer.py --config configs/camera_trap/ropevit_faster_rcnn_cct.yaml \
      --weights output/my_survey/model_final.pth --class-names animal,person,vehicle \
      --input /data/card_2024_06 --output /data/card_2024_06/results.json --checkpoint-every 1000 --resume

  # plus species names from the iNat21 classifier, boxes drawn into a folder, and COCO results
  python tools/infer.py --config ... --weights ... --input '/data/**/*.JPG' --output results.json \
      --classify --classifier-weights birder://rope_vit_reg4_b14_capi-inat21 \
      --render rendered/ --coco-results coco_results.json --coco-gt val_cct.json

--input is a folder, a .txt file with one path per line, a glob, or one image. Files that are not images are
skipped; unreadable images become 'failure' entries and the run goes on. Every --checkpoint-every images the
output is rewritten atomically, so a killed run loses at most that many images and --resume carries on.
Trailing KEY VALUE pairs override config keys, as in tools/train_net.py.

Detection categories: a model whose classes are animal/person/vehicle gets MegaDetector's ids 1/2/3; other
models get ids 1..N named by --class-names, else by the config's dataset metadata, else class_0..class_{N-1}.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import torch
from detectron2.config import CfgNode

from ropevit_det.checkpoint import WeightsDownloadError
from ropevit_det.cli.common import config_arg
from ropevit_det.config import load_config
from ropevit_det.camera_trap.coco_results import md_to_coco_results
from ropevit_det.camera_trap.image_io import list_inputs
from ropevit_det.camera_trap.inference import (
    Detector,
    InputSpec,
    detection_classes,
    load_detector,
    parse_class_names,
    run_inference,
)
from ropevit_det.camera_trap.md_format import ResultsFileError, ResultsWriter, make_info, write_json_atomic
from ropevit_det.camera_trap.species import (
    DEFAULT_CONTEXT_MARGIN,
    SpeciesClassifier,
    classifier_from_detector,
    load_species_classifier,
)

logger = logging.getLogger("ropevit_det.infer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0], epilog=__doc__.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", "--config-file", dest="config_file", required=True, metavar="FILE_OR_NAME",
                        help="detector config (e.g. configs/camera_trap/ropevit_faster_rcnn_cct.yaml)")
    parser.add_argument("--weights", required=True, metavar="FILE_OR_NAME",
                        help="detector weights: a detectron2 checkpoint (e.g. model_final.pth); birder files and "
                             "birder://NAME load too but carry no trained detection heads")
    parser.add_argument("--input", required=True, help="folder (recursive), .txt list of paths, glob, or one image")
    parser.add_argument("--output", required=True, help="MegaDetector-format results JSON")
    parser.add_argument("--threshold", type=float, default=None,
                        help="detections below this confidence are not written (default: the config's "
                             "MODEL.ROI_HEADS.SCORE_THRESH_TEST, 0.05 unless set; MegaDetector writes from 0.005, "
                             "which gives fuller precision/recall curves and larger files)")
    parser.add_argument("--typical-threshold", type=float, default=0.2,
                        help="written as detector_metadata.typical_detection_threshold (Timelapse's default slider); "
                             "also the default of --render-threshold and --classify-threshold (default: %(default)s)")
    parser.add_argument("--class-names", default=None,
                        help="detector class names in model order: 'animal,person,vehicle', or a JSON list, or a "
                             "COCO/CCT file (its categories sorted by id)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per model call (default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="image decoding processes (default: %(default)s; 0 decodes in the main process)")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: MODEL.DEVICE, or cpu when CUDA is not available)")
    parser.add_argument("--bf16", action="store_true", help="run under bf16 autocast (GPU, or CPUs with AVX-512 BF16)")
    parser.add_argument("--checkpoint-every", type=int, default=1000,
                        help="rewrite --output every N images; a killed run loses at most N (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="keep the images already in --output and skip them")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--render", metavar="DIR", default=None,
                        help="write each image with its boxes and labels under DIR (same relative paths, JPEG)")
    parser.add_argument("--render-threshold", type=float, default=None,
                        help="draw detections from this confidence (default: --typical-threshold)")
    parser.add_argument("--coco-results", metavar="FILE", default=None,
                        help="also write COCO results JSON (absolute pixel boxes), from the complete results")
    parser.add_argument("--coco-gt", metavar="FILE", default=None,
                        help="COCO/CCT ground truth whose image and category ids --coco-results should use "
                             "(default: image_id = relative file path, category_id = MD category id)")
    species = parser.add_argument_group("species labels (--classify)")
    species.add_argument("--classify", action="store_true",
                         help="name the species of each detection with the RoPE ViT classifier (MD 'classifications')")
    species.add_argument("--classifier-weights", default=None, metavar="FILE_OR_NAME",
                         help="birder file, birder://NAME, or detectron2 file with the classifier (default: the "
                              "detector's own ViT when MODEL.ROPE_VIT.NUM_CLASSES > 0, else --weights)")
    species.add_argument("--classify-threshold", type=float, default=None,
                         help="classify detections from this confidence (default: --typical-threshold)")
    species.add_argument("--top-k", type=int, default=5, help="classes written per detection (default: %(default)s)")
    species.add_argument("--crop-margin", type=float, default=DEFAULT_CONTEXT_MARGIN,
                         help="context around each box, fraction of its longer side (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    # Test hook: SIGKILL this process after N images, to check that a killed run leaves a valid file to resume.
    parser.add_argument("--debug-kill-after", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    cfg = load_config(config_arg(args.config_file), args.opts)
    cfg.MODEL.WEIGHTS = args.weights
    if args.threshold is not None:
        # The model itself drops boxes under SCORE_THRESH_TEST: lower values of --threshold only work through it.
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = args.threshold
        cfg.MODEL.RETINANET.SCORE_THRESH_TEST = args.threshold
    if args.device is not None:
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: CUDA is not available on this machine; use --device cpu")
        cfg.MODEL.DEVICE = args.device
    elif cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def build_classifier(args: argparse.Namespace, cfg: CfgNode, model: torch.nn.Module, meta: dict) -> SpeciesClassifier:
    options = dict(device=cfg.MODEL.DEVICE, bf16=args.bf16, margin=args.crop_margin, top_k=args.top_k)
    vit = model.backbone.net.vit
    if args.classifier_weights is None and vit.classifier is not None and vit.window_size == 0:
        logger.info("species classifier: the detector's own ViT and classifier (shared weights)")
        return classifier_from_detector(vit, meta, cfg, args.weights, **options)
    return load_species_classifier(cfg, args.classifier_weights or args.weights, **options)


class _KillAfter(ResultsWriter):
    """ResultsWriter that SIGKILLs the process after N images (--debug-kill-after): a crash at a known point."""

    def __init__(self, output: str, *, kill_after: int, **kwargs) -> None:
        super().__init__(output, **kwargs)
        self.kill_after = kill_after

    def add(self, entry) -> None:
        super().add(entry)
        self.kill_after -= 1
        if self.kill_after == 0:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("threshold", "typical_threshold", "render_threshold", "classify_threshold"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise SystemExit(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
    if args.batch_size < 1 or args.num_workers < 0:
        raise SystemExit("--batch-size must be >= 1 and --num-workers >= 0")
    if args.coco_gt and not args.coco_results:
        raise SystemExit("--coco-gt only applies with --coco-results FILE")
    cfg = setup_cfg(args)
    try:
        root, files = list_inputs(args.input)
        logger.info("%d images under %s", len(files), root)
        class_names = parse_class_names(args.class_names) if args.class_names else None
        spec = InputSpec.from_cfg(cfg)
        model, meta = load_detector(cfg)
        classes = detection_classes(cfg.MODEL.ROI_HEADS.NUM_CLASSES, class_names,
                                    [*cfg.DATASETS.TEST, *cfg.DATASETS.TRAIN], checkpoint_meta=meta)
        classifier = build_classifier(args, cfg, model, meta) if args.classify else None
    except (ValueError, FileNotFoundError, WeightsDownloadError) as exc:
        raise SystemExit(f"ERROR: {exc}") from None

    typical = args.typical_threshold
    info = make_info(Path(args.weights).name, typical_detection_threshold=typical,
                     conservative_detection_threshold=min(0.1, typical),
                     classifier=classifier.name if classifier else None,
                     extra_detector_metadata={"config": Path(args.config_file).name,
                                              "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
                                              "max_size_test": cfg.INPUT.MAX_SIZE_TEST})
    writer_options = dict(info=info, detection_categories=classes.categories,
                          classification_categories=classifier.categories if classifier else None,
                          checkpoint_every=args.checkpoint_every, resume=args.resume, overwrite=args.overwrite)
    try:
        if args.debug_kill_after:
            writer = _KillAfter(args.output, kill_after=args.debug_kill_after, **writer_options)
        else:
            writer = ResultsWriter(args.output, **writer_options)
    except (FileExistsError, ResultsFileError, ValueError) as exc:
        raise SystemExit(f"ERROR: {exc}") from None
    with writer:
        summary = run_inference(
            Detector(model, cfg.MODEL.DEVICE, bf16=args.bf16), spec, root, files, writer, classes,
            threshold=cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST, batch_size=args.batch_size, num_workers=args.num_workers,
            classifier=classifier,
            classify_threshold=typical if args.classify_threshold is None else args.classify_threshold,
            render_dir=args.render,
            render_threshold=typical if args.render_threshold is None else args.render_threshold,
            progress=not args.no_progress)
    logger.info("%d images in %.1f s (%.2f images/s): %d detections, %d classified, %d failures%s; results in %s",
                summary.images, summary.seconds, summary.images_per_second, summary.detections, summary.classified,
                summary.failures, f" (e.g. {', '.join(summary.failed_files[:3])})" if summary.failures else "",
                args.output)
    if args.coco_results:
        results, _ = md_to_coco_results(writer.to_dict(complete=True), root, args.coco_gt)
        write_json_atomic(args.coco_results, results)
        logger.info("%d COCO results written to %s", len(results), args.coco_results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
