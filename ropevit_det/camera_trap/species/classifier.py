"""Species labels for detections: square crops with context, RoPE ViT classification, MD ``classifications``.

The iNat21 checkpoint holds a 10,000-species classifier on top of the same ViT the detector starts from, so a
detection can be named by running that classifier on a crop of it (RoPEViT.forward_classification: final norm,
class token, classifier). The crop follows the usual camera-trap recipe (MegaClassifier, SpeciesNet): the box
grown by a context margin, made square so the animal is not stretched, resized to the classifier's
resolution (336 px for the iNat21 weights). Preprocessing is birder's own inference transform
(``birder.data.transforms.classification.inference_preset``: bicubic antialiased resize, scale to 0..1,
normalise with the checkpoint's ``rgb_stats``), re-stated here with torchvision because birder is a test-only
dependency; ``tests/camera_trap/test_camtrap_infer.py`` checks the two give the same tensor and the same logits.

Where the classifier comes from (:func:`load_species_classifier`): a birder ``.pt`` / ``.safetensors`` file, a
``birder://NAME`` published checkpoint, or a detectron2 checkpoint whose ViT carries ``classifier.*`` (a file
from ``tools/convert_birder_to_d2.py --keep-classifier``). Class names come from the checkpoint's
``class_to_idx``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.utils.file_io import PathManager

from ...checkpoint.birder_format import BirderCheckpoint, read_checkpoint_file
from ...checkpoint.conversion import VIT_PREFIX, KeyMappingError, check_against_model, convert_birder_state
from ...modeling.rope_vit import RoPEViT
from ...modeling.sfp_backbone import rope_vit_kwargs_from_cfg
from .crops import DEFAULT_CONTEXT_MARGIN, classification_transform, square_crop
from .label_policy import LabelPolicy

__all__ = [
    "SpeciesClassifier",
    "class_names_from_class_to_idx",
    "classifier_from_detector",
    "load_species_classifier",
]

logger = logging.getLogger(__name__)


def class_names_from_class_to_idx(class_to_idx: Mapping[str, int], num_classes: int, source: str) -> list[str]:
    """Index -> name list from a checkpoint's ``class_to_idx``; placeholder names when it has none.

    Raises:
        ValueError: the indices do not cover ``0 .. num_classes - 1`` exactly once.
    """
    if not class_to_idx:
        logger.warning(
            "%s carries no class_to_idx: species are written as class_0 .. class_%d", source, num_classes - 1
        )
        return [f"class_{i}" for i in range(num_classes)]
    names: list[str | None] = [None] * num_classes
    for name, idx in class_to_idx.items():
        if not (isinstance(idx, int) and 0 <= idx < num_classes) or names[idx] is not None:
            raise ValueError(
                f"{source}: class_to_idx maps {name!r} to {idx!r}, but the classifier has "
                f"{num_classes} outputs and each index must be used once"
            )
        names[idx] = str(name)
    missing = [i for i, n in enumerate(names) if n is None]
    if missing:
        raise ValueError(
            f"{source}: class_to_idx names {len(class_to_idx)} classes, the classifier has "
            f"{num_classes}; indices without a name: {missing[:10]}"
        )
    return names  # type: ignore[return-value]


class SpeciesClassifier:
    """Run a RoPEViT classifier on detection crops and return MD-style top-k ``[category_id, conf]`` lists.

    Args:
        vit: a :class:`RoPEViT` with a classifier (``num_classes > 0``); used in eval mode, never changed.
        class_names: index -> species name.
        rgb_stats: normalisation the classifier was trained with (0..1 scale, RGB).
        input_size: crop side in pixels (the classifier's training resolution).
        device: where ``vit`` lives.
        bf16: run under bf16 autocast (CPU or CUDA).
        margin: context margin of the crops (see :func:`square_crop_region`).
        top_k: how many classes to write per detection.
        batch_size: crops per forward pass.
        name: shown as ``info.classifier`` in the results file.
    """

    def __init__(
        self,
        vit: RoPEViT,
        class_names: Sequence[str],
        rgb_stats: Mapping[str, Sequence[float]],
        input_size: int,
        *,
        device: str | torch.device = "cpu",
        bf16: bool = False,
        margin: float = DEFAULT_CONTEXT_MARGIN,
        top_k: int = 5,
        batch_size: int = 64,
        name: str = "rope_vit classifier",
    ):
        if vit.classifier is None:
            raise ValueError("the RoPEViT has no classifier (num_classes = 0); it cannot name species")
        if len(class_names) != vit.classifier.out_features:
            raise ValueError(
                f"{len(class_names)} class names for a classifier with {vit.classifier.out_features} outputs"
            )
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.vit = vit.eval()
        self.class_names = list(class_names)
        self.rgb_stats = {k: tuple(float(v) for v in rgb_stats[k]) for k in ("mean", "std")}
        self.input_size = int(input_size)
        self.device = torch.device(device)
        self.bf16 = bf16
        self.margin = margin
        self.top_k = min(top_k, len(self.class_names))
        self.batch_size = batch_size
        self.name = name
        self.transform = classification_transform(self.input_size, self.rgb_stats)
        self.fill = tuple(int(round(255 * m)) for m in self.rgb_stats["mean"])
        # Which classes may be named and whether labels roll up the taxonomy (see label_policy.LabelPolicy).
        self.label_policy: LabelPolicy | None = None

    def set_label_policy(self, policy: LabelPolicy | None) -> None:
        """Name detections through ``policy`` (class mask, roll-up); None restores the plain top-k."""
        if policy is not None and policy.class_names != self.class_names:
            raise ValueError("the label policy was built for other classes than this classifier's")
        self.label_policy = policy

    @property
    def categories(self) -> dict[str, str]:
        """MD ``classification_categories``: ``{"0": name, ...}`` (ids are the classifier's indices; with a label
        policy, only the classes it allows, plus its roll-up taxa)."""
        if self.label_policy is not None:
            return dict(self.label_policy.categories)
        return {str(i): name for i, name in enumerate(self.class_names)}

    def preprocess(self, image: np.ndarray, box_xyxy: Sequence[float]) -> torch.Tensor:
        """One detection's crop as the classifier's input tensor (CHW float)."""
        return self.transform(square_crop(image, box_xyxy, self.margin, self.fill))

    @torch.no_grad()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Class logits (float32, on the CPU) for preprocessed crops ``(N, 3, S, S)``."""
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with autocast:
            out = self.vit.forward_classification(batch.to(self.device))
        return out.float().cpu()

    def classify(self, crops: Sequence[torch.Tensor]) -> list[list[tuple[str, float]]]:
        """Top-k ``(category id, probability)`` per preprocessed crop, best first."""
        results: list[list[tuple[str, float]]] = []
        for start in range(0, len(crops), self.batch_size):
            probs = self.logits(torch.stack(list(crops[start : start + self.batch_size]))).softmax(dim=1)
            if self.label_policy is not None:
                results.extend(self.label_policy(probs))
                continue
            conf, idx = probs.topk(self.top_k, dim=1)
            results.extend(
                [(str(i), float(c)) for i, c in zip(row_idx.tolist(), row_conf.tolist())]
                for row_idx, row_conf in zip(idx, conf)
            )
        return results


def _classifier_vit_kwargs(cfg: CfgNode, num_classes: int) -> dict[str, Any]:
    """RoPEViT arguments for the standalone classifier: the config's ViT shape, as it was pretrained.

    Windowed attention, drop path, checkpointing and freezing are detection/training settings; the
    classifier was trained with global attention everywhere, so it always runs that way.
    """
    kwargs = rope_vit_kwargs_from_cfg(cfg)
    kwargs.update(
        num_classes=num_classes,
        window_size=0,
        global_block_indexes=(),
        drop_path_rate=0.0,
        use_act_checkpoint=False,
        freeze_patch_embed=False,
        freeze_blocks=0,
    )
    return kwargs


def _rgb_stats(meta: Mapping[str, Any], cfg: CfgNode) -> dict[str, Any]:
    """The checkpoint's ``rgb_stats``, else the config's pixel statistics (x255 undone)."""
    return meta.get("rgb_stats") or {
        "mean": [v / 255.0 for v in cfg.MODEL.PIXEL_MEAN],
        "std": [v / 255.0 for v in cfg.MODEL.PIXEL_STD],
    }


def _read_classifier_state(local_path: str, source: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(bare RoPEViT state with classifier.*, metadata)`` from a birder or detectron2 checkpoint file."""
    loaded = read_checkpoint_file(local_path)
    if not isinstance(loaded, BirderCheckpoint):
        if not (isinstance(loaded, dict) and isinstance(loaded.get("model"), dict)):
            raise ValueError(
                f"{source} is neither a birder checkpoint nor a detectron2 checkpoint "
                "(a dict with 'model'); pass a birder .pt/.safetensors file or birder://NAME"
            )
        # torch.as_tensor: a .pkl (read by the restricted unpickler) holds numpy arrays.
        state = {
            k[len(VIT_PREFIX) :]: torch.as_tensor(v) for k, v in loaded["model"].items() if k.startswith(VIT_PREFIX)
        }
        if "classifier.weight" not in state:
            raise ValueError(
                f"{source} has no classifier ({VIT_PREFIX}classifier.weight): a fine-tuned detector does not "
                "keep one. Use a classification checkpoint: birder://rope_vit_reg4_b14_capi-inat21, a birder "
                "file, or a detectron2 file converted with its classifier kept."
            )
        meta = {k: loaded.get(k) for k in ("class_to_idx", "rgb_stats", "resolution")}
        return state, meta
    try:
        state = convert_birder_state(loaded.state, keep_classifier=True, prefix="")
    except KeyMappingError as exc:
        raise ValueError(f"{source}: cannot be used as a species classifier: {exc}") from None
    meta = {"class_to_idx": loaded.class_to_idx, "rgb_stats": loaded.rgb_stats, "resolution": loaded.resolution}
    return state, meta


def load_species_classifier(
    cfg: CfgNode,
    weights: str,
    *,
    device: str | torch.device = "cpu",
    bf16: bool = False,
    margin: float = DEFAULT_CONTEXT_MARGIN,
    top_k: int = 5,
) -> SpeciesClassifier:
    """Build a standalone classifier RoPEViT from a checkpoint, loading it strictly.

    Args:
        cfg: config whose ``MODEL.ROPE_VIT`` gives the ViT's shape (it must match the checkpoint's;
            ``PRETRAIN_IMG_SIZE`` is the checkpoint's training resolution and the crop size) and whose
            ``MODEL.PIXEL_MEAN/STD`` are used when the checkpoint has no ``rgb_stats``.
        weights: a birder ``.pt``/``.safetensors`` file, ``birder://NAME``, or a detectron2 checkpoint whose
            ViT has ``classifier.*``.
        device, bf16, margin, top_k: see :class:`SpeciesClassifier`.

    Raises:
        ValueError: the file has no classifier, or its tensors do not fit the configured ViT.
    """
    local_path = PathManager.get_local_path(weights)  # resolves birder:// (downloads and verifies once)
    state, meta = _read_classifier_state(local_path, weights)
    num_classes = state["classifier.weight"].shape[0]
    vit = RoPEViT(**_classifier_vit_kwargs(cfg, num_classes))
    resolution = tuple(meta["resolution"]) if meta.get("resolution") else None
    try:
        check_against_model(state, vit.state_dict(), prefix="", resolution=resolution)
    except KeyMappingError as exc:
        raise ValueError(f"classifier weights {weights} do not fit the ViT of the config: {exc}") from None
    vit.load_state_dict(state, strict=True)
    vit.to(device)
    logger.info(
        "species classifier: %s, %d classes, %d px crops", weights, num_classes, cfg.MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE
    )
    return _species_classifier(vit, meta, cfg, weights, device=device, bf16=bf16, margin=margin, top_k=top_k)


def classifier_from_detector(
    vit: RoPEViT,
    meta: Mapping[str, Any],
    cfg: CfgNode,
    weights: str,
    *,
    device: str | torch.device = "cpu",
    bf16: bool = False,
    margin: float = DEFAULT_CONTEXT_MARGIN,
    top_k: int = 5,
) -> SpeciesClassifier:
    """Use the detector's own ViT (``MODEL.ROPE_VIT.NUM_CLASSES > 0``, classifier loaded) as the classifier.

    Shares the weights in memory: no second ViT. Right when the detector's backbone is the classifier's
    (e.g. the detector was trained with a frozen backbone); a fine-tuned backbone no longer matches its
    classifier, and ``--classifier-weights`` should name the original classification checkpoint.

    Args:
        vit: ``model.backbone.net.vit``.
        meta: what ``RoPEViTCheckpointer.load`` returned (``class_to_idx``, ``rgb_stats``).
        cfg, weights: the detector's config and weights (for the normalisation fallback and messages).
    """
    if vit.classifier is None:
        raise ValueError("the detector's ViT has no classifier (MODEL.ROPE_VIT.NUM_CLASSES is 0)")
    if vit.window_size > 0:
        # The classifier was trained with global attention; windowed blocks would give other logits.
        raise ValueError(
            "the detector's ViT uses windowed attention (MODEL.ROPE_VIT.WINDOW_SIZE > 0); "
            "load the classifier standalone (load_species_classifier) instead"
        )
    return _species_classifier(vit, meta, cfg, weights, device=device, bf16=bf16, margin=margin, top_k=top_k)


def _species_classifier(
    vit: RoPEViT, meta: Mapping[str, Any], cfg: CfgNode, weights: str, **options: Any
) -> SpeciesClassifier:
    """The ``SpeciesClassifier`` around a loaded classifier ViT: class names and pixel statistics from the
    checkpoint's ``meta`` (config fallback), crops at the ViT's training resolution."""
    names = class_names_from_class_to_idx(meta.get("class_to_idx") or {}, vit.classifier.out_features, weights)
    return SpeciesClassifier(
        vit,
        names,
        _rgb_stats(meta, cfg),
        cfg.MODEL.ROPE_VIT.PRETRAIN_IMG_SIZE,
        name=weights.rsplit("/", 1)[-1],
        **options,
    )
