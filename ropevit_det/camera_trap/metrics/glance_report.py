"""What glance-then-look costs on a validation set: escalation rate and recall lost against single-pass inference.

Input: two MegaDetector-format results of the same images, one from single-pass inference (``ropevit-det infer``)
and one from the glance alone (``infer --glance PX --glance-threshold 2``: scores never reach 2, so no frame is
escalated and each entry holds the glance's own detections). At an escalation threshold ``t`` a frame gets the full
pass when its best
glance detection scores at least ``t``; an escalated frame then gets exactly the single-pass detections. A
single-pass detection at or above the typical threshold is *lost* when its frame is not escalated. No ground
truth is needed: the report measures glancing against single-pass inference, not the detector against the truth.

Below the glance run's output threshold, the rows are pessimistic: candidates under it were never written, so a
frame whose glance had only such candidates counts as not escalated (and its detections as lost).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["GlanceReport", "GlanceRow", "format_glance_report", "glance_report", "glance_report_from_scores"]

DEFAULT_THRESHOLDS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class GlanceRow:
    threshold: float
    escalation_rate: float  # fraction of frames sent to the full pass
    detections_lost: int  # single-pass detections >= typical on frames not escalated
    recall_lost: float  # detections_lost / single-pass detections >= typical (0 when there are none)


@dataclass(frozen=True)
class GlanceReport:
    frames: int
    typical_threshold: float
    detections: int  # single-pass detections >= typical
    rows: list[GlanceRow]
    suggested_threshold: float | None  # the highest threshold that loses nothing; None when every one loses some

    def row_at(self, threshold: float) -> GlanceRow:
        return min(self.rows, key=lambda r: abs(r.threshold - threshold))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def glance_report_from_scores(
    glance_best: Sequence[float],
    full_confident: Sequence[int],
    typical_threshold: float,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> GlanceReport:
    """``glance_best[i]``: the best glance score of frame i (0 when none); ``full_confident[i]``: its single-pass
    detections scoring at least ``typical_threshold``."""
    if len(glance_best) != len(full_confident):
        raise ValueError(f"{len(glance_best)} glance frames against {len(full_confident)} single-pass frames")
    frames, total = len(glance_best), sum(full_confident)
    rows = []
    for t in sorted(thresholds):
        escalated = [best >= t for best in glance_best]
        lost = sum(n for n, up in zip(full_confident, escalated) if not up)
        rows.append(GlanceRow(t, sum(escalated) / frames if frames else 0.0, lost, lost / total if total else 0.0))
    lossless = [r.threshold for r in rows if r.detections_lost == 0]
    return GlanceReport(frames, typical_threshold, total, rows, max(lossless) if lossless else None)


def _by_file(results: Mapping[str, Any], label: str) -> dict[str, list[dict]]:
    images = results.get("images")
    if not isinstance(images, list):
        raise ValueError(f"the {label} results have no 'images' list: is it a MegaDetector-format file?")
    return {im["file"]: (im.get("detections") or []) for im in images if "failure" not in im or not im["failure"]}


def glance_report(
    full_results: Mapping[str, Any],
    glance_results: Mapping[str, Any],
    typical_threshold: float,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> GlanceReport:
    """The report on the images both results hold (see the module docstring)."""
    full, glance = _by_file(full_results, "single-pass"), _by_file(glance_results, "glance")
    files = sorted(full.keys() & glance.keys())
    if not files:
        raise ValueError("the single-pass and glance results share no image: were they run on the same input?")
    escalated = [im for im in glance_results["images"] if "full" in (im.get("passes") or ())]
    if escalated:
        raise ValueError(
            f"the glance results escalated {len(escalated)} image(s) (e.g. {escalated[0]['file']}): "
            "run the glance alone, with --glance-threshold 2"
        )
    best = [max((d["conf"] for d in glance[f]), default=0.0) for f in files]
    confident = [sum(d["conf"] >= typical_threshold for d in full[f]) for f in files]
    return glance_report_from_scores(best, confident, typical_threshold, thresholds)


def format_glance_report(report: GlanceReport, typical: float | None = None) -> str:
    lines = [
        f"Glance, then look: {report.frames} frames, {report.detections} single-pass detections >= "
        f"{report.typical_threshold} (the typical threshold)",
        "",
        "| escalation threshold | frames escalated | detections lost | recall lost |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.threshold:g} | {100 * r.escalation_rate:.1f}% | {r.detections_lost} | {100 * r.recall_lost:.2f}% |"
        for r in report.rows
    ]
    if report.suggested_threshold is None:
        lines += [
            "",
            "No threshold in the table loses nothing: glancing loses detections on this set; lower "
            "--glance-threshold below the table, or glance at a larger size.",
        ]
    else:
        lines += [
            "",
            f"Suggested --glance-threshold: {report.suggested_threshold:g} (the highest that loses no "
            f"single-pass detection >= {report.typical_threshold} here; escalates "
            f"{100 * report.row_at(report.suggested_threshold).escalation_rate:.1f}% of frames).",
        ]
    return "\n".join(lines)
