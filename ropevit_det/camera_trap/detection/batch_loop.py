"""The batch-inference loop: every file not yet in the results, through the detector, into MD entries.

What happens to each input (:mod:`.batch_job` runs :func:`run_inference` in every process of a run):

1. a DataLoader worker reads an image as displayed (``inputs.decoding.read_image_rgb``: EXIF applied, any
   mode to RGB, huge images decoded at reduced size, broken files become a failure string), or a video's
   sampled frames (``inputs.video.VideoReader``), and prepares the detector input
   (``engine.predictor.InputSpec``), so the main process only runs the model (:mod:`.worker_inputs`);
2. the detector (``engine.predictor.Detector``) runs on batches of images and frames alike and returns boxes
   already rescaled to the displayed size;
3. detections at or above ``threshold`` become an MD entry (normalised boxes), with top-k species from the
   ``species.classifier.SpeciesClassifier`` when one is given; a video's frames become one video entry
   (``results.video_entries``);
4. the entry goes to a ``results.writer.ResultsWriter`` (journal checkpoints, resume) and, with
   ``render_dir``, a copy of the image with its boxes is written (:mod:`.render`).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from detectron2.structures import Instances
from tqdm import tqdm

from ...engine.predictor import Detector, InputSpec
from ..inputs.decoding import DEFAULT_MAX_PIXELS
from ..inputs.video import FrameSampling
from ..results.md_format import detection_entry, failure_entry, image_entry
from ..results.video_entries import video_entry, video_failure_entry
from ..results.writer import ResultsWriter
from ..species.classifier import SpeciesClassifier
from .categories import DetectionClasses
from .glance import passes_of
from .render import render_entry, rendered_path
from .worker_inputs import DetectorInputDataset, PreparedItem, make_input_loader

__all__ = ["InferenceSummary", "run_inference"]

logger = logging.getLogger(__name__)


@dataclass
class InferenceSummary:
    """What a run did (this run only; a resumed file also holds earlier entries)."""

    images: int = 0  # entries written: images and videos
    frames: int = 0  # video frames detected
    failures: int = 0
    detections: int = 0
    classified: int = 0
    rendered: int = 0
    seconds: float = 0.0
    failed_files: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _VideoInProgress:
    """Frame detections of one video, gathered until its end-of-video item arrives."""

    frames: list[int] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Options:
    classes: DetectionClasses
    threshold: float
    classifier: SpeciesClassifier | None
    classify_threshold: float
    render_dir: str | os.PathLike | None
    render_threshold: float
    all_frames: bool
    include_datetime: bool


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
    sampling: FrameSampling = FrameSampling(),
    all_frames: bool = False,
    include_datetime: bool = True,
    progress: bool = True,
) -> InferenceSummary:
    """Detect (and classify, and render) every file not yet in ``writer``, adding one entry per file.

    Args:
        detector, spec: the model and its input preparation.
        root, files: input root and relative paths of images and videos (``inputs.listing.list_inputs``).
        writer: receives the entries; files already in ``writer.done`` are skipped.
        classes: the detector's MD categories (``writer`` must have been made with ``classes.categories``).
        threshold: detections below this score are not written.
        batch_size: images (or video frames) per model call.
        num_workers: decoding processes (0: decode in this process).
        classifier: adds ``classifications`` to detections scoring at least ``classify_threshold``.
        render_dir: write each image with its detections (score >= ``render_threshold``) under this folder
            (images only; video frames are not rendered).
        max_pixels: see ``inputs.decoding.read_image_rgb``.
        sampling: which video frames to detect.
        all_frames: keep every sampled frame's detections in a video entry, not the best per category.
        include_datetime: write each entry's capture time as ``datetime`` when it is known.
        progress: show a tqdm progress bar (rate and ETA) on stderr.
    """
    done = writer.done
    todo = [f for f in files if f not in done]
    if len(todo) < len(files):
        logger.info("%d of %d images already in %s; %d to go", len(files) - len(todo), len(files), writer.output,
                    len(todo))
    options = _Options(classes, threshold, classifier, classify_threshold, render_dir, render_threshold, all_frames,
                       include_datetime)
    keep_image = classifier is not None or render_dir is not None
    dataset = DetectorInputDataset(root, todo, spec, keep_image=keep_image, max_pixels=max_pixels, sampling=sampling)
    summary = InferenceSummary()
    videos: dict[str, _VideoInProgress] = {}
    pending: list[PreparedItem] = []
    start = time.perf_counter()
    with tqdm(total=len(todo), unit="img", desc="detecting", dynamic_ncols=True, disable=not progress) as bar:
        def flush() -> None:
            ready = [item for item in pending if item.model_input is not None]
            outputs = detector([item.model_input for item in ready])
            by_item = {id(item): out for item, out in zip(ready, outputs)}
            for item in pending:
                finished = _handle(item, by_item.get(id(item)), writer, videos, options, summary)
                bar.update(int(finished))
            pending.clear()

        for item in make_input_loader(dataset, batch_size, num_workers):
            pending.append(item)
            if sum(item.model_input is not None for item in pending) >= batch_size:
                flush()
        flush()
    summary.seconds = time.perf_counter() - start
    return summary


def _handle(item: PreparedItem, instances: Instances | None, writer: ResultsWriter,
            videos: dict[str, _VideoInProgress], options: _Options, summary: InferenceSummary) -> bool:
    """Turn one item and its detections into results; True when it finished a file (an entry was written)."""
    if item.is_frame:
        video = videos.setdefault(item.rel_path, _VideoInProgress())
        detections = _detections(item, instances, options, summary)
        for det in detections:
            det["frame_number"] = item.frame_number
        video.frames.append(item.frame_number)
        video.detections.extend(detections)
        summary.frames += 1
        return False
    if item.video_end is not None:
        video = videos.pop(item.rel_path, _VideoInProgress())
        end = item.video_end
        if item.failure is not None:
            entry = video_failure_entry(item.rel_path, item.failure, end.frame_rate)
        else:
            entry = video_entry(item.rel_path, frame_rate=end.frame_rate, frames_processed=video.frames,
                                detections=video.detections, all_frames=options.all_frames,
                                incomplete=end.incomplete)
    elif item.failure is not None:
        entry = failure_entry(item.rel_path, item.failure)
    else:
        entry = image_entry(item.rel_path, _detections(item, instances, options, summary))
        if passes_of(instances) is not None:  # --glance: which passes ran on this image
            entry["passes"] = passes_of(instances)
    if item.failure is not None:
        summary.failures += 1
        summary.failed_files.append(item.rel_path)
    if options.include_datetime and item.datetime is not None:
        entry["datetime"] = item.datetime
    # Render before the journal marks the image done: a run killed in between then redoes the image (and its
    # render) on --resume, instead of skipping an image whose render was never written.
    if options.render_dir is not None and item.image is not None and item.video_end is None:
        _render(item, entry, options.render_dir, writer, options.render_threshold)
        summary.rendered += 1
    writer.add(entry)
    summary.detections += len(entry["detections"] or ())
    summary.images += 1
    return True


def _detections(item: PreparedItem, instances: Instances, options: _Options,
                summary: InferenceSummary) -> list[dict[str, Any]]:
    """MD detections of one image or frame (boxes in displayed pixels, normalised by ``detection_entry``)."""
    height, width = item.original_hw
    boxes, scores, labels = _detections_of(instances, options.threshold)
    species: list[list[tuple[str, float]] | None] = [None] * len(scores)
    classifier = options.classifier
    if classifier is not None and item.image is not None:
        image = item.image.numpy()
        # The decoded image may be smaller than the displayed size (max_pixels); crop in its own pixels.
        scale = np.array([image.shape[1] / width, image.shape[0] / height] * 2)
        chosen = [i for i, s in enumerate(scores) if s >= options.classify_threshold]
        crops = [classifier.preprocess(image, boxes[i] * scale) for i in chosen]
        for i, top_k in zip(chosen, classifier.classify(crops) if crops else []):
            species[i] = top_k
        summary.classified += len(chosen)
    return [
        detection_entry(options.classes.ids[int(label)], float(score), box, width, height, classifications=top_k)
        for box, score, label, top_k in zip(boxes, scores, labels, species)
    ]


def _render(item: PreparedItem, entry: dict[str, Any], render_dir: str | os.PathLike, writer: ResultsWriter,
            threshold: float) -> None:
    out = Path(render_dir) / rendered_path(item.rel_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture = render_entry(item.image.numpy(), entry, writer.detection_categories,
                           writer.classification_categories or {}, threshold)
    # Through a temporary name: a kill mid-write never leaves a truncated render under the final name.
    partial = out.with_name(out.name + ".partial")
    picture.save(partial, format="JPEG", quality=90)
    os.replace(partial, out)
