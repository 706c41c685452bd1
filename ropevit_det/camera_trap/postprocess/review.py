"""An HTML review page of a results file: MegaDetector's ``postprocess_batch_results`` on our output.

Without ground truth the page samples frames with and without detections (per category), which is how a
user picks a threshold. With ground truth (CCT or plain COCO) it shows true/false positive/negative pages and
the precision/recall curve. The page is MegaDetector's own; this module only prepares its inputs:

* ground-truth ``file_name`` values are matched to the results' paths the way our metrics match them
  (:class:`~ropevit_det.camera_trap.data.matching.TrailingPathMatcher`) and a CCT copy with the results' spelling is
  written next to the page, because MegaDetector matches by exact path;
* an image with no annotation counts as empty, as in our metrics: MegaDetector leaves such images out unless
  its ``#NO_LABELS#`` token is among the negative classes, and plain COCO ground truth has no other way to
  say "empty". Category names that mean empty (``empty``, ``blank``, ...) are negative too.

MegaDetector writes file and category names into the page as they are, unescaped. Results files travel, so
entries whose ``file`` leaves the image folder (absolute, ``..``) and names holding HTML markup (``<``, ``>``,
``"``) are refused before MegaDetector sees them; the page title and model name, which this module passes,
are escaped.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import UserInputError
from ..data.cct import read_cct_json
from ..data.class_mapping import is_empty_category
from ..data.matching import MatchReport, TrailingPathMatcher, check_relative_paths, strip_path_prefix
from ..results.md_format import load_results
from .md_package import import_md

__all__ = ["NO_LABELS", "ReviewOptions", "ReviewSummary", "blurred_mirror", "review_ground_truth", "write_review"]

logger = logging.getLogger(__name__)

# MegaDetector's token for "an image without annotations is a negative (empty) image".
NO_LABELS = "#NO_LABELS#"
SORT_ORDERS = ("filename", "confidence", "random")
# What would open a tag or leave an attribute in MegaDetector's unescaped page ("&" alone only starts an entity).
HTML_MARKUP = frozenset('<>"')


def check_no_markup(names: Sequence[str], *, what: str, source: str | Path) -> None:
    """Refuse names that MegaDetector would write into its page as HTML markup.

    Raises:
        ValueError: naming ``source``, ``what`` and the first name at fault.
    """
    bad = [str(name) for name in names if HTML_MARKUP & set(str(name))]
    if bad:
        raise ValueError(
            f'{source}: {len(bad)} {what} hold HTML markup (< > "), e.g. {bad[0]!r}; MegaDetector '
            "writes them into the review page unescaped, so they are refused: rename them"
        )


BLURRED_IMAGES = "blurred_images"  # the folder of blurred copies a page is made from (ReviewOptions.blur)


@dataclass
class ReviewOptions:
    """What :func:`write_review` passes to MegaDetector's ``PostProcessingOptions``.

    Args:
        threshold: detections at or above it are drawn and count as positive (default: the results file's
            ``typical_detection_threshold``, else 0.2).
        gt_file: CCT or COCO ground truth; adds the TP/FP/FN/TN pages and the precision/recall curve.
        gt_strip_prefix, gt_add_prefix: rewrite ground-truth ``file_name`` before matching, as in our metrics.
        num_samples: frames rendered per run (-1: all).
        image_width: width of the rendered frames, pixels.
        workers: rendering threads (0: render in this thread).
        sort_order: ``filename``, ``confidence`` or ``random``.
        job_name: the page title (default: the results file name).
        quiet: keep MegaDetector's progress output off stdout.
        blur: detection category names (e.g. ``person``) whose boxes are blurred in every frame the page shows:
            the page is made from blurred copies (:mod:`~ropevit_det.camera_trap.privacy`) in
            ``blurred_images/`` next to it, and links to them instead of the originals.
    """

    threshold: float | None = None
    gt_file: str | Path | None = None
    gt_strip_prefix: str | None = None
    gt_add_prefix: str = ""
    num_samples: int = 1000
    image_width: int = 1000
    workers: int = 4
    sort_order: str = "filename"
    job_name: str | None = None
    quiet: bool = False
    blur: Sequence[str] = ()


@dataclass
class ReviewSummary:
    """Where the page is and what went into it."""

    index_html: Path
    threshold: float
    images: int
    missing_images: list[str] = field(default_factory=list)
    ground_truth: Path | None = None
    negative_classes: list[str] = field(default_factory=list)
    gt_matching: MatchReport | None = None
    blurred_images: Path | None = None


def review_ground_truth(
    gt_file: str | Path,
    result_files: Sequence[str],
    output: str | Path,
    *,
    strip_prefix: str | None = None,
    add_prefix: str = "",
) -> tuple[Path, list[str], MatchReport]:
    """Write the CCT copy of ``gt_file`` that MegaDetector's review page reads.

    Only images matched to a result are kept, each with ``file_name`` spelled as in the results.

    Returns:
        ``(written file, negative class names for MegaDetector, match report)``.

    Raises:
        ValueError: no result matches a ground-truth image, two ground-truth images share a name, or a
            category name holds HTML markup.
    """
    data = read_cct_json(gt_file)
    check_no_markup([c.get("name", "") for c in data["categories"]], what="category names", source=gt_file)
    by_name: dict[str, dict[str, Any]] = {}
    for image in data["images"]:
        name = add_prefix + strip_path_prefix(image["file_name"], strip_prefix)
        if name in by_name:
            raise ValueError(f"{gt_file}: several images have file_name {name!r}; cannot match results to them")
        by_name[name] = image
    found, report = TrailingPathMatcher(by_name).match_all(result_files)
    if report.matched == 0:
        raise UserInputError(
            f"no result matches an image of {gt_file}: {report.describe('results')}. "
            "Rewrite the ground-truth file names with a prefix to strip or add.",
            argument="gt_prefix",
        )
    images = [{**by_name[gt_name], "file_name": result_file} for result_file, gt_name in sorted(found.items())]
    kept_ids = {image["id"] for image in images}
    out = {
        "info": {"description": f"{Path(gt_file).name}, file names matched to a results file"},
        "images": images,
        "annotations": [a for a in data["annotations"] if a.get("image_id") in kept_ids],
        "categories": data["categories"],
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out), encoding="utf-8")
    negatives = [NO_LABELS] + sorted({str(c["name"]) for c in data["categories"] if is_empty_category(str(c["name"]))})
    return output, negatives, report


def blurred_mirror(
    results: Mapping[str, Any],
    image_dir: str | Path,
    output_dir: str | Path,
    categories: Sequence[str],
    threshold: float,
) -> Path:
    """``output_dir/blurred_images``: blurred copies of the images with a detection of ``categories``, links to
    the others; the folder a page or tiles are then made from, so that they never show such a box.

    Boxes are blurred from :class:`~ropevit_det.camera_trap.privacy.copies.BlurOptions`' threshold, or from
    ``threshold`` when that is lower: every box a page draws is blurred.
    """
    from ..privacy.copies import BlurOptions, blur_copies

    folder = Path(output_dir) / BLURRED_IMAGES
    default = BlurOptions()
    blur_copies(
        results,
        image_dir,
        folder,
        BlurOptions(categories=list(categories), unblurred="link", threshold=min(default.threshold, float(threshold))),
    )
    return folder


def write_review(
    results_file: str | Path, image_dir: str | Path, output_dir: str | Path, options: ReviewOptions | None = None
) -> ReviewSummary:
    """Run MegaDetector's ``process_batch_results`` on a results file; returns where ``index.html`` is.

    Raises:
        FileNotFoundError: none of the results' images is under ``image_dir``.
        ValueError: an option is out of range, the ground truth matches no result, an entry's ``file`` leaves
            ``image_dir``, or a file or category name holds HTML markup.
        ImportError: megadetector's post-processing is not installed (the message says how).
    """
    options = options or ReviewOptions()
    if options.sort_order not in SORT_ORDERS:
        raise UserInputError(f"must be one of {SORT_ORDERS}, got {options.sort_order!r}", argument="sort_order")
    if options.threshold is not None and not 0.0 <= options.threshold <= 1.0:
        raise UserInputError(f"must be in 0..1, got {options.threshold}", argument="threshold")
    results = load_results(results_file)
    image_dir, output_dir = Path(image_dir), Path(output_dir)
    check_relative_paths([e["file"] for e in results["images"]], source=str(results_file), root=str(image_dir))
    check_no_markup([e["file"] for e in results["images"]], what="file names", source=results_file)
    check_no_markup(
        [*results["detection_categories"].values(), *(results.get("classification_categories") or {}).values()],
        what="category names",
        source=results_file,
    )
    files = [e["file"] for e in results["images"] if e.get("failure") is None and e.get("detections") is not None]
    missing = [f for f in files if not (image_dir / f).is_file()]
    if files and len(missing) == len(files):
        raise FileNotFoundError(
            f"none of the {len(files)} images of {results_file} is under {image_dir} "
            f"(e.g. {image_dir / missing[0]}); pass the folder the results' paths start from"
        )
    if missing:
        logger.warning(
            "%d of %d images are not under %s and cannot be shown (e.g. %s)",
            len(missing),
            len(files),
            image_dir,
            missing[0],
        )
    threshold = options.threshold
    if threshold is None:
        threshold = float(results.get("info", {}).get("detector_metadata", {}).get("typical_detection_threshold", 0.2))
    blurred_dir = None
    if options.blur:
        blurred_dir = blurred_mirror(results, image_dir, output_dir, options.blur, threshold)
        image_dir = blurred_dir

    pbr = import_md("postprocessing.postprocess_batch_results")
    md = pbr.PostProcessingOptions()
    md.md_results_file = str(results_file)
    md.output_dir = str(output_dir)
    md.image_base_dir = str(image_dir)
    md.confidence_threshold = float(threshold)
    md.num_images_to_sample = options.num_samples
    md.viz_target_width = options.image_width
    md.parallelize_rendering = options.workers > 0
    md.parallelize_rendering_n_cores = max(1, options.workers)
    md.html_sort_order = options.sort_order
    md.job_name_string = html.escape(options.job_name or Path(results_file).name)
    md.model_version_string = html.escape(str(results.get("info", {}).get("detector", "unknown")))
    summary = ReviewSummary(
        index_html=output_dir / "index.html",
        threshold=float(threshold),
        images=len(files),
        missing_images=missing,
        blurred_images=blurred_dir,
    )
    if options.gt_file is not None:
        gt_copy, negatives, report = review_ground_truth(
            options.gt_file,
            [e["file"] for e in results["images"]],
            output_dir / "ground_truth_for_review.json",
            strip_prefix=options.gt_strip_prefix,
            add_prefix=options.gt_add_prefix,
        )
        if report.unmatched or report.ambiguous:
            logger.warning(
                "results without ground truth (not on the TP/FP/FN/TN pages): %s", report.describe("results")
            )
        md.ground_truth_json_file = str(gt_copy)
        md.negative_classes = negatives
        summary.ground_truth, summary.negative_classes, summary.gt_matching = gt_copy, negatives, report
    # MegaDetector reports progress with print() and tqdm; a library caller may not want that on stdout.
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if options.quiet else contextlib.nullcontext():
        produced = pbr.process_batch_results(md)
    summary.index_html = Path(produced.output_html_file)
    return summary
