"""birder ``rope_vit_reg4_b14`` state dict -> detectron2 checkpoint: one explicit key table, strictly checked.

``RoPEViT`` keeps birder's parameter names, so the table is a fixed list of birder names, each mapped to the
same name under ``backbone.net.vit.`` (where the ViT sits inside ``GeneralizedRCNN``). The table is built
from the architecture (its depth), never from the checkpoint's keys by pattern, so a key the table does not
know is an error rather than something carried along, and a key the table expects but the file lacks is an
error too. ``matching_heuristics`` is always off: nothing is matched by suffix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import UserInputError
from .birder_format import BirderCheckpoint

__all__ = [
    "VIT_PREFIX",
    "CHECKPOINT_AUTHOR",
    "KeyMappingError",
    "birder_to_d2_key_table",
    "infer_depth",
    "convert_birder_state",
    "check_against_model",
    "birder_to_d2_checkpoint",
]

VIT_PREFIX = "backbone.net.vit."
CHECKPOINT_AUTHOR = "ropevit_det"

# birder's RoPE_ViT parameter names (rope_vit_reg4_b14: pre-norm blocks, torchvision-style MLP at 0 and 3).
_STEM_KEYS = ("conv_proj.weight", "conv_proj.bias", "class_token", "reg_tokens", "pos_embedding")
_BLOCK_KEYS = (
    "norm1.weight",
    "norm1.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.0.weight",
    "mlp.0.bias",
    "mlp.3.weight",
    "mlp.3.bias",
)
_FINAL_NORM_KEYS = ("norm.weight", "norm.bias")
_CLASSIFIER_KEYS = ("classifier.weight", "classifier.bias")
_BLOCK_INDEX = re.compile(r"^encoder\.block\.(\d+)\.")
# Error messages list this many names, then a count: a depth mismatch on ViT-B would otherwise list ~150 keys.
_MAX_LISTED = 24


class KeyMappingError(UserInputError):
    """The checkpoint's keys, or its tensor shapes, do not match the key table or the target model.

    ``argument``: the conversion argument whose value caused it (e.g. ``"keep_classifier"``), or ``None``; a
    command line that sets the argument through a flag names the flag with it (``ropevit-det convert``)."""

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message, argument=argument)


def birder_to_d2_key_table(depth: int, keep_classifier: bool = False, prefix: str = VIT_PREFIX) -> dict[str, str]:
    """The full birder key -> detectron2 key table for a ViT of ``depth`` blocks.

    Args:
        depth: number of encoder blocks (12 for B/14).
        keep_classifier: include ``classifier.{weight,bias}`` (the camera-trap species path needs it).
        prefix: where the ViT sits in the target model (``backbone.net.vit.`` in ``GeneralizedRCNN``;
            ``""`` for a bare ``RoPEViT``).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    birder_keys = [
        *_STEM_KEYS,
        *(f"encoder.block.{i}.{name}" for i in range(depth) for name in _BLOCK_KEYS),
        *_FINAL_NORM_KEYS,
        *(_CLASSIFIER_KEYS if keep_classifier else ()),
    ]
    table = {key: prefix + key for key in birder_keys}
    # One-to-one both ways: no source key listed twice, no two sources landing on one target.
    if len(table) != len(birder_keys) or len(set(table.values())) != len(table):
        raise RuntimeError("internal error: the birder -> detectron2 key table is not one-to-one")
    return table


def infer_depth(state: Mapping[str, Any]) -> int:
    """Number of encoder blocks: one more than the highest ``encoder.block.N`` index in the state dict."""
    indices = [int(m.group(1)) for key in state if (m := _BLOCK_INDEX.match(key))]
    if not indices:
        raise KeyMappingError(
            "the checkpoint has no 'encoder.block.N.*' tensors, so it is not a birder RoPE ViT; "
            f"its first keys are {sorted(state)[:8]}"
        )
    return max(indices) + 1


def convert_birder_state(
    state: Mapping[str, torch.Tensor], keep_classifier: bool = False, prefix: str = VIT_PREFIX
) -> dict[str, torch.Tensor]:
    """Rename a birder state dict through the key table; every key must be used exactly once.

    Args:
        state: birder's ``net.state_dict()``.
        keep_classifier: map ``classifier.*`` too; otherwise it is dropped (the only keys ever dropped).
        prefix: see :func:`birder_to_d2_key_table`.

    Raises:
        KeyMappingError: a source key is left over, or a table key is missing from the source.
    """
    table = birder_to_d2_key_table(infer_depth(state), keep_classifier, prefix)
    dropped = set() if keep_classifier else {k for k in state if k in _CLASSIFIER_KEYS}
    leftover = sorted(set(state) - set(table) - dropped)
    missing = sorted(set(table) - set(state))
    if leftover or missing:
        problems = []
        if leftover:
            problems.append(f"source keys not in the key table (left over): {_listed(leftover)}")
        if missing:
            problems.append(f"table keys the checkpoint lacks (missing): {_listed(missing)}")
        hint, argument = "", None
        if keep_classifier and any(k in _CLASSIFIER_KEYS for k in missing):
            hint, argument = " The checkpoint has no classifier: convert it without keep_classifier.", "keep_classifier"
        raise KeyMappingError(
            "the checkpoint does not match birder's rope_vit_reg4 layout; " + "; ".join(problems) + "." + hint,
            argument,
        )
    return {table[key]: state[key] for key in table}


def check_against_model(
    d2_state: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
    prefix: str = VIT_PREFIX,
    resolution: tuple[int, int] | None = None,
) -> None:
    """Strict check of converted weights against the model they are about to load into.

    Every checkpoint tensor must exist in the model with the same shape, and every model tensor under
    ``prefix`` (the ViT) must be in the checkpoint. Tensors outside ``prefix`` (pyramid, heads) may be absent.

    Args:
        d2_state: converted state dict (detectron2 names).
        model_state: ``model.state_dict()`` of the target.
        prefix: the ViT's prefix in the target.
        resolution: the checkpoint's training resolution, used only to word the position-embedding hint.

    Raises:
        KeyMappingError: naming each unexpected key, missing ViT key, and mismatched tensor with both shapes.
    """
    unexpected = sorted(k for k in d2_state if k not in model_state)
    missing = sorted(k for k in model_state if k.startswith(prefix) and k not in d2_state)
    mismatched = [
        (k, tuple(v.shape), tuple(model_state[k].shape))
        for k, v in d2_state.items()
        if k in model_state and tuple(v.shape) != tuple(model_state[k].shape)
    ]
    if not (unexpected or missing or mismatched):
        return
    problems = [f"{k}: checkpoint {ck} vs model {md}" for k, ck, md in mismatched[:_MAX_LISTED]]
    if len(mismatched) > _MAX_LISTED:
        problems.append(f"... and {len(mismatched) - _MAX_LISTED} more tensors of the wrong shape")
    if unexpected:
        problems.append(f"in the checkpoint but not in the model: {_listed(unexpected)}")
    if missing:
        problems.append(f"in the model's ViT but not in the checkpoint: {_listed(missing)}")
    hints = _mismatch_hints(unexpected, missing, mismatched, prefix, resolution)
    raise KeyMappingError(
        "the weights do not fit the model:\n  " + "\n  ".join(problems) + ("\n" + "\n".join(hints) if hints else "")
    )


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return f"[{shown}]" if len(keys) <= _MAX_LISTED else f"[{shown}, ... and {len(keys) - _MAX_LISTED} more]"


def _mismatch_hints(
    unexpected: list[str],
    missing: list[str],
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    prefix: str,
    resolution: tuple[int, int] | None,
) -> list[str]:
    hints = []
    names = {k[len(prefix) :] if k.startswith(prefix) else k: (ck, md) for k, ck, md in mismatched}
    if "conv_proj.bias" in names:
        ck, md = names["conv_proj.bias"]
        hints.append(
            f"Width differs (checkpoint embed dim {ck[0]}, model {md[0]}): a different ViT size, e.g. ViT-S "
            "weights into a ViT-B config. Match MODEL.ROPE_VIT.EMBED_DIM/NUM_HEADS/MLP_DIM to the weights."
        )
    elif "pos_embedding" in names:
        where = f" (the weights were trained at {resolution[0]}x{resolution[1]})" if resolution else ""
        hints.append(
            "The position embedding covers a different pretraining grid" + where + ": set "
            "MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE to the weights' resolution (it is resized on the fly for other inputs)."
        )
    if any(".classifier." in k or k.startswith("classifier.") for k in unexpected):
        hints.append(
            "The file carries a classifier (converted with keep_classifier) but the model has none: set "
            "MODEL.ROPE_VIT.NUM_CLASSES to its number of classes, or convert without keep_classifier."
        )
    if any(".classifier." in k or k.startswith("classifier.") for k in missing):
        hints.append(
            "The model has a classifier (MODEL.ROPE_VIT.NUM_CLASSES > 0) but the file has none: use a file "
            "converted with keep_classifier, a raw birder checkpoint, or set NUM_CLASSES to 0."
        )
    if any(".encoder.block." in k or k.startswith("encoder.block.") for k in unexpected + missing):
        hints.append("The number of blocks differs: match MODEL.ROPE_VIT.DEPTH to the weights.")
    return hints


def birder_to_d2_checkpoint(
    checkpoint: BirderCheckpoint,
    keep_classifier: bool = False,
    model_state: Mapping[str, torch.Tensor] | None = None,
    prefix: str = VIT_PREFIX,
) -> dict[str, Any]:
    """A detectron2 checkpoint dict (what ``DetectionCheckpointer`` loads) from a birder checkpoint.

    Args:
        checkpoint: the birder checkpoint, from :func:`read_birder_checkpoint`.
        keep_classifier: keep ``classifier.*`` (mapped to ``<prefix>classifier.*``).
        model_state: when given, the converted weights are checked against it (see :func:`check_against_model`).
        prefix: the ViT's prefix in the target model.

    Returns:
        ``{"model": state, "__author__": "ropevit_det", "matching_heuristics": False}`` plus the provenance and
        preprocessing metadata: ``rgb_stats``, ``pixel_mean``/``pixel_std`` (0-255, RGB), ``input_format``,
        ``resolution``, ``class_to_idx``, ``source_num_classes``, ``source_file``, ``source_sha256``,
        ``birder_version``.
    """
    converted = convert_birder_state(checkpoint.state, keep_classifier, prefix)
    if model_state is not None:
        check_against_model(converted, model_state, prefix, checkpoint.resolution)
    return {
        "model": converted,
        "__author__": CHECKPOINT_AUTHOR,
        "matching_heuristics": False,
        "rgb_stats": {key: list(values) for key, values in checkpoint.rgb_stats.items()},
        "pixel_mean": checkpoint.pixel_mean,
        "pixel_std": checkpoint.pixel_std,
        "input_format": "RGB",
        "resolution": list(checkpoint.resolution),
        # The source classifier's classes, kept even when the classifier is dropped (provenance).
        "class_to_idx": dict(checkpoint.class_to_idx),
        # Outputs of the file's classifier (0: the file has none, e.g. a self-supervised encoder).
        "source_num_classes": int(checkpoint.state["classifier.weight"].shape[0])
        if "classifier.weight" in checkpoint.state
        else 0,
        "source_file": checkpoint.source_name,
        "source_sha256": checkpoint.sha256,
        "birder_version": checkpoint.birder_version,
    }
