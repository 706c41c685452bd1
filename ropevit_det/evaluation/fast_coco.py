"""COCO evaluation that stays fast when detectron2 has no compiled extension.

detectron2's ``COCOEvaluator`` uses its C++ ``COCOeval_opt`` when ``detectron2._C`` is built, and
otherwise falls back to pycocotools' pure-Python ``COCOeval`` (minutes per COCO val pass). The
registry install of detectron2 used on Python 3.11 has no ``_C``. There, :class:`FasterCOCOEvaluator`
runs the same detectron2 evaluator with ``faster_coco_eval.COCOeval_faster`` (C++, PyPI
``faster-coco-eval``) as the engine; its 12 summary numbers equal the official ones (tested).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator, Literal, Sequence

from detectron2.evaluation import COCOEvaluator, DatasetEvaluator
from detectron2.evaluation import coco_evaluation as d2_coco_evaluation

__all__ = ["FasterCOCOEvaluator", "build_coco_evaluator", "detectron2_has_fast_cocoeval"]

logger = logging.getLogger(__name__)

Engine = Literal["auto", "detectron2", "faster_coco_eval", "pycocotools"]


def detectron2_has_fast_cocoeval() -> bool:
    """True when detectron2's own C++ COCOeval (``COCOeval_opt``, needs ``detectron2._C``) is available.

    This is the test detectron2 itself applies: without ``_C`` its ``COCOeval_opt`` *is* pycocotools'
    ``COCOeval``.
    """
    return d2_coco_evaluation.COCOeval_opt is not d2_coco_evaluation.COCOeval


def _faster_cocoeval_class() -> type:
    try:
        from faster_coco_eval import COCOeval_faster
    except ImportError as e:
        raise ImportError(
            "faster-coco-eval is needed for fast COCO evaluation when detectron2 has no compiled _C "
            "extension. Fix: `python -m pip install faster-coco-eval`, or pass engine='pycocotools' "
            "to use the (slow) official implementation."
        ) from e
    return COCOeval_faster


@contextlib.contextmanager
def _cocoeval_opt_replaced_by(cocoeval_fn: Callable) -> Iterator[None]:
    # detectron2's COCOEvaluator._eval_predictions looks the "fast implementation" class up in its module
    # namespace at call time (`cocoeval_fn=COCOeval_opt if self._use_fast_impl else COCOeval`). Swapping
    # that one name for the duration of the call reuses all of detectron2's evaluation code (category
    # unmapping, bbox removal for segm, maxDets handling, result tables) without copying it.
    original = d2_coco_evaluation.COCOeval_opt
    d2_coco_evaluation.COCOeval_opt = cocoeval_fn
    try:
        yield
    finally:
        d2_coco_evaluation.COCOeval_opt = original


class FasterCOCOEvaluator(COCOEvaluator):
    """detectron2's ``COCOEvaluator`` with ``faster_coco_eval.COCOeval_faster`` as the COCOeval engine.

    Same arguments, outputs and files as ``COCOEvaluator``; only the AP computation runs in
    faster-coco-eval's C++ code. As in detectron2, ``max_dets_per_image`` other than 100 goes through its
    pycocotools-based ``COCOevalMaxDets``; keypoints also keep the official COCOeval.
    """

    engine = "faster_coco_eval"

    def __init__(
        self,
        dataset_name: str,
        tasks: Sequence[str] | None = None,
        distributed: bool = True,
        output_dir: str | None = None,
        **kwargs,
    ) -> None:
        """
        Args:
            dataset_name: a registered dataset with a ``json_file`` in its metadata (or convertible to COCO).
            tasks: subset of ("bbox", "segm", "keypoints"); ``None`` infers them from the predictions.
            distributed: gather predictions from all ranks and evaluate on the main process.
            output_dir: where to write ``instances_predictions.pth`` and ``coco_instances_results.json``.
            kwargs: passed on to ``COCOEvaluator`` (``max_dets_per_image``, ``kpt_oks_sigmas``, ...),
                except ``use_fast_impl``, which this class decides.
        """
        if "use_fast_impl" in kwargs:
            raise TypeError("FasterCOCOEvaluator always uses faster-coco-eval; do not pass use_fast_impl.")
        self._cocoeval_cls = _faster_cocoeval_class()
        # use_fast_impl=False here only keeps COCOEvaluator from logging "falling back to official COCO
        # eval" when detectron2's own fast class is missing; the flag is then set to select the class
        # swapped in by _eval_predictions.
        super().__init__(dataset_name, tasks, distributed, output_dir, use_fast_impl=False, **kwargs)
        self._use_fast_impl = True

    def _make_cocoeval(self, coco_gt, coco_dt, iou_type: str):
        # faster-coco-eval's keypoint path reads `cat_img_map`, which only its own COCO class has, while
        # detectron2 hands over pycocotools' COCO objects; keypoints (not used by Mask R-CNN) therefore
        # keep the official implementation.
        cocoeval_cls = d2_coco_evaluation.COCOeval if iou_type == "keypoints" else self._cocoeval_cls
        return cocoeval_cls(coco_gt, coco_dt, iou_type)

    def _eval_predictions(self, predictions, img_ids=None):
        with _cocoeval_opt_replaced_by(self._make_cocoeval):
            super()._eval_predictions(predictions, img_ids=img_ids)


def build_coco_evaluator(
    dataset_name: str,
    output_dir: str | None,
    tasks: Sequence[str] | None = None,
    *,
    distributed: bool = True,
    engine: Engine = "auto",
    **kwargs,
) -> DatasetEvaluator:
    """The fastest correct COCO evaluator available here.

    Args:
        dataset_name: a registered dataset (``DATASETS.TEST`` entry).
        output_dir: where predictions are saved (``None``: not saved).
        tasks: subset of ("bbox", "segm", "keypoints"); ``None`` infers them from the predictions.
        distributed: gather predictions from all ranks before evaluating.
        engine: "auto" uses detectron2's C++ COCOeval when built, else faster-coco-eval;
            "detectron2", "faster_coco_eval" and "pycocotools" force one engine.
        kwargs: passed on to the evaluator (``max_dets_per_image``, ``kpt_oks_sigmas``, ...).
    """
    if engine == "auto":
        engine = "detectron2" if detectron2_has_fast_cocoeval() else "faster_coco_eval"
    if engine == "faster_coco_eval":
        evaluator: COCOEvaluator = FasterCOCOEvaluator(dataset_name, tasks, distributed, output_dir, **kwargs)
    elif engine == "detectron2":
        if not detectron2_has_fast_cocoeval():
            raise RuntimeError(
                "engine='detectron2' needs detectron2's compiled extension (detectron2._C), which this "
                "detectron2 install lacks. Fix: use engine='auto' or 'faster_coco_eval', or build detectron2 "
                "from source."
            )
        evaluator = COCOEvaluator(dataset_name, tasks, distributed, output_dir, use_fast_impl=True, **kwargs)
    elif engine == "pycocotools":
        evaluator = COCOEvaluator(dataset_name, tasks, distributed, output_dir, use_fast_impl=False, **kwargs)
    else:
        raise ValueError(
            f"Unknown COCO evaluation engine {engine!r}; use auto, detectron2, faster_coco_eval or pycocotools."
        )
    logger.info("COCO evaluation of %s with the %s engine", dataset_name, engine)
    return evaluator
