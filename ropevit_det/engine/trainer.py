"""``Trainer``: detectron2's ``DefaultTrainer`` with the ViTDet recipe and CPU-friendly distribution.

What differs from ``DefaultTrainer`` and why:
* optimizer: AdamW with layer-wise lr decay over ``encoder.block.N`` (``optimizer.py``);
* train loader: large-scale jitter when ``INPUT.LSJ.ENABLED``;
* evaluator: COCO, with faster-coco-eval when detectron2's C++ COCOeval is missing; LVIS for LVIS data;
* ``TEST.AUG.ENABLED``: also evaluates with detectron2's ``GeneralizedRCNNWithTTA``, as its ``train_net.py``;
* ``MODEL_EMA.ENABLED``: keeps an EMA of the weights (``ema.py``), saved as ``model_ema`` and evaluated;
* checkpointer: understands raw birder files and ``birder://`` names (``ropevit_det.checkpoint``);
* ``__init__`` is rewritten because ``DefaultTrainer`` hard-codes ``create_ddp_model(device_ids=[rank])``,
  which DDP rejects for CPU modules (our gloo multi-process runs), and picks ``AMPTrainer``, which needs CUDA.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections import OrderedDict

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetMapper, MetadataCatalog, build_detection_train_loader
from detectron2.data import transforms as T
from detectron2.engine import DefaultTrainer, TrainerBase, hooks
from detectron2.modeling import GeneralizedRCNNWithTTA
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import RoPEViTCheckpointer, check_pixel_stats
from ..evaluation.fast_coco import build_coco_evaluator
from ..evaluation.lvis import LVISEvaluatorNumpy2
from .distributed import unwrap_model, wrap_for_distributed
from .ema import EMA_CHECKPOINT_KEY, ModelEMA
from .mixed_precision import build_step_trainer
from .optimizer import build_optimizer


def lsj_augmentations(cfg: CfgNode) -> list[T.Augmentation]:
    """ViTDet's large-scale jitter, in its order (``projects/ViTDet/configs/common/coco_loader_lsj.py``):
    horizontal flip, random rescale 0.1-2.0, fixed-size crop without padding. The model pads every batch to
    the square (``MODEL.SFP.SQUARE_PAD``), so the crop need not."""
    size = cfg.INPUT.LSJ.IMAGE_SIZE
    return [
        T.RandomFlip(horizontal=True),
        T.ResizeScale(
            min_scale=cfg.INPUT.LSJ.MIN_SCALE, max_scale=cfg.INPUT.LSJ.MAX_SCALE, target_height=size, target_width=size
        ),
        T.FixedSizeCrop(crop_size=(size, size), pad=False),
    ]


TTA_OUTPUT_SUBDIR = "inference_TTA"  # beside detectron2's "inference" folder, as its train_net.py


def tta_model(cfg: CfgNode, model: torch.nn.Module) -> GeneralizedRCNNWithTTA:
    """detectron2's TTA wrapper around the bare model; ``cfg`` needs only the keys it reads (``TEST.AUG.*``,
    ``MODEL.MASK_ON`` ..., see ``lazy.lazy_tta_cfg``). Shared by the yacs and the Lazy paths."""
    logging.getLogger(__name__).info("Running inference with test-time augmentation ...")
    return GeneralizedRCNNWithTTA(cfg, unwrap_model(model))


def tta_results(results: dict) -> OrderedDict:
    """TTA results keyed ``*_TTA`` (``bbox_TTA``, or ``<dataset>_TTA``): reports list them beside the plain ones."""
    return OrderedDict((name + "_TTA", value) for name, value in results.items())


class DatasetInfo:
    """Checkpointable that stores the training classes in every checkpoint (``checkpoint["dataset_info"]``),
    so that inference can name them (MegaDetector ids for animal/person/vehicle) without being told."""

    def __init__(
        self, cfg: CfgNode | None = None, *, datasets: list[str] | None = None, init_weights: str = ""
    ) -> None:
        """From a yacs ``cfg`` (``DATASETS.TRAIN``, ``MODEL.WEIGHTS``) or, for LazyConfigs, ``datasets`` by name
        and ``init_weights``. The initial weights are kept so that evaluation reports can name the pre-training."""
        self.datasets = list(cfg.DATASETS.TRAIN) if cfg is not None else list(datasets or [])
        self.init_weights = cfg.MODEL.WEIGHTS if cfg is not None else init_weights
        self.thing_classes = (
            list(MetadataCatalog.get(self.datasets[0]).get("thing_classes", [])) if self.datasets else []
        )
        # The count the heads were built for (inference refuses a config of another count, naming these classes).
        self.num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES if cfg is not None else len(self.thing_classes)

    def state_dict(self) -> dict:
        return {
            "datasets": self.datasets,
            "thing_classes": self.thing_classes,
            "num_classes": self.num_classes,
            "init_weights": self.init_weights,
        }

    def load_state_dict(self, state: dict) -> None:
        """On resume: the current run's datasets are authoritative; the initial weights stay the first run's."""
        self.init_weights = state.get("init_weights", self.init_weights)


class Trainer(DefaultTrainer):
    def __init__(self, cfg: CfgNode) -> None:
        TrainerBase.__init__(self)
        logger = logging.getLogger("detectron2")
        if not logger.isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = wrap_for_distributed(model)
        self._trainer = build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = RoPEViTCheckpointer(
            model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self), dataset_info=DatasetInfo(cfg)
        )
        self.ema = ModelEMA(model, cfg.MODEL_EMA.DECAY) if cfg.MODEL_EMA.ENABLED else None
        if self.ema is not None:
            self.checkpointer.add_checkpointable(EMA_CHECKPOINT_KEY, self.ema.averaged)
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def resume_or_load(self, resume: bool = True) -> None:
        """As ``DefaultTrainer``, plus a warning when MODEL.PIXEL_MEAN/STD differ from the weights' statistics."""
        meta = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            self.start_iter = self.iter + 1  # the checkpoint stores the iteration that just finished
        check_pixel_stats(self.cfg, meta or {})

    def build_hooks(self) -> list:
        """``DefaultTrainer``'s hooks (no PreciseBN: the model has no BatchNorm), with the EMA update before
        checkpointing and evaluation, evaluation of the EMA weights when enabled, and TTA evaluation at the end."""
        cfg = self.cfg
        ret = [hooks.IterationTimer(), hooks.LRScheduler(), self.ema]
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))

        def test_and_save_results():
            self._last_eval_results = self.test(cfg, self.ema.module if self.ema is not None else self.model)
            return self._last_eval_results

        ret.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
        if cfg.TEST.AUG.ENABLED:
            ret.append(hooks.EvalHook(0, lambda: self.test_with_TTA(cfg, self.ema.module if self.ema else self.model)))
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=20))
        return ret

    @classmethod
    def test_with_TTA(cls, cfg: CfgNode, model: torch.nn.Module) -> dict:  # noqa: N802 (detectron2's name)
        """As detectron2's ``tools/train_net.py``: ``GeneralizedRCNNWithTTA`` (``TEST.AUG``), results keyed
        ``*_TTA``."""
        evaluators = [
            cls.build_evaluator(cfg, name, output_folder=os.path.join(cfg.OUTPUT_DIR, TTA_OUTPUT_SUBDIR))
            for name in cfg.DATASETS.TEST
        ]
        return tta_results(cls.test(cfg, tta_model(cfg, model), evaluators))

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        if not cfg.INPUT.LSJ.ENABLED:
            return build_detection_train_loader(cfg)
        mapper = DatasetMapper(
            cfg, is_train=True, augmentations=lsj_augmentations(cfg), recompute_boxes=cfg.MODEL.MASK_ON
        )
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str | None = None):
        """detectron2's ``LVISEvaluator`` (NumPy-2-safe) for LVIS data (``evaluator_type`` "lvis"), else COCO's."""
        output_folder = output_folder or f"{cfg.OUTPUT_DIR}/inference"
        if MetadataCatalog.get(dataset_name).get("evaluator_type") == "lvis":
            return LVISEvaluatorNumpy2(
                dataset_name, output_dir=output_folder, max_dets_per_image=cfg.TEST.DETECTIONS_PER_IMAGE
            )
        return build_coco_evaluator(dataset_name, output_folder)
