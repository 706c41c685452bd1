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

--input is a folder, a list file, a glob, or one image or video. A .txt list holds one path per line, verbatim
('#' and spaces are part of names; a line starting with '"' is a JSON string, for names with line breaks); a
.json list is a JSON list of paths. Files that are neither images nor videos, and FIFOs, sockets and devices,
are skipped and counted; unreadable images and videos become 'failure' entries and the run goes on. Videos (.mp4, .avi,
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
import os

from ropevit_det.camera_trap.detection.glance import DEFAULT_ESCALATION_THRESHOLD
from ropevit_det.camera_trap.species.crops import DEFAULT_CONTEXT_MARGIN
from ropevit_det.cli.species_args import add_species_args
from ropevit_det.export.cpu_backend import CPU_BACKENDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(parser)  # --config, --weights, --threshold, --typical-threshold, --class-names, --device, ...
    parser.add_argument(
        "--input", required=True, help="folder (recursive), .txt or .json list of paths, glob, or one image or video"
    )
    parser.add_argument(
        "--input-root",
        default=None,
        metavar="DIR",
        help="the folder that the results' file paths are relative to; every input must lie under "
        "it. Give the first run's --input when re-running a merge's --unprocessed-list, so the "
        "entries keep their sub-folders (default: the --input folder, the common folder of a "
        "list's paths, a glob's folder before its first wildcard, or a file's folder)",
    )
    parser.add_argument("--output", required=True, help="MegaDetector-format results JSON")
    parser.add_argument("--batch-size", type=int, default=4, help="images per model call (default: %(default)s)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="image decoding processes (default: %(default)s; 0 decodes in the main process)",
    )
    parser.add_argument(
        "--glance",
        type=int,
        default=None,
        metavar="PX",
        help="glance, then look: run the detector first on a copy of each frame PX px on the long "
        "side (e.g. 448) and the full-resolution pass only where the glance finds a candidate "
        'at or above --glance-threshold; each entry records its "passes" (default: one '
        "full pass)",
    )
    parser.add_argument(
        "--glance-threshold",
        type=float,
        default=DEFAULT_ESCALATION_THRESHOLD,
        help="score of a glance candidate that escalates the frame to the full pass (default: "
        "%(default)s, chosen on the demo domain; check yours with eval-camtrap --glance-report)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=1000,
        help="fsync the journal every N images: a power cut loses at most N, a killed process "
        "none but the batch in flight (default: %(default)s)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip the images already in --output or in its journal(s) and carry on"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output and its journal")
    parser.add_argument(
        "--wait-for-lock",
        action="store_true",
        help="when another run is writing --output (its lock file <output>.lock), wait for it to "
        "finish instead of stopping",
    )
    parser.add_argument(
        "--break-lock",
        action="store_true",
        help="take over the lock of --output left by a run on another machine that is gone (a lock "
        "of this machine whose process is gone is taken over without it)",
    )
    parser.add_argument(
        "--render",
        metavar="DIR",
        default=None,
        help="write each image with its boxes and labels under DIR (same relative paths, JPEG)",
    )
    parser.add_argument(
        "--render-threshold",
        type=float,
        default=None,
        help="draw detections from this confidence (default: --typical-threshold)",
    )
    parser.add_argument(
        "--coco-results",
        metavar="FILE",
        default=None,
        help="also write COCO results JSON (absolute pixel boxes), from the complete results",
    )
    parser.add_argument(
        "--coco-gt",
        metavar="FILE",
        default=None,
        help="COCO/CCT ground truth whose image and category ids --coco-results should use "
        "(default: image_id = relative file path, category_id = MD category id)",
    )
    add_classify_args(parser)
    video = parser.add_argument_group("videos (.mp4, .avi, .mov, .mkv)")
    video.add_argument(
        "--frame-sample", type=int, default=None, metavar="N", help="detect every N-th frame (default: every frame)"
    )
    video.add_argument("--time-sample", type=float, default=None, metavar="S", help="detect one frame every S seconds")
    video.add_argument(
        "--all-frames",
        action="store_true",
        help="keep every sampled frame's detections (default: the most confident one per category, "
        "as MegaDetector's frame_results_to_video_results does)",
    )
    small = parser.add_argument_group("small and distant animals (docs/SMALL_OBJECTS.md)")
    small.add_argument(
        "--tiles",
        action="store_true",
        help="sliced inference with SAHI: run the detector on overlapping tiles of each image and "
        "merge the boxes into one entry in full-image coordinates (needs the 'tiles' extra)",
    )
    small.add_argument(
        "--tile-size",
        type=_tile_size,
        default=1024,
        metavar="PX",
        help="tile side in image pixels; each tile is resized to the model's test size (default: %(default)s)",
    )
    small.add_argument(
        "--tile-overlap",
        type=_tile_overlap,
        default=0.2,
        metavar="FRACTION",
        help="fraction of a tile shared with its neighbour, in [0, 1) (default: %(default)s)",
    )
    small.add_argument(
        "--tiles-full-frame",
        dest="tiles_with_full_frame",
        action="store_true",
        help="with --tiles, also run the whole frame, so large animals no tile holds whole are found",
    )
    small.add_argument(
        "--tile-merge",
        choices=("nms", "greedy_nmm"),
        default="nms",
        help="boxes of one object seen by several tiles: keep the most confident (nms) or merge them "
        "into their union (greedy_nmm, SAHI's default; low-score boxes widen it) "
        "(default: %(default)s)",
    )
    scale = parser.add_argument_group("several processes and machines (detectron2 launch, as for training)")
    scale.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        help="processes per machine: one per GPU, or CPU processes over gloo (default: %(default)s)",
    )
    scale.add_argument("--num-machines", type=int, default=1, help="(default: %(default)s)")
    scale.add_argument("--machine-rank", type=int, default=0, help="this machine's rank (default: %(default)s)")
    scale.add_argument(
        "--dist-url",
        default="auto",
        help="rendezvous of the processes, e.g. tcp://HOST0:29500 (default: auto, a free local port; one machine only)",
    )
    scale.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="process only the K-th of N deterministic parts of the input (K = 1..N), e.g. a job-array "
        "task; give each shard its own --output and merge them with tools/merge_results.py",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """The detector and how it runs: the flags ``infer`` and ``serve`` share."""
    parser.add_argument(
        "--config",
        "--config-file",
        dest="config_file",
        required=True,
        metavar="FILE_OR_NAME",
        help="detector config (e.g. configs/camera_trap/ropevit_faster_rcnn_cct.yaml)",
    )
    parser.add_argument(
        "--weights",
        required=True,
        metavar="FILE_OR_NAME",
        help="detector weights: a detectron2 checkpoint (e.g. model_final.pth); birder files and "
        "birder://NAME load too but carry no trained detection heads",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="detections below this confidence are not written (default: the config's "
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST, 0.05 unless set; MegaDetector writes from 0.005, "
        "which gives fuller precision/recall curves and larger files)",
    )
    parser.add_argument(
        "--typical-threshold",
        type=float,
        default=0.2,
        help="written as detector_metadata.typical_detection_threshold (Timelapse's default slider); "
        "also the default of --render-threshold and --classify-threshold (default: %(default)s)",
    )
    parser.add_argument(
        "--class-names",
        default=None,
        help="detector class names in model order: 'animal,person,vehicle', or a JSON list, or a "
        "COCO/CCT file (its categories sorted by id)",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda or cuda:N (default: MODEL.DEVICE, or cpu when CUDA is not available)"
    )
    parser.add_argument("--bf16", action="store_true", help="run under bf16 autocast (GPU, or CPUs with AVX-512 BF16)")
    parser.add_argument(
        "--backend",
        choices=("pytorch", *CPU_BACKENDS),
        default="pytorch",
        help="CPUs without bf16: int8 (the ViT's linear layers quantized to int8), or the "
        "model exported at start-up and run by onnxruntime / openvino (default: %(default)s)",
    )


def add_classify_args(parser: argparse.ArgumentParser) -> None:
    """``--classify`` and the species options, as one group: the flags ``infer`` and ``serve`` share."""
    species = parser.add_argument_group("species labels (--classify)")
    species.add_argument(
        "--classify",
        action="store_true",
        help="name the species of each detection with the RoPE ViT classifier (MD 'classifications')",
    )
    species.add_argument(
        "--classifier-weights",
        default=None,
        metavar="FILE_OR_NAME",
        help="birder file, birder://NAME, or detectron2 file with the classifier (default: the "
        "detector's own ViT when MODEL.ROPE_VIT.NUM_CLASSES > 0, else --weights)",
    )
    species.add_argument(
        "--classify-threshold",
        type=float,
        default=None,
        help="classify detections from this confidence (default: --typical-threshold)",
    )
    species.add_argument("--top-k", type=int, default=5, help="classes written per detection (default: %(default)s)")
    species.add_argument(
        "--crop-margin",
        type=float,
        default=DEFAULT_CONTEXT_MARGIN,
        help="context around each box, fraction of its longer side (default: %(default)s)",
    )
    add_species_args(species)  # --taxa, --species-list, --rollup, --smooth-sequences (cli/species_args.py)


def _tile_size(text: str) -> int:
    value = int(text)
    if value < 32:
        raise argparse.ArgumentTypeError(f"{value} px is too small; use at least 32 (e.g. 1024)")
    return value


def _tile_overlap(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be a fraction in [0, 1) (e.g. 0.2)")
    return value
