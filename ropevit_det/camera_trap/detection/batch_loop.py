"""The batch-inference loop: every file not yet in the results, through the detector, into MD entries.

What happens to each input (:mod:`.batch_job` runs :func:`run_inference` in every process of a run):

1. a DataLoader worker reads an image as displayed (``inputs.decoding.read_image_rgb``: EXIF applied, any
   mode to RGB, huge images decoded at reduced size, broken files become a failure string), or a video's
   sampled frames (``inputs.video.VideoReader``), and prepares the detector input
   (``engine.predictor.InputSpec``), so the main process only runs the model (:mod:`.worker_inputs`);
2. the detector (``engine.predictor.Detector``) runs on batches of images and frames alike, each batch of one
   resized size (so a frame's detections do not depend on its batch neighbours), and returns boxes already
   rescaled to the displayed size;
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
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectron2.structures import Instances
from tqdm import tqdm

from ...engine.predictor import Detector, InputSpec
from ..inputs.decoding import DEFAULT_MAX_PIXELS
from ..inputs.video import FrameSampling, is_video_file
from ..results.md_format import failure_entry, image_entry
from ..results.video_entries import video_entry, video_failure_entry
from ..results.writer import ResultsWriter
from ..species.classifier import SpeciesClassifier
from .categories import DetectionClasses
from .entries import md_detections
from .glance import passes_of
from .render import render_entry, rendered_path
from .worker_deaths import is_worker_death, worker_deaths_deferred
from .worker_inputs import (
    DetectorInputDataset,
    PreparedItem,
    VideoEnd,
    files_in_progress,
    make_input_loader,
)

__all__ = ["InferenceSummary", "md_detections", "run_inference"]

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
        logger.info(
            "%d of %d images already in %s; %d to go", len(files) - len(todo), len(files), writer.output, len(todo)
        )
    options = _Options(
        classes, threshold, classifier, classify_threshold, render_dir, render_threshold, all_frames, include_datetime
    )
    keep_image = classifier is not None or render_dir is not None
    summary = InferenceSummary()
    start = time.perf_counter()

    def loader_run(paths: Sequence[str], workers: int) -> list[str] | None:
        """Run ``paths`` through one loader; None when it ended, else the files its workers were on when one died."""
        dataset = DetectorInputDataset(
            root, paths, spec, keep_image=keep_image, max_pixels=max_pixels, sampling=sampling
        )
        try:
            _run_loader(
                make_input_loader(dataset, batch_size, workers), detector, batch_size, writer, options, summary, bar
            )
            return None
        except RuntimeError as exc:
            if not is_worker_death(exc):
                raise
            logger.warning("%s", exc)
        return files_in_progress(dataset)  # read after the failed loader is gone (its workers stopped)

    with tqdm(total=len(todo), unit="img", desc="detecting", dynamic_ncols=True, disable=not progress) as bar:
        remaining = todo
        while remaining:
            suspects = loader_run(remaining, num_workers)
            if suspects is None:
                break
            # A decoding process died (a native decoder crashed on a file): the files its workers were on are
            # retried one by one in a process of their own, so that the one that kills its reader becomes a
            # failure entry and the run goes on without it; the rest start again in a fresh loader.
            done = writer.done
            suspects = [f for f in suspects if f not in done]
            if not suspects:
                raise RuntimeError("a decoding process died outside any file; run again with --resume")
            for file in suspects:
                if loader_run([file], 1) is not None and file not in writer.done:
                    failure = "the decoding process died while reading this file (a crash in the decoder)"
                    end = VideoEnd(-1.0, 0, failure, None) if is_video_file(file) else None
                    with worker_deaths_deferred():
                        _handle(
                            PreparedItem(file, failure, None, None, None, video_end=end),
                            None,
                            writer,
                            {},
                            options,
                            summary,
                        )
                    bar.update(1)
            done = writer.done
            remaining = [f for f in remaining if f not in done]
    summary.seconds = time.perf_counter() - start
    return summary


def _input_size(item: PreparedItem) -> tuple:
    """The key items are batched by: the resized image's size, or for a tiled image its tiles' sizes."""
    model_input = item.model_input
    if "tiles" in model_input:
        return tuple(tuple(tile["image"].shape[-2:]) for tile in model_input["tiles"])
    return tuple(model_input["image"].shape[-2:])


def _run_loader(
    loader: Any,
    detector: Detector,
    batch_size: int,
    writer: ResultsWriter,
    options: _Options,
    summary: InferenceSummary,
    bar: tqdm,
) -> None:
    """Detect every item of ``loader`` in batches of one input size, and hand the results on in arrival order.

    Batches hold images of one resized size only. detectron2 pads a batch to its largest image, and the ViT's
    global attention sees the padding, so an image batched with larger ones would get other detections than
    alone: results would depend on the batch size, the worker count and what a resumed run had left. Grouping
    by size (rather than masking padded tokens in every attention layer) keeps the model and its speed as they
    are: in a folder of one camera model every batch is full, as before. An item whose size is rare waits at
    most ``4 * batch_size`` arrivals, then its group runs as a smaller batch. Entries are written in arrival
    order, so a video's frames are always handled before its end item.
    """
    videos: dict[str, _VideoInProgress] = {}
    pending: deque[PreparedItem] = deque()  # arrived, not yet handled, in arrival order
    outputs: dict[int, Instances] = {}  # id(item) -> its detections, once its batch ran
    max_pending = 4 * batch_size

    def waiting() -> list[PreparedItem]:
        return [item for item in pending if item.model_input is not None and id(item) not in outputs]

    def run_group(size: tuple[int, ...]) -> None:
        group = [item for item in waiting() if _input_size(item) == size][:batch_size]
        for item, out in zip(group, detector([item.model_input for item in group])):
            outputs[id(item)] = out

    def handle_ready() -> None:
        with worker_deaths_deferred():
            while pending and (pending[0].model_input is None or id(pending[0]) in outputs):
                item = pending.popleft()
                finished = _handle(item, outputs.pop(id(item), None), writer, videos, options, summary)
                bar.update(int(finished))

    for item in loader:
        pending.append(item)
        if item.model_input is not None:
            size = _input_size(item)
            if sum(_input_size(other) == size for other in waiting()) >= batch_size:
                run_group(size)
            elif len(pending) > max_pending:
                run_group(_input_size(waiting()[0]))
        handle_ready()
    while waiting():
        run_group(_input_size(waiting()[0]))
        handle_ready()
    handle_ready()


def _handle(
    item: PreparedItem,
    instances: Instances | None,
    writer: ResultsWriter,
    videos: dict[str, _VideoInProgress],
    options: _Options,
    summary: InferenceSummary,
) -> bool:
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
            entry = video_entry(
                item.rel_path,
                frame_rate=end.frame_rate,
                frames_processed=video.frames,
                detections=video.detections,
                all_frames=options.all_frames,
                incomplete=end.incomplete,
            )
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


def _detections(
    item: PreparedItem, instances: Instances, options: _Options, summary: InferenceSummary
) -> list[dict[str, Any]]:
    """MD detections of one image or frame (boxes in displayed pixels, normalised by ``detection_entry``)."""
    image = item.image.numpy() if item.image is not None else None
    detections, classified = md_detections(
        instances,
        item.original_hw,
        image,
        classes=options.classes,
        threshold=options.threshold,
        classifier=options.classifier,
        classify_threshold=options.classify_threshold,
    )
    summary.classified += classified
    return detections


def _render(
    item: PreparedItem, entry: dict[str, Any], render_dir: str | os.PathLike, writer: ResultsWriter, threshold: float
) -> None:
    out = Path(render_dir) / rendered_path(item.rel_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    picture = render_entry(
        item.image.numpy(), entry, writer.detection_categories, writer.classification_categories or {}, threshold
    )
    # Through a temporary name: a kill mid-write never leaves a truncated render under the final name.
    partial = out.with_name(out.name + ".partial")
    picture.save(partial, format="JPEG", quality=90)
    os.replace(partial, out)
