#!/usr/bin/env python
"""Glance, then look, per collection: images/s against single-pass inference and MegaDetector's models, and the
recall it loses, at 0 / 50 / 75 / 90% empty frames, in one run.

Two parts, both in this run:

* **Escalation and recall, on the demo domain.** The demo's model (the 2-block ViT of ``tests/trained_shapes.py``,
  trained here for 120 steps on synthetic shapes, 160 px) runs on held-out frames with shapes and on empty frames
  of the same domain (the background alone), once single-pass and once as the glance alone (``--demo-glance`` px).
  For each collection mix and escalation threshold: the frames escalated and the single-pass detections at or
  above the typical threshold that glancing loses (``ropevit_det.camera_trap.metrics.glance_report``). The demo
  model's own wall time, single-pass against ``GlanceDetector``, is measured on each mix too.
* **Speed at camera-trap size.** Our B/14 in ``--mode`` (default fast: bf16, windowed) at ``--size`` (the full pass)
  and at ``--glance`` (the glance), and each MegaDetector peer at its own size, inference with the same candidate
  cap, interleaved (``benchmarks/runner.py``). Per collection, our time per frame is
  ``t_glance + escalation_rate x t_full``, with the escalation rate measured above on that mix: synthetic empty
  frames are easier to dismiss than real ones, so these figures are an upper bound until
  ``ropevit-det eval-camtrap --glance-report`` is run on real frames.

    python tools/benchmark_glance.py --json output/bench_glance.json        # all peers; minutes on 2 cores
    python tools/benchmark_glance.py --peers mdv5a,cedar --quick             # the short version
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

import ropevit_det  # noqa: F401  (registers the backbone)
from benchmarks.runner import BenchmarkSettings, run_benchmark
from ropevit_det.camera_trap.detection.glance import DEFAULT_ESCALATION_THRESHOLD, GlanceDetector
from ropevit_det.camera_trap.metrics.glance_report import glance_report_from_scores
from ropevit_det.engine.predictor import Detector

logger = logging.getLogger("benchmark_glance")

EMPTY_FRACTIONS = (0.0, 0.5, 0.75, 0.9)
THRESHOLDS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024, help="our full pass, px (default: %(default)s)")
    p.add_argument("--glance", type=int, default=448, help="our glance, px (default: %(default)s)")
    p.add_argument("--mode", default="fast", help="our mode (tools/benchmark.py --ours-modes; default: fast)")
    p.add_argument(
        "--peers",
        default="mdv5a,cedar,larch,sorrel,spruce",
        help="MegaDetector peers, comma-separated (default: %(default)s)",
    )
    p.add_argument("--topk-candidates", type=int, default=1000, help="candidate cap, all models (default 1000)")
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_ESCALATION_THRESHOLD,
        help="the escalation threshold the collection figures use (default: %(default)s)",
    )
    p.add_argument(
        "--typical-threshold",
        type=float,
        default=0.2,
        help="detections at or above it count for the recall lost (default: %(default)s)",
    )
    p.add_argument("--demo-glance", type=int, default=128, help="the demo model's glance, px (its frames are 160)")
    p.add_argument("--frames", type=int, default=40, help="frames per mix on the demo domain (default: %(default)s)")
    p.add_argument(
        "--demo-dir",
        type=Path,
        default=None,
        help="where the demo model is trained (reused when it is there; default: a temporary folder)",
    )
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see PERFORMANCE_MEGADETECTOR.md)")
    p.add_argument("--quick", action="store_true", help="20 frames per mix, our full pass at 640 px, glance 320")
    p.add_argument("--tiny", action="store_true", help="smoke test: tiny models at tiny sizes (meaningless timings)")
    p.add_argument("--json", type=Path, default=None, help="write the full result as JSON here")
    return p


def _demo_model(out_dir: Path):
    # The demo's trained model, as the tests train it (tests/trained_shapes.py): reused from out_dir when there.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.trained_shapes import MODEL_OVERRIDES, ShapesDetector, load_shapes_model, train_shapes_detector

    weights = out_dir / "train" / "model_final.pth"
    if weights.is_file():
        from ropevit_det import model_zoo

        detector = ShapesDetector(
            model_zoo.get_config_file("demo/ropevit_shapes_cpu.yaml"),
            [*MODEL_OVERRIDES, "MODEL.WEIGHTS", str(weights)],
            weights,
            [],
        )
    else:
        detector = train_shapes_detector(out_dir)
    return load_shapes_model(detector)[1]


def _frames(count: int, empty: bool, seed: int) -> list[dict]:
    """Held-out frames of the demo domain, with shapes or empty, as detectron2 inputs (160 px, RGB)."""
    import numpy as np

    from ropevit_det.data.synthetic import _MAX_OBJECT_DIAMETER, _render_image, empty_frame  # the generator's own

    max_diameter = min(_MAX_OBJECT_DIAMETER, int(160 * 0.45))  # as generate_shapes_dataset draws them

    rng = np.random.default_rng(seed)
    inputs = []
    for i in range(count):
        pixels = empty_frame(160, seed=seed * 100_000 + i) if empty else _render_image(rng, 160, max_diameter)[0]
        tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        inputs.append({"image": tensor, "height": 160, "width": 160})
    return inputs


def _run(detector, inputs: list[dict], batch: int = 4) -> tuple[list, float]:
    start, outputs = time.perf_counter(), []
    for i in range(0, len(inputs), batch):
        outputs += detector(inputs[i : i + batch])
    return outputs, time.perf_counter() - start


def demo_domain(args: argparse.Namespace, frames: int) -> dict:
    """Escalation, recall lost and the demo model's own images/s per mix (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="glance_demo_") as tmp:
        model = _demo_model(args.demo_dir or Path(tmp))
    detector = Detector(model, "cpu")
    shapes, empty = _frames(frames, False, seed=1), _frames(frames, True, seed=2)
    full_shapes, _ = _run(detector, shapes)
    full_empty, _ = _run(detector, empty)
    glance_alone = GlanceDetector(detector, glance_size=args.demo_glance, escalation_threshold=2.0)
    glance_shapes, _ = _run(glance_alone, shapes)
    glance_empty, _ = _run(glance_alone, empty)
    best = [float(i.scores.max()) if len(i) else 0.0 for i in glance_shapes + glance_empty]
    confident = [int((i.scores >= args.typical_threshold).sum()) for i in full_shapes + full_empty]
    pool = glance_report_from_scores(best, confident, args.typical_threshold, THRESHOLDS)
    mixes = {}
    for fraction in EMPTY_FRACTIONS:
        n_empty = round(fraction * frames)
        idx = list(range(frames - n_empty)) + list(range(frames, frames + n_empty))
        report = glance_report_from_scores(
            [best[i] for i in idx], [confident[i] for i in idx], args.typical_threshold, THRESHOLDS
        )
        mix = shapes[: frames - n_empty] + empty[:n_empty]
        _, single_s = _run(detector, mix)
        _, glance_s = _run(
            GlanceDetector(detector, glance_size=args.demo_glance, escalation_threshold=args.threshold), mix
        )
        at = report.row_at(args.threshold)
        mixes[f"{round(100 * fraction)}"] = {
            "frames": len(mix),
            "escalation_rate": at.escalation_rate,
            "recall_lost": at.recall_lost,
            "detections_lost": at.detections_lost,
            "detections": report.detections,
            "suggested_threshold": report.suggested_threshold,
            "demo_images_per_second_single": len(mix) / single_s,
            "demo_images_per_second_glance": len(mix) / glance_s,
        }
    return {"pool": pool.as_dict(), "mixes": mixes, "glance": args.demo_glance, "threshold": args.threshold}


def camera_trap_speed(args: argparse.Namespace, size: int, glance: int) -> dict:
    peers = tuple(p for p in args.peers.split(",") if p)
    settings = BenchmarkSettings(
        sizes=(size, glance),
        batches=(1,),
        tasks=("inference",),
        ours_modes=(args.mode,),
        vitdet_modes=(),
        peers=peers,
        boxes_only=True,
        interleave=True,
        topk_candidates=args.topk_candidates,
        warmup=args.warmup,
        repeats=args.repeats,
        accuracy=False,
        count_flops=False,
        tiny=args.tiny,
        threads=args.threads,
    )
    result = run_benchmark(settings)
    seconds = {(r["model"], r["size"]): r["seconds_median"] for r in result["rows"] if r["task"] == "inference"}
    return {
        "full_s": seconds[("ours", size)],
        "glance_s": seconds[("ours", glance)],
        "peers_s": {p: next(s for (m, _), s in seconds.items() if m == p) for p in peers},
        "machine": result["machine"],
    }


def collection_table(demo: dict, speed: dict) -> dict:
    table = {}
    for mix, figures in demo["mixes"].items():
        ours_s = speed["glance_s"] + figures["escalation_rate"] * speed["full_s"]
        row = {
            "escalation_rate": figures["escalation_rate"],
            "recall_lost": figures["recall_lost"],
            "images_per_second_glance": 1 / ours_s,
            "images_per_second_single": 1 / speed["full_s"],
            "speedup_glance_over_single": speed["full_s"] / ours_s,
        }
        for peer, peer_s in speed["peers_s"].items():
            row[f"images_per_second_glance_vs_{peer}"] = peer_s / ours_s
            row[f"images_per_second_single_vs_{peer}"] = peer_s / speed["full_s"]
        table[mix] = row
    return table


def markdown(result: dict) -> str:
    speed, demo = result["speed"], result["demo"]
    peers = list(speed["peers_s"])
    lines = [
        f"Our full pass {result['size']} px: {speed['full_s']:.3f} s, glance {result['glance']} px: "
        f"{speed['glance_s']:.3f} s; "
        + ", ".join(f"{p} {s:.3f} s" for p, s in speed["peers_s"].items())
        + f" (inference, batch 1, {speed['machine']['threads']} thread(s), load "
        f"{speed['machine']['load_average_at_start']}).",
        "",
        "| empty frames | escalated | recall lost | images/s single | images/s glance | glance / single | "
        + " | ".join(f"vs {p}" for p in peers)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(peers),
    ]
    for mix, row in result["collection"].items():
        lines.append(
            f"| {mix}% | {100 * row['escalation_rate']:.1f}% | {100 * row['recall_lost']:.2f}% | "
            f"{row['images_per_second_single']:.3f} | {row['images_per_second_glance']:.3f} | "
            f"{row['speedup_glance_over_single']:.2f}x | "
            + " | ".join(f"{row[f'images_per_second_glance_vs_{p}']:.2f}x" for p in peers)
            + " |"
        )
    lines += [
        "",
        f"Demo domain (160 px frames, glance {demo['glance']} px, escalation threshold {demo['threshold']}): "
        "the demo model's own images/s, single-pass / glance-then-look: "
        + "; ".join(
            f"{mix}% empty {m['demo_images_per_second_single']:.1f} / {m['demo_images_per_second_glance']:.1f}"
            for mix, m in demo["mixes"].items()
        )
        + ".",
        "",
        "Escalation report on all demo frames (shapes and empty):",
        "",
        "| threshold | escalated | detections lost | recall lost |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['threshold']:g} | {100 * r['escalation_rate']:.1f}% | {r['detections_lost']} | "
        f"{100 * r['recall_lost']:.2f}% |"
        for r in demo["pool"]["rows"]
    ]
    lines += ["", f"Highest threshold that loses nothing there: {demo['pool']['suggested_threshold']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[benchmark_glance] %(message)s")
    size, glance, frames = (640, 320, 20) if args.quick else (args.size, args.glance, args.frames)
    if args.tiny:
        size, glance, frames = 64, 32, 4
    if args.threads:
        torch.set_num_threads(args.threads)
    demo = demo_domain(args, frames)
    speed = camera_trap_speed(args, size, glance)
    result = {
        "size": size,
        "glance": glance,
        "mode": args.mode,
        "demo": demo,
        "speed": speed,
        "collection": collection_table(demo, speed),
        "command": "python tools/benchmark_glance.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
