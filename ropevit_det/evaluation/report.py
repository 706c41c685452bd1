"""What ``--eval-only`` leaves behind for a results table: the AP table in the layout of ViTDet's README, and a
JSON with every metric plus what reproduces it (config hash, weights sha256, code version, software versions).

    eval_report.md    | Name | pre-train | box AP | mask AP |   (one row per test set, and per TTA run)
    eval_report.json  {"metrics", "config", "config_sha256", "weights", "weights_sha256", "pretrain",
                       "code_version", "versions", "datasets", "created"}
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["code_version", "results_table", "software_versions", "weights_sha256", "write_eval_report"]

TASKS = ("bbox", "segm")
REPORT_NAME = "eval_report"
_DISTRIBUTIONS = (
    "ropevit_det",
    "torch",
    "torchvision",
    "detectron2",
    "sal-detectron2",
    "birder",
    "numpy",
    "pycocotools",
    "faster-coco-eval",
    "lvis",
    "fvcore",
)


def code_version() -> str:
    """``git describe --always --dirty --tags`` when the package sits in a git clone, else the package version."""
    import ropevit_det

    root = Path(ropevit_det.__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if out.returncode == 0 and out.stdout.strip():
                return f"git {out.stdout.strip()}"
        except (OSError, subprocess.TimeoutExpired):
            pass  # no git executable: fall back to the package version below
    return f"ropevit_det {ropevit_det.__version__}"


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def weights_sha256(weights: str) -> str | None:
    """sha256 of the weights file as evaluated (``birder://`` names resolve to their cached file); None if absent."""
    if not weights:
        return None
    from detectron2.utils.file_io import PathManager

    from ..checkpoint.birder_format import sha256_of

    local = PathManager.get_local_path(weights)
    return sha256_of(local) if os.path.isfile(local) else None


def _rows(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(suffix, {task: metrics})`` per test set and TTA run; detectron2 flattens a single test set."""
    if any(k.removesuffix("_TTA") in TASKS for k in results):
        groups: dict[str, dict] = {}
        for key, metrics in results.items():
            groups.setdefault(" (TTA)" if key.endswith("_TTA") else "", {})[key.removesuffix("_TTA")] = metrics
        return sorted(groups.items())
    return [(f" [{name}]{suffix}", tasks) for name, sub in results.items() for suffix, tasks in _rows(sub)]


def results_table(results: Mapping[str, Any], *, name: str, pretrain: str) -> str:
    """The AP columns of ViTDet's README tables (box AP, mask AP), one row per test set / TTA run."""
    lines = ["| Name | pre-train | box AP | mask AP |", "| --- | --- | --- | --- |"]
    for suffix, tasks in _rows(results):
        ap = [f"{tasks[t]['AP']:.1f}" if t in tasks and "AP" in tasks[t] else "-" for t in TASKS]
        lines.append(f"| {name}{suffix} | {pretrain} | {ap[0]} | {ap[1]} |")
    return "\n".join(lines) + "\n"


def write_eval_report(
    output_dir: str | os.PathLike,
    *,
    results: Mapping[str, Any],
    config_name: str,
    config_text: str,
    weights: str,
    pretrain: str | None,
    datasets: Sequence[str],
) -> tuple[Path, Path]:
    """Write ``eval_report.md`` and ``eval_report.json`` into ``output_dir``; return both paths.

    Args:
        results: what detectron2's evaluation returned (``{"bbox": {...}, "segm": {...}, "bbox_TTA": ...}``).
        config_name: the config as given (path or zoo name); the table's row name is its stem.
        config_text: the full, resolved config (yacs ``cfg.dump()``, Lazy YAML), hashed for the record.
        weights: the evaluated weights (path or ``birder://`` name).
        pretrain: the initialisation the evaluated model was trained from, when known.
        datasets: the test sets.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(config_name).stem
    record = {
        "metrics": json.loads(json.dumps(results, default=float)),
        "config": config_name,
        "config_sha256": hashlib.sha256(config_text.encode("utf-8")).hexdigest(),
        "weights": weights,
        "weights_sha256": weights_sha256(weights),
        "pretrain": pretrain,
        "code_version": code_version(),
        "versions": software_versions(),
        "datasets": list(datasets),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    md, js = out / f"{REPORT_NAME}.md", out / f"{REPORT_NAME}.json"
    md.write_text(results_table(results, name=name, pretrain=pretrain or "?"), encoding="utf-8")
    js.write_text(json.dumps(record, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    return md, js
