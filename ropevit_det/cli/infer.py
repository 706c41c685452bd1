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

  # 2 processes (GPUs, or CPU processes over gloo), or 4 machines x 8 GPUs: the training launch flags
  python tools/infer.py ... --num-gpus 2
  python tools/infer.py ... --num-gpus 8 --num-machines 4 --machine-rank R --dist-url tcp://HOST0:29500

  # a SLURM job array of 8 shards (sbatch --array=1-8), then one merged file
  python tools/infer.py ... --shard ${SLURM_ARRAY_TASK_ID}/8 --output shards/results_${SLURM_ARRAY_TASK_ID}.json
  python tools/merge_results.py --output results.json --input /data/card_2024_06 shards/results_*.json \
      --unprocessed-list todo.txt
  # the images no shard holds (the merge prints this command), then one complete file
  python tools/infer.py ... --input todo.txt --input-root /data/card_2024_06 --output rest.json
  python tools/merge_results.py --output complete.json --input /data/card_2024_06 results.json rest.json

--input is a folder, a .txt file with one path per line, a glob, or one image or video. Files that are neither
are skipped; unreadable images and videos become 'failure' entries and the run goes on. Videos (.mp4, .avi,
.mov, .mkv) get one entry each, in MegaDetector's video convention (frame_rate, frames_processed, detections
with frame_number). Each image entry carries its EXIF capture time as 'datetime'.

Checkpoints: every finished image is one line appended to a journal next to --output (<output>.journal-R.jsonl),
fsynced every --checkpoint-every images; --output itself is written once, atomically, when the run ends. A
killed run keeps its journal and --resume carries on from it (any rank, any number of processes).
Trailing KEY VALUE pairs override config keys, as in tools/train_net.py.

Detection categories: a model whose classes are animal/person/vehicle gets MegaDetector's ids 1/2/3; other
models get ids 1..N named by --class-names, else by the config's dataset metadata, else class_0..class_{N-1}.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch
from detectron2.config import CfgNode
from detectron2.engine import launch
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from ropevit_det.checkpoint import WeightsDownloadError
from ropevit_det.cli.common import config_arg
from ropevit_det.engine.devices import available_device
from ropevit_det.engine.distributed import shutdown_distributed
from ropevit_det.cli.species_args import add_species_args, build_species_filter, smooth_species_labels
from ropevit_det.config import load_config
from ropevit_det.camera_trap.results.coco_results import md_to_coco_results
from ropevit_det.camera_trap.detection.categories import detection_classes, parse_class_names
from ropevit_det.engine.predictor import Detector, InputSpec, load_detector
from ropevit_det.camera_trap.inputs.listing import InputRootError, list_inputs
from ropevit_det.export.cpu_backend import CPU_BACKENDS, cpu_detector
from ropevit_det.camera_trap.detection.batch_loop import run_inference
from ropevit_det.camera_trap.results.journal import JournalError
from ropevit_det.camera_trap.results.md_format import ResultsFileError, make_info
from ropevit_det.camera_trap.results.writer import ResultsWriter, prepare_output
from ropevit_det.utils.atomic_json import write_json_atomic
from ropevit_det.camera_trap.inputs.sharding import parse_shard, part_of
from ropevit_det.camera_trap.inputs.video import FrameSampling
from ropevit_det.camera_trap.species.classifier import (
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
    parser.add_argument("--input", required=True,
                        help="folder (recursive), .txt list of paths, glob, or one image or video")
    parser.add_argument("--input-root", default=None, metavar="DIR",
                        help="the folder that the results' file paths are relative to; every input must lie under "
                             "it. Give the first run's --input when re-running a merge's --unprocessed-list, so the "
                             "entries keep their sub-folders (default: the --input folder, the common folder of a "
                             ".txt list's paths, a glob's folder before its first wildcard, or a file's folder)")
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
    parser.add_argument("--backend", choices=("pytorch", *CPU_BACKENDS), default="pytorch",
                        help="CPUs without bf16: int8 (the ViT's linear layers quantized to int8), or the "
                             "model exported at start-up and run by onnxruntime / openvino (default: %(default)s)")
    parser.add_argument("--checkpoint-every", type=int, default=1000,
                        help="fsync the journal every N images: a power cut loses at most N, a killed process "
                             "none but the batch in flight (default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the images already in --output or in its journal(s) and carry on")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output and its journal")
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
    add_species_args(species)  # --taxa, --species-list, --rollup, --smooth-sequences (cli/species_args.py)
    video = parser.add_argument_group("videos (.mp4, .avi, .mov, .mkv)")
    video.add_argument("--frame-sample", type=int, default=None, metavar="N",
                       help="detect every N-th frame (default: every frame)")
    video.add_argument("--time-sample", type=float, default=None, metavar="S",
                       help="detect one frame every S seconds")
    video.add_argument("--all-frames", action="store_true",
                       help="keep every sampled frame's detections (default: the most confident one per category, "
                            "as MegaDetector's frame_results_to_video_results does)")
    scale = parser.add_argument_group("several processes and machines (detectron2 launch, as for training)")
    scale.add_argument("--num-gpus", type=int, default=1,
                       help="processes per machine: one per GPU, or CPU processes over gloo (default: %(default)s)")
    scale.add_argument("--num-machines", type=int, default=1, help="(default: %(default)s)")
    scale.add_argument("--machine-rank", type=int, default=0, help="this machine's rank (default: %(default)s)")
    scale.add_argument("--dist-url", default="auto",
                       help="rendezvous of the processes, e.g. tcp://HOST0:29500 (default: auto, a free local port; "
                            "one machine only)")
    scale.add_argument("--shard", default=None, metavar="K/N",
                       help="process only the K-th of N deterministic parts of the input (K = 1..N), e.g. a job-array "
                            "task; give each shard its own --output and merge them with tools/merge_results.py")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def setup_cfg(args: argparse.Namespace, local_rank: int | None = None) -> CfgNode:
    """The detector config; ``local_rank`` (distributed runs) picks this process's GPU."""
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
    else:
        cfg.MODEL.DEVICE = available_device(cfg.MODEL.DEVICE)
    if local_rank is not None and cfg.MODEL.DEVICE.startswith("cuda"):
        cfg.MODEL.DEVICE = f"cuda:{local_rank}"  # launch set this process's device; the model goes there
    cfg.freeze()
    return cfg


def build_classifier(args: argparse.Namespace, cfg: CfgNode, model: torch.nn.Module, meta: dict) -> SpeciesClassifier:
    options = dict(device=cfg.MODEL.DEVICE, bf16=args.bf16, margin=args.crop_margin, top_k=args.top_k)
    vit = model.backbone.net.vit
    if args.classifier_weights is None and vit.classifier is not None and vit.window_size == 0:
        logger.info("species classifier: the detector's own ViT and classifier (shared weights)")
        return classifier_from_detector(vit, meta, cfg, args.weights, **options)
    return load_species_classifier(cfg, args.classifier_weights or args.weights, **options)


def check_args(args: argparse.Namespace) -> tuple[tuple[int, int] | None, FrameSampling]:
    """Flag values that cannot work end the run here, before any process starts; returns (shard, sampling)."""
    for name in ("threshold", "typical_threshold", "render_threshold", "classify_threshold"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise SystemExit(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
    if args.batch_size < 1 or args.num_workers < 0:
        raise SystemExit("--batch-size must be >= 1 and --num-workers >= 0")
    if args.coco_gt and not args.coco_results:
        raise SystemExit("--coco-gt only applies with --coco-results FILE")
    if args.backend != "pytorch" and (args.bf16 or (args.device or "cpu") != "cpu"):
        raise SystemExit(f"--backend {args.backend} runs on the CPU in fp32: drop --bf16 and --device")
    if args.num_gpus < 1 or args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise SystemExit("--num-gpus and --num-machines must be >= 1 and --machine-rank in 0..num-machines-1")
    if args.num_machines > 1 and args.dist_url == "auto":
        raise SystemExit("--dist-url auto only works on one machine; give every machine --dist-url tcp://HOST0:PORT")
    if torch.cuda.is_available() and args.num_gpus > torch.cuda.device_count():
        raise SystemExit(f"--num-gpus {args.num_gpus}: this machine has {torch.cuda.device_count()} GPUs")
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as exc:
        raise SystemExit(f"ERROR: --shard: {exc}") from None
    try:
        sampling = FrameSampling(every_n_frames=args.frame_sample, every_seconds=args.time_sample)
    except ValueError as exc:
        raise SystemExit(f"ERROR: --frame-sample / --time-sample: {exc}") from None
    return shard, sampling


def list_input_files(args: argparse.Namespace) -> tuple[Path, list[str]]:
    """``(root, sorted relative paths)`` of ``--input`` under ``--input-root``; a bad input ends the run."""
    try:
        return list_inputs(args.input, root=args.input_root)
    except InputRootError as exc:
        raise SystemExit(f"ERROR: --input-root: {exc}") from None
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"ERROR: --input: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shard, sampling = check_args(args)
    if args.input_root is not None:
        # Checked here, once, so that a root that does not hold every input ends the run with one message
        # instead of one crash per spawned process; the workers list the same files again under the same root.
        list_input_files(args)
    if args.machine_rank == 0:
        # Once, before any process opens its journal, so that every rank sees the same files.
        try:
            prepare_output(args.output, resume=args.resume, overwrite=args.overwrite)
        except FileExistsError as exc:
            raise SystemExit(f"ERROR: {exc}: pass --resume to continue it, or --overwrite (or another --output) to "
                             "start over") from None
    # The last rank to finish may come long after the first (uneven folders, slow disks): the final barrier
    # must not time out the way a training step would, hence a day rather than detectron2's 30 minutes.
    launch(worker, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args, shard, sampling), timeout=timedelta(hours=24))
    return 0


def worker(args: argparse.Namespace, shard: tuple[int, int] | None, sampling: FrameSampling) -> None:
    """One process of the run: its share of the (shard of the) sorted input, its own journal; rank 0 merges."""
    rank, world = comm.get_rank(), comm.get_world_size()
    tag = f" [rank {rank}/{world}]" if world > 1 else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s")
    cfg = setup_cfg(args, comm.get_local_rank() if world > 1 else None)
    root, files = list_input_files(args)  # --input-root travels in args, so every rank and shard uses it
    logger.info("%d images under %s", len(files), root)
    if shard is not None:
        files = part_of(files, shard[0] - 1, shard[1])
        logger.info("shard %d/%d: %d images", shard[0], shard[1], len(files))
    mine = part_of(files, rank, world)
    try:
        class_names = parse_class_names(args.class_names) if args.class_names else None
        spec = InputSpec.from_cfg(cfg)
        # Parts the weights do not cover (heads of a backbone-only file) start from the same seed in every rank
        # and every re-run, so a distributed or resumed run never mixes two different random models.
        seed_all_rng(cfg.SEED if cfg.SEED >= 0 else 0)
        model, meta = load_detector(cfg)
        classes = detection_classes(cfg.MODEL.ROI_HEADS.NUM_CLASSES, class_names,
                                    [*cfg.DATASETS.TEST, *cfg.DATASETS.TRAIN], checkpoint_meta=meta)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"ERROR: --class-names / --config: {exc}") from None
    except WeightsDownloadError as exc:
        raise SystemExit(f"ERROR: --weights: {exc}") from None
    try:
        classifier = build_classifier(args, cfg, model, meta) if args.classify else None
    except (ValueError, FileNotFoundError, WeightsDownloadError) as exc:
        raise SystemExit(f"ERROR: --classifier-weights: {exc}") from None
    classifier = build_species_filter(args, classifier)

    typical = args.typical_threshold
    info = make_info(Path(args.weights).name, typical_detection_threshold=typical,
                     conservative_detection_threshold=min(0.1, typical),
                     classifier=classifier.name if classifier else None,
                     extra_detector_metadata={"config": Path(args.config_file).name,
                                              "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
                                              "max_size_test": cfg.INPUT.MAX_SIZE_TEST})
    if shard is not None:
        info["shard"] = f"{shard[0]}/{shard[1]}"  # for the merge's report; dropped from merged files
    try:
        writer = ResultsWriter(args.output, info=info, detection_categories=classes.categories,
                               classification_categories=classifier.categories if classifier else None,
                               checkpoint_every=args.checkpoint_every, resume=args.resume, overwrite=args.overwrite,
                               rank=rank, world_size=world)
    except FileExistsError as exc:
        raise SystemExit(f"ERROR: {exc}: pass --resume to continue it, or --overwrite (or another --output) to "
                         "start over") from None
    except (ResultsFileError, JournalError, ValueError) as exc:
        raise SystemExit(f"ERROR: --output {args.output}: {exc}. Use another --output, or move the file away and "
                         "start again without --resume.") from None
    if args.backend == "pytorch":
        detector = Detector(model, cfg.MODEL.DEVICE, bf16=args.bf16)
    else:
        detector = cpu_detector(args.backend, model, cfg)
    with writer:  # one process: finalized on leaving; several: each closes its journal
        summary = run_inference(
            detector, spec, root, mine, writer, classes,
            threshold=cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST, batch_size=args.batch_size, num_workers=args.num_workers,
            classifier=classifier,
            classify_threshold=typical if args.classify_threshold is None else args.classify_threshold,
            render_dir=args.render,
            render_threshold=typical if args.render_threshold is None else args.render_threshold,
            sampling=sampling, all_frames=args.all_frames,
            progress=not args.no_progress and rank == 0)
    logger.info("%d images in %.2f s (%.2f images/s): %d detections, %d classified, %d failures%s",
                summary.images, summary.seconds, summary.images_per_second, summary.detections, summary.classified,
                summary.failures, f" (e.g. {', '.join(summary.failed_files[:3])})" if summary.failures else "")
    if world > 1:
        comm.synchronize()  # every journal closed: rank 0 merges them
        if rank == 0:
            writer.finalize()
    if rank == 0:
        logger.info("results in %s", args.output)
        smooth_species_labels(args)
        if args.coco_results:
            try:
                results, _ = md_to_coco_results(writer.to_dict(complete=True), root, args.coco_gt)
            except (ValueError, FileNotFoundError) as exc:
                raise SystemExit(f"ERROR: --coco-gt: {exc}") from None
            write_json_atomic(args.coco_results, results)
            logger.info("%d COCO results written to %s", len(results), args.coco_results)
    shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
