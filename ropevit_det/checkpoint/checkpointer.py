"""A ``DetectionCheckpointer`` that also takes raw birder checkpoints and ``birder://`` names, strictly.

``MODEL.WEIGHTS`` may then be:

* a detectron2 checkpoint (a training snapshot, or a file from ``tools/convert_birder_to_d2.py``);
* a raw birder ``.pt`` / ``.safetensors`` file: converted in memory;
* ``birder://NAME``: downloaded and verified once (see ``path_handler``), converted once, and both cached.

detectron2's own ``DetectionCheckpointer`` loads ``birder://NAME`` too: the path handler resolves the name to the
converted file, so nothing of detectron2 is patched. A raw birder file needs this class, or converting once with
``tools/convert_birder_to_d2.py``.

Nothing from a file is run: ``.pkl`` files go through a restricted unpickler, every other file through
``torch.load(weights_only=True)`` (:mod:`ropevit_det.checkpoint.safe_pickle`); a file that would run code, or a
missing file, is a :class:`~ropevit_det.checkpoint.safe_pickle.WeightsFileError` naming it and the fix.

For weights that came from birder, loading is strict on the ViT: every ViT tensor of the model must be
filled, every tensor of the file must land in the model with the same shape, or loading stops with an error
naming the tensors. The pyramid and the detection heads are not in such files and start from scratch. Instead
of fvcore's per-key warnings, one line says what happened.

A detector checkpoint whose class-specific head tensors (box and mask predictors) do not fit the model was
trained on another number of classes. With ``strict_heads`` (inference, evaluation) loading stops with an error
naming the checkpoint's classes (from its ``dataset_info``) and the config key to set; without it (fine-tuning
from another detector) one warning says which head tensors start from scratch, never fvcore's per-key lines alone.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .birder_format import BirderCheckpoint, load_torch_file, read_checkpoint_file
from .conversion import CHECKPOINT_AUTHOR, VIT_PREFIX, birder_to_d2_checkpoint, check_against_model
from .path_handler import BIRDER_PREFIX, converted_published
from .safe_pickle import WeightsFileError, detectron2_pkl_layout, load_pickle_weights, missing_weights_error

__all__ = ["HeadClassesError", "RoPEViTCheckpointer", "check_pixel_stats", "head_class_mismatch", "load_report"]

logger = logging.getLogger(__name__)


# The tensors whose first dimension is the class count (K + 1 scores, 4K box deltas, K masks), in Faster/Mask R-CNN
# and Cascade heads (``box_predictor.N.``).
_CLASS_HEAD = re.compile(r"^roi_heads\.(box_predictor(\.\d+)?\.(cls_score|bbox_pred)|mask_head\.predictor)\.")


class HeadClassesError(WeightsFileError):
    """A detector checkpoint trained on another number of classes than the config's ``NUM_CLASSES``."""


def _checkpoint_classes(checkpoint: Mapping[str, Any], state: Mapping[str, Any]) -> tuple[int | None, list[str]]:
    """``(class count, class names)`` of a detector checkpoint: the names from its ``dataset_info``, the count
    from its score layer (``cls_score`` has K + 1 rows), else from the names."""
    names = [str(n) for n in ((checkpoint.get("dataset_info") or {}).get("thing_classes") or [])]
    scores = state.get("roi_heads.box_predictor.cls_score.weight")
    if scores is None:
        cascade = re.compile(r"^roi_heads\.box_predictor\.\d+\.cls_score\.weight$")
        scores = next((v for k, v in state.items() if cascade.match(k)), None)
    count = int(scores.shape[0]) - 1 if scores is not None else (len(names) or None)
    return count, names


def head_class_mismatch(
    checkpoint: Mapping[str, Any],
    state: Mapping[str, Any],
    incorrect_shapes: Sequence[Any],
    model_classes: int | None,
    source: str,
) -> str | None:
    """The message for class-specific head tensors that did not load (another class count), or None."""
    heads = [k for k, *_ in incorrect_shapes if _CLASS_HEAD.match(k)]
    if not heads:
        return None
    count, names = _checkpoint_classes(checkpoint, state)
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    what = f"{count} classes" if count is not None else "another number of classes"
    if shown:
        what += f" ({shown})"
    told = f"MODEL.ROI_HEADS.NUM_CLASSES {model_classes}" if model_classes is not None else "another class count"
    fix = (
        f"set it to {count} (add MODEL.ROI_HEADS.NUM_CLASSES {count} to the command)"
        if count
        else "set it to the checkpoint's"
    )
    return (
        f"the checkpoint {source} has {what}, the config says {told}: {fix}, or use a checkpoint trained on "
        f"{model_classes} classes (its head tensors {', '.join(heads[:3])}{', ...' if len(heads) > 3 else ''} "
        "do not fit)"
    )


class RoPEViTCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` plus raw birder checkpoints and ``birder://`` names (see the module docstring).

    ``load`` returns, like fvcore's, the file's remaining entries; for birder-derived weights these include
    ``pixel_mean``/``pixel_std``/``rgb_stats``/``resolution``/``source_file``/``source_sha256``, ready for
    :func:`check_pixel_stats`.

    ``strict_heads=True`` (inference, evaluation): a detector checkpoint of another class count raises
    :class:`HeadClassesError`; otherwise (fine-tuning) one warning names the head tensors that start from scratch.
    """

    def __init__(
        self, model: torch.nn.Module, save_dir: str = "", *, strict_heads: bool = False, **checkpointables: Any
    ) -> None:
        super().__init__(model, save_dir, **checkpointables)
        self.strict_heads = strict_heads
        self._source = ""

    def load(self, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if path and path.startswith(BIRDER_PREFIX):
            # With or without the classifier, as the model has one or not (the bare name keeps it when it exists).
            path = str(converted_published(path[len(BIRDER_PREFIX) :], keep_classifier=self._keep_classifier()))
        elif path and "://" not in path and not os.path.isfile(urlparse(path)._replace(query="").geturl()):
            # fvcore would stop on a bare assert; URLs (detectron2://, https://) still resolve through PathManager.
            raise missing_weights_error(path)
        self._source = path
        return super().load(path, *args, **kwargs)

    def _load_file(self, filename: str) -> Any:
        """detectron2's reader, except that nothing from a file is run: ``.pkl`` through the restricted
        unpickler (laid out as detectron2 lays it out), ``.pyth`` (pycls) with ``weights_only=True``."""
        if filename.endswith(".pkl"):
            return detectron2_pkl_layout(load_pickle_weights(filename))
        if filename.endswith(".pyth"):
            data = load_torch_file(filename)
            model_state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
            return {"model": model_state, "__author__": "pycls", "matching_heuristics": True}
        return super()._load_file(filename)

    def _keep_classifier(self) -> bool:
        """Keep birder's classifier exactly when the model has one (``MODEL.ROPE_VIT.NUM_CLASSES > 0``)."""
        return f"{VIT_PREFIX}classifier.weight" in self.model.state_dict()

    def _torch_load(self, f: str) -> Any:
        """Every non-``.pkl`` file comes through here (``DetectionCheckpointer._load_file``)."""
        # weights_only=True for every file, birder's or detectron2's: nothing from a file is ever executed.
        loaded = read_checkpoint_file(f)
        return self._convert(loaded) if isinstance(loaded, BirderCheckpoint) else loaded

    def _convert(self, checkpoint: BirderCheckpoint) -> dict[str, Any]:
        logger.info(
            f"converting birder checkpoint {checkpoint.source_name} ({checkpoint.resolution[0]}x"
            f"{checkpoint.resolution[1]}, sha256 {checkpoint.sha256[:12]}...) in memory"
        )
        return birder_to_d2_checkpoint(checkpoint, keep_classifier=self._keep_classifier())

    def _load_model(self, checkpoint: Any) -> Any:
        if checkpoint.get("__author__") != CHECKPOINT_AUTHOR:
            state = dict(checkpoint.get("model") or {})  # fvcore pops it; keep it to read the class count
            incompatible = super()._load_model(checkpoint)
            self._check_class_heads(checkpoint, state, incompatible)
            return incompatible
        model_state = self.model.state_dict()
        file_state = checkpoint["model"]
        resolution = tuple(checkpoint["resolution"]) if checkpoint.get("resolution") else None
        # Raises, naming the tensors, before anything is copied into the model.
        check_against_model(file_state, model_state, VIT_PREFIX, resolution)
        offered = list(file_state)  # fvcore pops checkpoint["model"]; keep the names it offers

        incompatible = super()._load_model(checkpoint)
        vit_missing = [k for k in incompatible.missing_keys if k.startswith(VIT_PREFIX)]
        if vit_missing or incompatible.unexpected_keys or incompatible.incorrect_shapes:
            # check_against_model makes this unreachable; kept so a future change cannot make it silent.
            raise RuntimeError(
                f"ViT weights failed to load: missing {vit_missing}, unexpected {incompatible.unexpected_keys}, "
                f"wrong shapes {incompatible.incorrect_shapes}"
            )
        logger.info(load_report(model_state, offered, incompatible) + classifier_report(checkpoint, model_state))
        # None tells fvcore there is nothing left to report (it would list every head tensor as missing).
        return None

    def _check_class_heads(self, checkpoint: Mapping[str, Any], state: Mapping[str, Any], incompatible: Any) -> None:
        """Refuse (``strict_heads``) or say aloud that the class-specific head tensors did not fit."""
        if incompatible is None:
            return
        model_scores = self.model.state_dict().get("roi_heads.box_predictor.cls_score.weight")
        model_classes = int(model_scores.shape[0]) - 1 if model_scores is not None else None
        message = head_class_mismatch(
            checkpoint, state, incompatible.incorrect_shapes, model_classes, self._source or "file"
        )
        if message is None:
            return
        if self.strict_heads:
            raise HeadClassesError(message)
        logger.warning("%s. Fine-tuning: those head tensors start from scratch.", message)


def load_report(model_state: Mapping[str, torch.Tensor], offered: Sequence[str], incompatible: Any) -> str:
    """One line: how many of the model's ViT and head tensors were actually copied from the file.

    Copied = offered by the file, minus what fvcore skipped (unexpected names, wrong shapes). "heads" is
    everything outside the ViT (simple feature pyramid, RPN, ROI heads).
    """
    skipped = set(incompatible.unexpected_keys) | {k for k, *_ in incompatible.incorrect_shapes}
    copied = [k for k in offered if k in model_state and k not in skipped]
    vit_total = sum(k.startswith(VIT_PREFIX) for k in model_state)
    head_total = len(model_state) - vit_total
    vit_copied = sum(k.startswith(VIT_PREFIX) for k in copied)
    head_copied = len(copied) - vit_copied
    if head_copied == 0:
        heads = "initialised from scratch"
    elif head_copied == head_total:
        heads = f"{head_copied}/{head_total} tensors loaded"
    else:
        heads = f"{head_copied}/{head_total} tensors loaded, the rest initialised from scratch"
    return f"backbone: {vit_copied}/{vit_total} tensors loaded; heads: {heads}"


def classifier_report(checkpoint: Mapping[str, Any], model_state: Mapping[str, torch.Tensor]) -> str:
    """The load report's classifier clause: said only when the file has no classifier, or the model uses it.

    A file's classifier that the detector does not use (``MODEL.ROPE_VIT.NUM_CLASSES`` 0) goes unmentioned.
    """
    source = checkpoint.get("source_num_classes", len(checkpoint.get("class_to_idx") or {}))
    model_has = f"{VIT_PREFIX}classifier.weight" in model_state
    if source == 0:
        return "; classifier: none in the file (an encoder without a classification head)"
    if model_has:
        return f"; classifier: {source} classes loaded"
    return ""


def check_pixel_stats(cfg: Any, meta: Mapping[str, Any], atol: float = 0.01) -> list[str]:
    """Warn when the config normalises pixels differently from how the weights were trained.

    Args:
        cfg: detectron2 config (reads ``MODEL.PIXEL_MEAN``, ``MODEL.PIXEL_STD``, ``INPUT.FORMAT``).
        meta: what :meth:`RoPEViTCheckpointer.load` returned (or a converted checkpoint dict). Files without
            ``pixel_mean``/``pixel_std`` (plain detectron2 snapshots) are not checked.
        atol: tolerance on the 0-255 scale.

    Returns:
        The warnings, each also logged; empty when the statistics agree.
    """
    if "pixel_mean" not in meta or "pixel_std" not in meta:
        return []
    source = meta.get("source_file", "the weights")
    warnings = []
    for key, expected in (("PIXEL_MEAN", meta["pixel_mean"]), ("PIXEL_STD", meta["pixel_std"])):
        configured = list(cfg.MODEL[key])
        if not _close(configured, expected, atol):
            warnings.append(
                f"MODEL.{key} {configured} differs from the statistics {[round(v, 3) for v in expected]} that "
                f"{source} was trained with (rgb_stats x255, RGB); set MODEL.{key} to them, or the backbone "
                "sees shifted inputs."
            )
    expected_format = meta.get("input_format", "RGB")
    if cfg.INPUT.FORMAT != expected_format:
        warnings.append(
            f"INPUT.FORMAT is {cfg.INPUT.FORMAT!r} but {source} expects {expected_format!r} channel order; "
            f"set INPUT.FORMAT: {expected_format!r}."
        )
    for message in warnings:
        logger.warning(message)
    return warnings


def _close(a: Sequence[float], b: Sequence[float], atol: float) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) <= atol for x, y in zip(a, b, strict=True))
