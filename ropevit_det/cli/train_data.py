"""``train``'s data flags: COCO-format or CCT files registered as datasets, and recorded beside the run.

``--train-json`` replaces ``DATASETS.TRAIN`` and ``--val-json`` ``DATASETS.TEST``; training data without a test set
evaluates nothing (never the config's COCO default). The flags are written to ``OUTPUT_DIR/datasets.json`` so that
``--resume`` and ``--eval-only`` on that folder read the run's own ``config.yaml`` and find the same data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog

from ropevit_det.camera_trap.data.cct import register_cct_dataset
from ropevit_det.cli.common import user_error_message
from ropevit_det.data import DatasetError, read_coco_categories, register_coco_dataset, validate_coco_dataset

logger = logging.getLogger("ropevit_det.train_net")

TRAIN_NAME, VAL_NAME = "ropevit_cli_train", "ropevit_cli_val"
# DatasetError's argument (the role of the set) as the flags that gave it; "" when the role is not known.
DATASET_FLAGS = {
    "training": "--train-json / --train-images",
    "evaluation": "--val-json / --val-images",
    "": "--train-json / --val-json",
}


# The data flags: recorded beside the run's config.yaml, so that --resume and --eval-only find the same data.
DATA_FLAGS = (
    "train_json",
    "train_images",
    "val_json",
    "val_images",
    "cct_train_json",
    "cct_val_json",
    "cct_images",
    "cct_class_mode",
    "cct_mapping",
    "cct_strip_prefix",
    "cct_add_prefix",
    "cct_drop_empty",
)
DATA_RECORD = "datasets.json"


def data_flags_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, flag) not in (None, False, "") for flag in DATA_FLAGS)


def record_data_flags(args: argparse.Namespace, output_dir: str) -> None:
    """Write the data flags (paths made absolute) to ``OUTPUT_DIR/datasets.json``, for --resume and --eval-only."""
    record = {}
    for flag in DATA_FLAGS:
        value = getattr(args, flag)
        if isinstance(value, str) and value and flag != "cct_class_mode" and not flag.endswith("prefix"):
            value = os.path.abspath(value)
        record[flag] = value
    os.makedirs(output_dir, exist_ok=True)
    Path(output_dir, DATA_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def restore_data_flags(args: argparse.Namespace, output_dir: str) -> bool:
    """Fill the data flags from a previous run's record (only when none were given); True if a record was read."""
    path = Path(output_dir, DATA_RECORD)
    if data_flags_given(args) or not path.is_file():
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SystemExit(
            f"ERROR: {path} cannot be read ({error}): pass the data flags (--train-json ...) again"
        ) from None
    for flag in DATA_FLAGS:
        if flag in record:
            setattr(args, flag, record[flag])
    logger.info(f"data flags of the run in {output_dir} read from {path}")
    return True


def register_cli_datasets(args: argparse.Namespace, cfg: CfgNode) -> None:
    """Check, then register ``--train-*`` / ``--val-*`` data, and point the config at it.

    Training data without validation data empties ``DATASETS.TEST``: the run evaluates nothing rather than
    falling back to the config's default test set (COCO) and failing at the first evaluation, hours in.
    A failed check ends the run before any model is built, with the check's message and no traceback.
    """
    try:
        _register_cli_datasets(args, cfg)
    except DatasetError as error:
        # The library names files and fields; the options that gave them are the command line's to name.
        raise SystemExit(user_error_message(error, DATASET_FLAGS)) from None
    if (args.train_json or args.cct_train_json) and not (args.val_json or args.cct_val_json):
        cfg.DATASETS.TEST = ()


def _register_cli_datasets(args: argparse.Namespace, cfg: CfgNode) -> None:
    for split in ("train", "val"):
        json_file, images = getattr(args, f"{split}_json"), getattr(args, f"{split}_images")
        if bool(json_file) != bool(images):
            raise SystemExit(f"--{split}-json and --{split}-images go together; got only one of them.")
    num_classes = None
    if args.train_json:
        validate_coco_dataset(args.train_json, args.train_images, for_training=True)
        register_coco_dataset(TRAIN_NAME, args.train_json, args.train_images)
        cfg.DATASETS.TRAIN = (TRAIN_NAME,)
        num_classes = len(read_coco_categories(args.train_json))
    if args.val_json:
        validate_coco_dataset(args.val_json, args.val_images, for_training=False)
        register_coco_dataset(VAL_NAME, args.val_json, args.val_images)
        cfg.DATASETS.TEST = (VAL_NAME,)
        val_classes = len(read_coco_categories(args.val_json))
        if num_classes is not None and val_classes != num_classes:
            raise SystemExit(
                f"--train-json has {num_classes} categories but --val-json has {val_classes}; "
                "both files must list the same categories."
            )
        num_classes = num_classes or val_classes
    if num_classes is not None:
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    register_cct_cli_datasets(args, cfg)


def register_cct_cli_datasets(args: argparse.Namespace, cfg: CfgNode) -> None:
    """Register ``--cct-*`` data (lazily: path matching is reported when the data loader first reads it)."""
    if not (args.cct_train_json or args.cct_val_json):
        return
    if not args.cct_images:
        raise SystemExit("--cct-train-json / --cct-val-json need --cct-images (the folder holding the frames).")
    if args.train_json or args.val_json:
        raise SystemExit("Use either the COCO flags (--train-json/--val-json) or the CCT flags, not both.")
    options = dict(
        class_mode=args.cct_class_mode or "species",
        mapping_file=args.cct_mapping,
        strip_prefix=args.cct_strip_prefix,
        add_prefix=args.cct_add_prefix,
    )
    if args.cct_train_json:
        register_cct_dataset(
            TRAIN_NAME, args.cct_train_json, args.cct_images, keep_empty_for_training=not args.cct_drop_empty, **options
        )
        cfg.DATASETS.TRAIN = (TRAIN_NAME,)
    if args.cct_val_json:
        register_cct_dataset(VAL_NAME, args.cct_val_json, args.cct_images, for_evaluation=True, **options)
        cfg.DATASETS.TEST = (VAL_NAME,)
    name = TRAIN_NAME if args.cct_train_json else VAL_NAME
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(MetadataCatalog.get(name).thing_classes)


def own_run_config(args: argparse.Namespace, output_dir: str) -> str | None:
    """With --resume or --eval-only on an OUTPUT_DIR this tool trained in: that run's ``config.yaml``.

    The run's own file holds every override it was started with (the schedule, the class count, the datasets);
    the data flags come back from its ``datasets.json``. Returns None for a fresh run, or an OUTPUT_DIR that
    holds no run of this tool (a record is what marks one: a stale config.yaml alone is not trusted).
    """
    if not (args.resume or args.eval_only):
        return None
    config_file = Path(output_dir, "config.yaml")
    if not (config_file.is_file() and Path(output_dir, DATA_RECORD).is_file()):
        return None
    restore_data_flags(args, output_dir)
    return str(config_file)
