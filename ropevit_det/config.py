"""``add_ropevit_config(cfg)``: the config keys this project adds to detectron2's defaults.

Every key has a default and a one-line comment. yacs rejects unknown keys, so a typo in a YAML
file or on the command line fails loudly instead of being ignored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import yaml
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from .errors import UserInputError
from .model_zoo.resolve import ZOO_SCHEME, get_config_file


class RoPEViTCfgNode(CN):
    """detectron2's ``CfgNode``, reading YAML files in two ways of its own.

    - ``_BASE_: ropevit://NAME`` names a config of the installed model zoo, so a user's config in any folder
      (a pip install has no ``configs/`` beside it) can inherit a packaged one.
    - YAML is always read with ``yaml.safe_load``. detectron2 falls back to ``yaml.unsafe_load``, which builds
      arbitrary Python objects (and so runs code) from tags in a file someone handed over.
    """

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> dict:
        # detectron2 joins a relative _BASE_ to the including file's folder, so a zoo name arrives as
        # "<folder>/ropevit://NAME": what follows the scheme is the name.
        if ZOO_SCHEME in filename:
            filename = get_config_file(filename.split(ZOO_SCHEME, 1)[1])
        try:
            return super().load_yaml_with_base(filename, allow_unsafe=False)
        except yaml.constructor.ConstructorError as error:
            raise UserInputError(
                f"config {filename} holds a Python object tag ({error.problem}): configs are read as plain YAML "
                "and nothing in them is executed; remove the tag"
            ) from None
        except yaml.YAMLError as error:
            raise UserInputError(f"config {filename} is not valid YAML: {error}") from None
        except OSError as error:  # a _BASE_ that names no file
            raise UserInputError(
                f"config {filename} cannot be read ({error.strerror}): check the path, and the "
                "_BASE_ entries of the files that include it"
            ) from None


def add_ropevit_config(cfg: CN) -> None:
    """Add ``MODEL.ROPE_VIT``, ``MODEL.SFP`` and the training-recipe keys to ``cfg`` in place."""
    cfg.MODEL.ROPE_VIT = CN()
    v = cfg.MODEL.ROPE_VIT
    v.PRETRAIN_IMG_SIZE = 336  # resolution of the pretrained weights; the position embedding covers it / PATCH_SIZE
    v.PATCH_SIZE = 14  # patch (and conv_proj stride) size
    v.EMBED_DIM = 768  # token width (ViT-B)
    v.DEPTH = 12  # number of transformer blocks
    v.NUM_HEADS = 12  # attention heads
    v.MLP_DIM = 3072  # hidden width of each block's MLP
    v.NUM_REG_TOKENS = 4  # register tokens, placed before the class token as in birder
    v.ROPE_TEMPERATURE = 100.0  # RoPE frequency base (birder: 100)
    v.ROPE_POSITIONS = "interpolate"  # "interpolate": map RoPE onto the pretraining grid; "extrapolate": raw positions
    v.DROP_PATH_RATE = 0.0  # stochastic depth at the last block (ViTDet-B fine-tuning: 0.1)
    v.WINDOW_SIZE = 0  # windowed attention size in patches; 0 keeps every block global, as pretrained
    v.GLOBAL_BLOCKS = []  # blocks that stay global when WINDOW_SIZE > 0 (ViTDet-B: [2, 5, 8, 11])
    v.USE_ACT_CHECKPOINT = False  # recompute block activations in backward to save memory
    v.FREEZE_PATCH_EMBED = False  # freeze conv_proj, position embedding, class and register tokens
    v.FREEZE_BLOCKS = 0  # freeze the first k transformer blocks
    v.NUM_CLASSES = 0  # classification head size (0: none; the iNat21 head has 10000, for species labels)

    cfg.MODEL.SFP = CN()
    cfg.MODEL.SFP.OUT_CHANNELS = 256  # channels of every pyramid level p2..p6
    cfg.MODEL.SFP.NORM = "LN"  # norm in the pyramid's convs ("LN" as in ViTDet, "" for none)
    cfg.MODEL.SFP.SQUARE_PAD = 0  # pad every batch to this square size (LSJ: 1024); 0 pads to a multiple of 32

    # Test-time cap on the (proposal, class) pairs that enter NMS per image (0 = none, detectron2's behaviour).
    # Needs ROI_HEADS.NAME "CandidateCappedROIHeads" (ropevit_det/modeling/roi_heads.py), as in our configs.
    cfg.MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST = 0

    # Training recipe (ViTDet for ViT-B): AdamW, layer-wise lr decay, mixed precision, large-scale jitter.
    cfg.SOLVER.OPTIMIZER = "ADAMW"  # "ADAMW" (ViTDet) or "SGD"
    cfg.SOLVER.BETAS = (0.9, 0.999)  # AdamW betas
    cfg.SOLVER.LAYER_DECAY = 0.7  # lr multiplier per block below the top (ViTDet-B: 0.7); 1.0 disables it
    cfg.SOLVER.AMP.PRECISION = "bfloat16"  # autocast dtype when SOLVER.AMP.ENABLED: "float16" (CUDA) or "bfloat16"
    cfg.INPUT.LSJ = CN()
    cfg.INPUT.LSJ.ENABLED = (
        False  # large-scale jitter (flip, ResizeScale, FixedSizeCrop(pad=False)) instead of ResizeShortestEdge
    )
    cfg.INPUT.LSJ.IMAGE_SIZE = 1024  # crop size; pair with MODEL.SFP.SQUARE_PAD of the same value
    cfg.INPUT.LSJ.MIN_SCALE = 0.1  # ResizeScale range, relative to IMAGE_SIZE
    cfg.INPUT.LSJ.MAX_SCALE = 2.0

    # Exponential moving average of the weights (EVA-02's detection option; not in ViTDet's recipe).
    cfg.MODEL_EMA = CN()
    cfg.MODEL_EMA.ENABLED = False  # keep an EMA, save it in checkpoints (model_ema), and evaluate it
    cfg.MODEL_EMA.DECAY = 0.9999  # weight of the running average per step


def load_config(config_file: str | os.PathLike, opts: Sequence[str] = ()) -> CN:
    """detectron2's defaults plus ours, then ``config_file``, then ``KEY VALUE`` overrides (unknown keys fail).

    ``config_file`` is a path or ``ropevit://NAME`` (a config of the installed model zoo).

    Raises:
        UserInputError: an unknown key, an odd number of overrides, a value of the wrong type, a Python tag in
            the YAML, or a key combination that cannot work; the message names the key and the fix.
    """
    config_file = os.fspath(config_file)
    if config_file.startswith(ZOO_SCHEME):
        config_file = get_config_file(config_file[len(ZOO_SCHEME) :])
    opts = list(opts)
    if len(opts) % 2:
        raise UserInputError(
            f"config overrides come in KEY VALUE pairs, but {len(opts)} items were given; the last, "
            f"{opts[-1]!r}, has no value (e.g. SOLVER.MAX_ITER 1000)",
            argument="opts",
        )
    cfg = get_cfg()
    add_ropevit_config(cfg)
    cfg = RoPEViTCfgNode(cfg)  # the whole tree, so that merging compares nodes of one type
    try:
        cfg.merge_from_file(config_file)
    except KeyError as error:  # yacs: "Non-existent config key: X"
        raise UserInputError(
            f"config {config_file}: {error.args[0]}. Check its spelling: detectron2's keys are "
            "in detectron2/config/defaults.py, this project's in ropevit_det/config.py"
        ) from None
    try:
        cfg.merge_from_list(opts)
    except KeyError as error:
        raise UserInputError(
            f"override: {error.args[0]}. Check its spelling: detectron2's keys are in "
            "detectron2/config/defaults.py, this project's in ropevit_det/config.py",
            argument="opts",
        ) from None
    except (ValueError, TypeError, AssertionError) as error:  # yacs: a value of another type than the default's
        raise UserInputError(f"override: {error}", argument="opts") from None
    check_config(cfg)
    return cfg


CAPPED_ROI_HEADS = ("CandidateCappedROIHeads",)


def check_tta_fits_square(
    enabled: bool,
    max_size: int,
    square_pad: int,
    *,
    max_key: str = "TEST.AUG.MAX_SIZE",
    square_key: str = "MODEL.SFP.SQUARE_PAD",
    assign: str = " ",
) -> None:
    """TTA resizes images up to ``max_size``; the model pads every batch to ``square_pad`` (0: off), which must
    hold them. The key names are the config system's (the Lazy path passes ``test.aug.max_size``, ``=``)."""
    if enabled and 0 < square_pad < max_size:
        raise UserInputError(
            f"{max_key} {max_size} exceeds {square_key} {square_pad}, the square every batch is "
            f"padded to: set {max_key}{assign}{square_pad} (or less)"
        )


def check_config(cfg: CN) -> None:
    """Combinations that detectron2 would silently ignore, or fail on later: fail with the fix instead."""
    check_tta_fits_square(cfg.TEST.AUG.ENABLED, cfg.TEST.AUG.MAX_SIZE, cfg.MODEL.SFP.SQUARE_PAD)
    box, num_classes = cfg.MODEL.ROI_BOX_HEAD, cfg.MODEL.ROI_HEADS.NUM_CLASSES
    if box.USE_FED_LOSS and box.FED_LOSS_NUM_CLASSES > num_classes:
        raise UserInputError(
            f"MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES {box.FED_LOSS_NUM_CLASSES} exceeds MODEL.ROI_HEADS.NUM_CLASSES "
            f"{num_classes}: the federated loss samples that many classes per step; set it to {num_classes} or less"
        )
    cap, heads = cfg.MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST, cfg.MODEL.ROI_HEADS.NAME
    if cap < 0:
        raise UserInputError(f"MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST must be >= 0 (0 = no cap), got {cap}")
    if cap > 0 and heads not in CAPPED_ROI_HEADS:
        raise UserInputError(
            f"MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST={cap} has no effect with MODEL.ROI_HEADS.NAME {heads!r}: "
            f"use {CAPPED_ROI_HEADS[0]!r} (a StandardROIHeads with the cap), or set the cap to 0 "
            "(cascade heads run their own post-processing and have no cap)"
        )
