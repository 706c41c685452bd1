"""The camera-trap report for people: plain-text tables and a precision/recall plot."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def format_table(report: Mapping[str, Any]) -> str:
    """The report as plain-text tables (image level next to sequence level, then boxes)."""
    from tabulate import tabulate

    levels = [("image", report["image_level"])]
    if report["sequence_level"] is not None:
        levels.append(("sequence", report["sequence_level"]))
    rows = []
    for key, label in [
        ("n", "count"),
        ("n_positive", f"with {report['positive_class']}"),
        ("n_empty", "empty"),
        ("tp", "TP"),
        ("fp", "FP"),
        ("fn", "FN"),
        ("tn", "TN"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("f1", "F1"),
        ("empty_frame_fp_rate", "empty-frame FP rate"),
        ("average_precision", "average precision"),
    ]:
        rows.append([label] + [_fmt(level[key]) for _, level in levels])
    for key, label, field_name in [
        ("recall_at_precision", "recall @ precision {}", "recall"),
        ("precision_at_recall", "precision @ recall {}", "precision"),
    ]:
        first = report["image_level"][key]
        target = (first or {}).get("target_precision" if field_name == "recall" else "target_recall")
        values = []
        for _, level in levels:
            point = level[key]
            values.append("not reached" if point is None else f"{point[field_name]:.4f} (thr {point['threshold']:.3f})")
        rows.append([label.format(f"{target:g}" if target is not None else "target")] + values)
    header = ["metric"] + [f"{name} level" for name, _ in levels]
    text = [
        f"{report['positive_class']} present, threshold {report['threshold']:.3f}",
        tabulate(rows, headers=header, tablefmt="github", disable_numparse=True),
    ]
    boxes = report.get("boxes")
    if boxes is not None:
        text.append(
            tabulate(
                [
                    ["COCO AP", _fmt(boxes["AP"])],
                    ["AP50", _fmt(boxes["AP50"])],
                    ["images", boxes["n_images"]],
                    ["ground-truth boxes", boxes["n_gt_boxes"]],
                    ["detections", boxes["n_detections"]],
                ],
                headers=["boxes", "value"],
                tablefmt="github",
                disable_numparse=True,
            )
        )
    by_size = report.get("recall_by_size")
    if by_size is not None:
        text.append(
            tabulate(
                [
                    [band, by_size[band]["boxes"], by_size[band]["found"], _fmt(by_size[band]["recall"])]
                    for band in ("small", "medium", "large")
                ],
                headers=[
                    f"box size (COCO area bands), threshold {by_size['threshold']:.3f}",
                    "ground-truth boxes",
                    "found",
                    "recall",
                ],
                tablefmt="github",
                disable_numparse=True,
            )
        )
    m = report["matching"]
    text.append(
        f"matched {m['matched']} of {m['results']} results; left out: {m['results_without_ground_truth']} "
        f"results without ground truth, {m['ground_truth_without_result']} ground-truth images without "
        f"result, {m['failed_images']} failed images, {m['ignored_only_images']} ignored-only images"
    )
    return "\n\n".join(text)


def plot_pr_curves(report: Mapping[str, Any], output: str | Path) -> Path:
    """Save the image- (and sequence-) level precision/recall curves with the threshold's operating point."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    for name, level in (("image", report["image_level"]), ("sequence", report["sequence_level"])):
        if level is None:
            continue
        curve = level["curve"]
        ap = level["average_precision"]
        label = f"{name} level" + (f" (AP {ap:.3f})" if ap is not None else "")
        # Start the step curve at recall 0 with the first point's precision, as PR plots usually do.
        recall = [0.0] + curve["recall"] if curve["recall"] else []
        precision = curve["precision"][:1] + curve["precision"]
        (line,) = ax.step(recall, precision, where="post", label=label)
        if level["precision"] is not None and level["recall"] is not None:
            ax.plot([level["recall"]], [level["precision"]], "o", color=line.get_color())
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.set_title(f"{report['positive_class']} present (dot: threshold {report['threshold']:.2f})")
    ax.legend(loc="lower left")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, bbox_inches="tight")
    plt.close(fig)
    return output
