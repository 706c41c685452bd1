#!/usr/bin/env python
r"""Train or evaluate a RoPE ViT detector on COCO-format data, on CPU, one GPU, or many (detectron2 ``launch``).

Examples:
  # COCO 2017 (detectron2's builtin datasets; set DETECTRON2_DATASETS to the folder holding coco/)
  python tools/train_net.py --config configs/ropevit_mrcnn.yaml --num-gpus 8

  # your own COCO-format data; the class count is read from the JSON
  python tools/train_net.py --config configs/ropevit_mrcnn.yaml \
      --train-json train.json --train-images imgs/ --val-json val.json --val-images imgs/ \
      SOLVER.MAX_ITER 20000 OUTPUT_DIR output/mine

  # evaluate a trained model
  python tools/train_net.py --config configs/ropevit_mrcnn.yaml --eval-only MODEL.WEIGHTS output/mine/model_final.pth

  # a LazyConfig recipe (ViTDet's format); trailing key=value pairs override it
  python tools/train_net.py --config lazy/ropevit_mrcnn.py --num-gpus 8 train.output_dir=output/lazy
  python tools/train_net.py --config lazy/ropevit_mrcnn.py --eval-only train.init_checkpoint=output/lazy/model_final.pth

  # 2 machines x 8 GPUs: run on each machine with its rank
  python tools/train_net.py --config ... --num-gpus 8 --num-machines 2 --machine-rank R --dist-url tcp://HOST:PORT

Without a GPU, MODEL.DEVICE falls back to cpu and ``--num-gpus N`` starts N CPU processes over gloo.
Trailing KEY VALUE pairs override yacs config keys (unknown keys are an error); a .py (LazyConfig) takes key=value.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import torch
from detectron2.config import CfgNode
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from omegaconf import OmegaConf

from ropevit_det.checkpoint import (
    KeyMappingError,
    RoPEViTCheckpointer,
    WeightsDownloadError,
    WeightsFileError,
    check_pixel_stats,
)
from ropevit_det.cli.common import config_arg, reject_flags_among_overrides
from ropevit_det.cli.train_data import (
    own_run_config,
    record_data_flags,
    register_cli_datasets,
)
from ropevit_det.config import check_config, load_config
from ropevit_det.engine import (
    Trainer,
    build_lazy_model,
    check_lazy_config,
    lazy_test,
    lazy_test_with_tta,
    lazy_train,
    lazy_tta_enabled,
    load_ema_weights,
)
from ropevit_det.engine.cpu_threads import share_cpu_cores
from ropevit_det.engine.devices import available_device
from ropevit_det.engine.distributed import shutdown_distributed
from ropevit_det.evaluation.report import write_eval_report

logger = logging.getLogger("ropevit_det.train_net")


def build_parser() -> argparse.ArgumentParser:
    parser = default_argument_parser(epilog=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", dest="config_file", metavar="FILE", help="config file (same as --config-file)")
    data = parser.add_argument_group(
        "COCO-format data",
        "register your own dataset: --train-json replaces DATASETS.TRAIN and --val-json replaces DATASETS.TEST. "
        "Training data without --val-json means no evaluation (DATASETS.TEST is emptied, never left at COCO's). "
        "The flags are recorded in OUTPUT_DIR/datasets.json, so --resume and --eval-only on that OUTPUT_DIR "
        "find the same data (and read the run's own OUTPUT_DIR/config.yaml) without repeating them",
    )
    data.add_argument("--train-json", help="COCO-format training annotations")
    data.add_argument("--train-images", help="folder the training file_name entries are relative to")
    data.add_argument("--val-json", help="COCO-format validation annotations (images without boxes are kept)")
    data.add_argument("--val-images", help="folder the validation file_name entries are relative to")
    cct = parser.add_argument_group(
        "COCO Camera Traps data",
        "CCT files (string ids, category 0 'empty', image-level labels, seq_id/location); they replace "
        "DATASETS.TRAIN / DATASETS.TEST as the COCO flags do; see configs/camera_trap/ and docs/CAMERA_TRAPS.md",
    )
    cct.add_argument("--cct-train-json", help="CCT training file (tools/split_cct.py splits one by location)")
    cct.add_argument("--cct-val-json", help="CCT validation file; its empty frames are always kept")
    cct.add_argument("--cct-images", help="image root the CCT file_name entries are resolved against")
    cct.add_argument(
        "--cct-class-mode",
        choices=("species", "megadetector"),
        default=None,
        help="the file's species, or MegaDetector's animal/person/vehicle (default: species)",
    )
    cct.add_argument("--cct-mapping", help="JSON {species: animal|person|vehicle|ignore} for megadetector mode")
    cct.add_argument("--cct-strip-prefix", help="prefix to strip from file_name before matching local files")
    cct.add_argument("--cct-add-prefix", default="", help="prefix to add to file names after stripping")
    cct.add_argument(
        "--cct-drop-empty",
        action="store_true",
        help="train without empty frames (by default they are kept as negatives)",
    )
    return parser


def is_lazy_config(config_file: str) -> bool:
    return config_file.endswith(".py")


def setup_lazy(args: argparse.Namespace) -> Any:
    """A LazyConfig (``configs/lazy/*.py``) with ``key=value`` overrides and the data flags applied."""
    from detectron2.config import LazyConfig

    cfg = LazyConfig.load(args.config_file)
    try:
        cfg = LazyConfig.apply_overrides(cfg, args.opts)
    except (KeyError, ValueError, AttributeError) as error:
        raise SystemExit(f"ERROR: a LazyConfig takes key=value overrides (e.g. train.max_iter=100): {error}") from None
    # The data flags are checked and registered by the same code as for yacs configs, on a stand-in node.
    data = CfgNode({"DATASETS": {"TRAIN": (), "TEST": ()}, "MODEL": {"ROI_HEADS": {"NUM_CLASSES": None}}})
    register_cli_datasets(args, data)
    if data.DATASETS.TRAIN:
        cfg.dataloader.train.dataset.names = data.DATASETS.TRAIN[0]
    if data.DATASETS.TEST:
        cfg.dataloader.test.dataset.names = data.DATASETS.TEST[0]
    if data.MODEL.ROI_HEADS.NUM_CLASSES is not None:
        cfg.model.roi_heads.num_classes = data.MODEL.ROI_HEADS.NUM_CLASSES
    try:
        check_lazy_config(cfg)
    except ValueError as error:  # a key combination that cannot work; the message says the fix
        raise SystemExit(f"ERROR: {error}") from None
    default_setup(cfg, args)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="ropevit_det", abbrev_name="ropevit")
    return cfg


def setup(args: argparse.Namespace) -> CfgNode:
    if not args.config_file:
        raise SystemExit("Pass a config file: --config configs/ropevit_mrcnn.yaml (a path, or a model-zoo name)")
    args.config_file = config_arg(args.config_file)  # default_setup reads it again to log and copy it
    reject_flags_among_overrides(args.opts)
    if is_lazy_config(args.config_file):
        return setup_lazy(args)
    try:
        cfg = load_config(args.config_file, args.opts)
        run_config = own_run_config(args, cfg.OUTPUT_DIR)
        if run_config is not None:
            cfg = load_config(run_config, args.opts)  # the run's own config, this command's overrides on top
        register_cli_datasets(args, cfg)
        check_config(cfg)  # again: the data flags may have changed the class count
    except ValueError as error:  # a key combination that cannot work; the message says the fix
        raise SystemExit(f"ERROR: {error}") from None
    if args.eval_only and not cfg.DATASETS.TEST:
        raise SystemExit(
            "ERROR: --eval-only has no test set to evaluate: pass --val-json and --val-images "
            "(or --cct-val-json), or set DATASETS.TEST"
        )
    cfg.MODEL.DEVICE = available_device(cfg.MODEL.DEVICE)
    cfg.freeze()
    default_setup(cfg, args)
    # default_setup configures detectron2's and fvcore's loggers; ours (weights loading) goes to the same places.
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="ropevit_det", abbrev_name="ropevit")
    if run_config is not None:
        logger.info(f"--resume / --eval-only: using the run's own config {run_config}, with this command's overrides")
    if not cfg.DATASETS.TEST:
        logger.warning("no test set (no --val-json): this run evaluates nothing, during or after training")
    if comm.is_main_process() and not args.eval_only:
        record_data_flags(args, cfg.OUTPUT_DIR)
    return cfg


def worker(args: argparse.Namespace):
    """One process of the run (detectron2's ``launch`` starts one per GPU, or per CPU process over gloo).

    Weights that cannot be fetched or do not fit end the run with their message (it names the fix), no traceback."""
    try:
        result = _main(args)
    except (WeightsDownloadError, KeyMappingError, WeightsFileError) as error:
        raise SystemExit(f"ERROR: {error}") from None
    shutdown_distributed()
    return result


def _main(args: argparse.Namespace):
    cfg = setup(args)
    if not isinstance(cfg, CfgNode):
        return _main_lazy(args, cfg)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        meta = RoPEViTCheckpointer(model, save_dir=cfg.OUTPUT_DIR, strict_heads=True).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        use_ema_weights(model, meta or {}, cfg.MODEL_EMA.ENABLED)
        check_pixel_stats(cfg, meta or {})
        results = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            results.update(Trainer.test_with_TTA(cfg, model))
        if comm.is_main_process():
            report(
                cfg.OUTPUT_DIR,
                results,
                args.config_file,
                cfg.dump(),
                cfg.MODEL.WEIGHTS,
                meta or {},
                list(cfg.DATASETS.TEST),
            )
            verify_results(cfg, results)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def report(
    output_dir: str, results: dict, config_file: str, config_text: str, weights: str, meta: dict, datasets: list[str]
) -> None:
    """The ViTDet-README-style table and the JSON record of an --eval-only run (``evaluation/report.py``)."""
    pretrain = (meta.get("dataset_info") or {}).get("init_weights") or (weights if "__author__" in meta else None)
    md, js = write_eval_report(
        output_dir,
        results=results,
        config_name=config_file,
        config_text=config_text,
        weights=weights,
        pretrain=pretrain,
        datasets=datasets,
    )
    logger.info(f"results table ({md}), full record in {js}:\n{md.read_text()}")


def use_ema_weights(model: torch.nn.Module, meta: dict, enabled: bool) -> None:
    """With the model EMA enabled, evaluate the checkpoint's EMA weights (when it has them)."""
    if not enabled:
        return
    if load_ema_weights(model, meta):
        logger.info("evaluating the EMA weights saved in the checkpoint (model_ema)")
    else:
        logger.warning("the model EMA is enabled but the checkpoint holds no EMA weights: evaluating its model weights")


def _main_lazy(args: argparse.Namespace, cfg: Any):
    """As detectron2's ``tools/lazyconfig_train_net.py``, on our pieces (``ropevit_det.engine.lazy``)."""
    if args.eval_only:
        model = build_lazy_model(cfg)
        meta = RoPEViTCheckpointer(model, save_dir=cfg.train.output_dir, strict_heads=True).load(
            cfg.train.init_checkpoint
        )
        use_ema_weights(model, meta or {}, bool(cfg.train.get("model_ema", {}).get("enabled", False)))
        results = lazy_test(cfg, model)
        if lazy_tta_enabled(cfg):
            results.update(lazy_test_with_tta(cfg, model))
        if comm.is_main_process():
            names = cfg.dataloader.test.dataset.names
            report(
                cfg.train.output_dir,
                results,
                args.config_file,
                OmegaConf.to_yaml(cfg),
                str(cfg.train.init_checkpoint),
                meta or {},
                [names] if isinstance(names, str) else list(names),
            )
        return results
    return lazy_train(cfg, resume=args.resume)


def main(argv: list[str] | None = None) -> int:
    """``ropevit-det train`` / ``python tools/train_net.py``: parse, then run ``worker`` in every process."""
    args = build_parser().parse_args(argv)
    if args.num_gpus > 1 and not torch.cuda.is_available():
        # Several processes on one CPU (gloo): each gets its share of the cores, not all of them.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logger.info(share_cpu_cores(args.num_gpus))
    launch(
        worker,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
