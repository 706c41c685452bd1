"""Batch inference over camera-trap folders: detector, background decoding, MD results, optional species labels.

``tools/infer.py`` is a thin command line over :func:`run_inference`. What happens to each image:

1. a DataLoader worker reads it as displayed (``image_io.read_image_rgb``: EXIF applied, any mode to RGB,
   huge images decoded at reduced size, broken files become a failure string) and resizes it for the model
   with detectron2's ``ResizeShortestEdge`` (``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``), as
   ``DefaultPredictor`` does, so the main process only runs the model;
2. the detector (detectron2 ``GeneralizedRCNN`` in eval mode, one batch at a time) returns boxes already
   rescaled to the displayed image size, because each input carries that size as ``height`` / ``width``;
3. detections at or above ``threshold`` become an MD entry (normalised boxes), with top-k species from the
   :class:`~.species.SpeciesClassifier` when one is given;
4. the entry goes to a :class:`~.md_format.ResultsWriter` (atomic checkpoints, resume) and, with ``render_dir``,
   a copy of the image with its boxes is written.

Detection category ids (:func:`detection_classes`): a model whose classes are MegaDetector's ``animal`` /
``person`` / ``vehicle`` gets MD's ids ``"1"``, ``"2"``, ``"3"`` (what Timelapse and AddaxAI expect); any other
model gets ``"1" .. "N"`` for its classes in order, named from ``--class-names``, else the classes stored in
the checkpoint by ``tools/train_net.py`` (``dataset_info``), else the config's dataset metadata
(``thing_classes``), else ``class_0 .. class_{N-1}``.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.structures import Instances
from tqdm import tqdm

from ..checkpoint import RoPEViTCheckpointer, check_pixel_stats
from ..checkpoint.conversion import CHECKPOINT_AUTHOR
from .classes import MD_CATEGORY_IDS
from .image_io import DEFAULT_MAX_PIXELS, InferenceImageDataset, collate_as_list
from .md_format import ResultsWriter, detection_entry, failure_entry, image_entry
from .render import render_entry, rendered_path
from .species import SpeciesClassifier

__all__ = [
    "DetectionClasses",
    "Detector",
    "DetectorInputDataset",
    "InferenceSummary",
    "InputSpec",
    "PreparedImage",
    "detection_classes",
    "load_detector",
    "parse_class_names",
    "run_inference",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- categories
@dataclass(frozen=True)
class DetectionClasses:
    """The detector's classes as MD categories.

    Args:
        ids: model class index -> MD category id (string of digits).
        names: model class index -> name.
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def categories(self) -> dict[str, str]:
        """MD ``detection_categories``."""
        return dict(zip(self.ids, self.names))


def parse_class_names(value: str) -> list[str]:
    """Class names from ``--class-names``: ``"animal,person,vehicle"``, or a JSON file.

    The JSON file holds a list of names (model class order), or is a COCO / CCT file whose ``categories``,
    sorted by id, give the order, as detectron2's COCO loader (and so ``tools/train_net.py --train-json``)
    assigns class indices.
    """
    path = Path(value)
    if value.lower().endswith(".json"):
        if not path.is_file():
            raise FileNotFoundError(f"--class-names file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"--class-names file {path} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("categories"), list):
            categories = sorted(data["categories"], key=lambda c: c["id"])
            names = [str(c["name"]) for c in categories]
        elif isinstance(data, list) and all(isinstance(n, str) for n in data):
            names = list(data)
        else:
            raise ValueError(f"--class-names file {path} must hold a JSON list of names or a COCO file with "
                             "'categories'")
    else:
        names = [n.strip() for n in value.split(",")]
    if not names or any(not n for n in names):
        raise ValueError(f"--class-names {value!r} gives an empty name; write e.g. 'animal,person,vehicle'")
    if len(set(names)) != len(names):
        raise ValueError(f"--class-names {value!r} repeats a name")
    return names


def detection_classes(
    num_classes: int,
    class_names: Sequence[str] | None = None,
    dataset_names: Sequence[str] = (),
    checkpoint_meta: Mapping[str, Any] | None = None,
) -> DetectionClasses:
    """Decide the MD ids and names of the detector's classes (see the module docstring).

    Args:
        num_classes: ``MODEL.ROI_HEADS.NUM_CLASSES``.
        class_names: names given by the user (``--class-names``), in model class order.
        dataset_names: registered datasets to take ``thing_classes`` from (``DATASETS.TEST`` + ``TRAIN``).
        checkpoint_meta: what the checkpointer returned; checkpoints written by ``tools/train_net.py`` carry
            ``dataset_info.thing_classes``, the classes the model was trained on.
    """
    names: list[str] | None = list(class_names) if class_names is not None else None
    if names is not None and len(names) != num_classes:
        raise ValueError(f"--class-names gives {len(names)} names but the model has {num_classes} classes "
                         "(MODEL.ROI_HEADS.NUM_CLASSES)")
    trained_on = list((checkpoint_meta or {}).get("dataset_info", {}).get("thing_classes", []))
    if names is None and len(trained_on) == num_classes:
        names = trained_on
        logger.info("detection classes from the checkpoint: %s", ", ".join(names))
    if names is None:
        for dataset in dataset_names:
            thing_classes = MetadataCatalog.get(dataset).get("thing_classes", None)
            if thing_classes is not None and len(thing_classes) == num_classes:
                names = list(thing_classes)
                logger.info("detection classes from the metadata of dataset %r", dataset)
                break
    if names is None:
        logger.warning("the model's %d class names are unknown: they are written as class_0 .. class_%d; "
                       "pass --class-names (e.g. animal,person,vehicle)", num_classes, num_classes - 1)
        names = [f"class_{i}" for i in range(num_classes)]
    lowered = [n.lower() for n in names]
    if set(lowered) <= set(MD_CATEGORY_IDS) and len(set(lowered)) == len(lowered):
        # MegaDetector's classes keep MegaDetector's ids whatever their order in the model.
        ids = tuple(str(MD_CATEGORY_IDS[n]) for n in lowered)
        return DetectionClasses(ids, tuple(lowered))
    return DetectionClasses(tuple(str(i + 1) for i in range(num_classes)), tuple(names))


# --------------------------------------------------------------------------------------------- detector
@dataclass(frozen=True)
class InputSpec:
    """How an RGB image becomes a detector input (picklable, so DataLoader workers can do it).

    Args:
        min_size, max_size: ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST`` (min_size 0: no resizing).
        input_format: ``INPUT.FORMAT`` (``"RGB"`` for RoPE ViT; ``"BGR"`` for models trained so).
    """

    min_size: int
    max_size: int
    input_format: str = "RGB"

    @classmethod
    def from_cfg(cls, cfg: CfgNode) -> InputSpec:
        if cfg.INPUT.FORMAT not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT {cfg.INPUT.FORMAT!r} is not supported by batch inference; use RGB or BGR")
        return cls(int(cfg.INPUT.MIN_SIZE_TEST), int(cfg.INPUT.MAX_SIZE_TEST), cfg.INPUT.FORMAT)

    def __call__(self, image_rgb: np.ndarray, original_hw: tuple[int, int]) -> dict[str, Any]:
        """detectron2's input dict; ``height``/``width`` are the displayed size, so boxes come back in it."""
        image = image_rgb if self.input_format == "RGB" else image_rgb[:, :, ::-1]
        if self.min_size > 0:
            resize = T.ResizeShortestEdge([self.min_size, self.min_size], self.max_size)
            image = resize.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return {"image": tensor, "height": original_hw[0], "width": original_hw[1]}


def load_detector(cfg: CfgNode) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build ``cfg``'s model, load ``MODEL.WEIGHTS`` with :class:`RoPEViTCheckpointer`, switch to eval mode.

    Returns:
        ``(model, meta)``: ``meta`` is what the checkpointer returned (``class_to_idx``, ``rgb_stats``, ... for
        birder-derived weights), for species labels and the pixel-statistics check.
    """
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("no detector weights: pass --weights (a trained detectron2 checkpoint)")
    model = build_model(cfg)
    meta = RoPEViTCheckpointer(model).load(cfg.MODEL.WEIGHTS) or {}
    check_pixel_stats(cfg, meta)
    if meta.get("__author__") == CHECKPOINT_AUTHOR:
        # Converted birder weights hold a classification ViT only: the detection heads are random.
        logger.warning("%s holds backbone weights only: the detection heads are untrained and the detections "
                       "meaningless. Pass a fine-tuned detector checkpoint (tools/train_net.py's model_final.pth).",
                       cfg.MODEL.WEIGHTS)
    return model.eval(), meta


class Detector:
    """Run a detectron2 model on batches of prepared inputs.

    Args:
        model: the detectron2 model (eval mode).
        device: the model's device.
        bf16: run the backbone under ``torch.autocast(device, bfloat16)`` (fast on GPUs and on CPUs with
            AVX-512 BF16). For ``GeneralizedRCNN`` only the backbone is autocast: it is nearly all the compute,
            and keeping the heads in float32 keeps scores at full precision (bf16 has 8 significant bits, so
            scores near 0.5 would move in steps of 0.004 and tie). Other meta-architectures run wholly in bf16.
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", bf16: bool = False):
        self.model = model.eval()
        self.device = torch.device(device)
        self.bf16 = bf16

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    @torch.no_grad()
    def __call__(self, inputs: list[dict[str, Any]]) -> list[Instances]:
        if not inputs:
            return []
        if self.bf16 and isinstance(self.model, GeneralizedRCNN) and self.model.proposal_generator is not None:
            outputs = self._bf16_backbone_inference(inputs)
        else:
            with self._autocast():
                outputs = self.model(inputs)
        return [out["instances"].to("cpu") for out in outputs]

    def _bf16_backbone_inference(self, inputs: list[dict[str, Any]]) -> list[dict[str, Instances]]:
        """``GeneralizedRCNN.inference`` with autocast around the backbone only."""
        model = self.model
        images = model.preprocess_image(inputs)
        with self._autocast():
            features = model.backbone(images.tensor)
        features = {name: f.float() for name, f in features.items()}
        proposals, _ = model.proposal_generator(images, features, None)
        results, _ = model.roi_heads(images, features, proposals, None)
        return GeneralizedRCNN._postprocess(results, inputs, images.image_sizes)


# --------------------------------------------------------------------------------------------- input
class PreparedImage(NamedTuple):
    """One image as a DataLoader worker hands it over."""

    rel_path: str
    failure: str | None
    original_hw: tuple[int, int] | None  # displayed size (boxes are reported in it)
    model_input: dict[str, Any] | None
    image: torch.Tensor | None  # decoded RGB HWC uint8 (maybe downscaled), only when crops or renders need it


class DetectorInputDataset(InferenceImageDataset):
    """:class:`InferenceImageDataset` that also prepares the detector input, so workers do the resize too.

    Args:
        root, files, max_pixels: see :class:`InferenceImageDataset`.
        spec: how to make the detector input.
        keep_image: also return the decoded image (for species crops and rendering).
    """

    def __init__(self, root: str | os.PathLike, files: Sequence[str], spec: InputSpec, *, keep_image: bool,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS):
        super().__init__(root, files, max_pixels)
        self.spec = spec
        self.keep_image = keep_image

    def __getitem__(self, index: int) -> PreparedImage:  # type: ignore[override]
        loaded = super().__getitem__(index)
        if loaded.image is None:
            return PreparedImage(loaded.rel_path, loaded.failure, None, None, None)
        # Tensors (not numpy arrays) cross from worker to main process through shared memory, not a pipe.
        image = torch.from_numpy(loaded.image) if self.keep_image else None
        return PreparedImage(loaded.rel_path, None, loaded.original_hw, self.spec(loaded.image, loaded.original_hw),
                             image)


def _make_loader(dataset: DetectorInputDataset, batch_size: int, num_workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,  # input order: reproducible runs, and checkpoints that follow the listing
        num_workers=num_workers,
        collate_fn=collate_as_list,
        # 2 batches ahead per worker keeps the model fed; more only holds more decoded frames in memory.
        prefetch_factor=2 if num_workers > 0 else None,
    )


# --------------------------------------------------------------------------------------------- loop
@dataclass
class InferenceSummary:
    """What a run did (this run only; a resumed file also holds earlier entries)."""

    images: int = 0
    failures: int = 0
    detections: int = 0
    classified: int = 0
    rendered: int = 0
    seconds: float = 0.0
    failed_files: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def _detections_of(instances: Instances, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes xyxy float64, scores, classes)`` at or above ``threshold``, best first."""
    scores = instances.scores.float().numpy()
    keep = np.flatnonzero(scores >= threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    boxes = instances.pred_boxes.tensor.float().numpy().astype(np.float64)
    return boxes[keep], scores[keep], instances.pred_classes.numpy()[keep]


def run_inference(
    detector: Detector,
    spec: InputSpec,
    root: str | os.PathLike,
    files: Sequence[str],
    writer: ResultsWriter,
    classes: DetectionClasses,
    *,
    threshold: float,
    batch_size: int = 4,
    num_workers: int = 4,
    classifier: SpeciesClassifier | None = None,
    classify_threshold: float = 0.2,
    render_dir: str | os.PathLike | None = None,
    render_threshold: float = 0.2,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: bool = True,
) -> InferenceSummary:
    """Detect (and classify, and render) every file not yet in ``writer``, adding one entry per file.

    Args:
        detector, spec: the model and its input preparation.
        root, files: input root and relative paths (``image_io.list_inputs``).
        writer: receives the entries; files already in ``writer.done`` are skipped.
        classes: the detector's MD categories (``writer`` must have been made with ``classes.categories``).
        threshold: detections below this score are not written.
        batch_size: images per model call.
        num_workers: decoding processes (0: decode in this process).
        classifier: adds ``classifications`` to detections scoring at least ``classify_threshold``.
        render_dir: write each image with its detections (score >= ``render_threshold``) under this folder.
        max_pixels: see ``image_io.read_image_rgb``.
        progress: show a tqdm progress bar (rate and ETA) on stderr.
    """
    done = writer.done
    todo = [f for f in files if f not in done]
    if len(todo) < len(files):
        logger.info("%d of %d images already in %s; %d to go", len(files) - len(todo), len(files), writer.output,
                    len(todo))
    keep_image = classifier is not None or render_dir is not None
    loader = _make_loader(DetectorInputDataset(root, todo, spec, keep_image=keep_image, max_pixels=max_pixels),
                          batch_size, num_workers)
    summary = InferenceSummary()
    start = time.perf_counter()
    with tqdm(total=len(todo), unit="img", desc="detecting", dynamic_ncols=True, disable=not progress) as bar:
        for batch in loader:
            ok = [item for item in batch if item.failure is None]
            outputs = dict(zip((item.rel_path for item in ok), detector([item.model_input for item in ok])))
            for item in batch:
                if item.failure is not None:
                    writer.add(failure_entry(item.rel_path, item.failure))
                    summary.failures += 1
                    summary.failed_files.append(item.rel_path)
                else:
                    entry = _image_result(item, outputs[item.rel_path], classes, threshold, classifier,
                                          classify_threshold, summary)
                    writer.add(entry)
                    if render_dir is not None:
                        _render(item, entry, render_dir, writer, render_threshold)
                        summary.rendered += 1
                summary.images += 1
                bar.update(1)
    summary.seconds = time.perf_counter() - start
    return summary


def _image_result(
    item: PreparedImage,
    instances: Instances,
    classes: DetectionClasses,
    threshold: float,
    classifier: SpeciesClassifier | None,
    classify_threshold: float,
    summary: InferenceSummary,
) -> dict[str, Any]:
    """The MD entry of one image (boxes in displayed-image pixels, normalised by ``detection_entry``)."""
    height, width = item.original_hw
    boxes, scores, labels = _detections_of(instances, threshold)
    species: list[list[tuple[str, float]] | None] = [None] * len(scores)
    if classifier is not None and item.image is not None:
        image = item.image.numpy()
        # The decoded image may be smaller than the displayed size (max_pixels); crop in its own pixels.
        scale = np.array([image.shape[1] / width, image.shape[0] / height] * 2)
        chosen = [i for i, s in enumerate(scores) if s >= classify_threshold]
        crops = [classifier.preprocess(image, boxes[i] * scale) for i in chosen]
        for i, top_k in zip(chosen, classifier.classify(crops) if crops else []):
            species[i] = top_k
        summary.classified += len(chosen)
    detections = [
        detection_entry(classes.ids[int(label)], float(score), box, width, height, classifications=top_k)
        for box, score, label, top_k in zip(boxes, scores, labels, species)
    ]
    summary.detections += len(detections)
    return image_entry(item.rel_path, detections)


def _render(item: PreparedImage, entry: dict[str, Any], render_dir: str | os.PathLike, writer: ResultsWriter,
            threshold: float) -> None:
    out = Path(render_dir) / rendered_path(item.rel_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture = render_entry(item.image.numpy(), entry, writer.detection_categories,
                           writer.classification_categories or {}, threshold)
    picture.save(out, quality=90)
