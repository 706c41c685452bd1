r"""Images/s of ``infer --num-gpus P`` against one process, on the same machine and inputs, in one run.

Writes a random-weight detector checkpoint of ``--config`` and synthetic JPEG frames (or uses ``--input``),
then runs ``python -m ropevit_det infer`` once per process count, each process on ``cores / P`` threads, and reads each
rank's "N images in S s" log line: throughput = all images / the slowest rank's seconds (model loading and
process start-up are left out, as they do not grow with the input).

    python tools/benchmark_scaling.py --config camera_trap/ropevit_faster_rcnn_cct.yaml --images 24 \
        INPUT.MIN_SIZE_TEST 480 INPUT.MAX_SIZE_TEST 640
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ropevit_det.engine.cpu_threads import threads_per_process

_RANK_LINE = re.compile(r"(\d+) images in ([\d.]+) s \(")


class RunFailed(RuntimeError):
    """An ``infer`` run of the comparison failed, or gave nothing to time; the message says which and why."""


def write_frames(folder: Path, count: int, size: tuple[int, int] = (2048, 1536), seed: int = 0) -> None:
    """Camera-trap-sized JPEGs with texture (smooth noise), so decoding costs what real frames cost."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize(size, Image.Resampling.BILINEAR).save(folder / f"IMG_{i:04d}.JPG", quality=90)


def random_checkpoint(config: str, opts: list[str], path: Path) -> None:
    from detectron2.modeling import build_model

    from ropevit_det.cli.common import config_arg
    from ropevit_det.config import load_config

    cfg = load_config(config_arg(config), [*opts, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"])
    torch.manual_seed(0)
    torch.save({"model": build_model(cfg).state_dict()}, path)


def images_per_second(processes: int, args: argparse.Namespace, weights: Path, frames: str, out: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process(processes))}
    # The package's own entry point (installed, or on PYTHONPATH), so the run works from any working folder.
    command = [
        sys.executable,
        "-m",
        "ropevit_det",
        "infer",
        "--config",
        args.config,
        "--weights",
        str(weights),
        "--input",
        frames,
        "--output",
        str(out),
        "--overwrite",
        "--no-progress",
        "--batch-size",
        str(args.batch_size),
        "--num-workers",
        str(args.num_workers),
        "--num-gpus",
        str(processes),
        *args.opts,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RunFailed(f"the {processes}-process run failed:\n{proc.stderr[-3000:]}")
    ranks = [(int(n), float(s)) for n, s in _RANK_LINE.findall(proc.stderr)]
    if len(ranks) != processes:
        raise RunFailed(f"expected {processes} rank summaries, found {len(ranks)}:\n{proc.stderr[-3000:]}")
    slowest = max(s for _, s in ranks)
    if slowest <= 0:  # the log's rounding left nothing to divide by: a run far too short to time
        raise RunFailed(
            f"the {processes}-process run took under 0.01 s per rank; give more images (--images) or a larger test size"
        )
    return sum(n for n, _ in ranks) / slowest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default="camera_trap/ropevit_faster_rcnn_cct.yaml", help="detector config")
    parser.add_argument("--input", default=None, help="images to use (default: --images synthetic 2048x1536 JPEGs)")
    parser.add_argument("--images", type=int, default=24, help="synthetic frames (default: %(default)s)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="(default: 1 2)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--num-workers", type=int, default=1, help="decoding workers per process (default: 1)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        weights = tmp_path / "random_detector.pth"
        random_checkpoint(args.config, args.opts, weights)
        frames = args.input
        if frames is None:
            (tmp_path / "frames").mkdir()
            write_frames(tmp_path / "frames", args.images)
            frames = str(tmp_path / "frames")
        try:
            rates = {p: images_per_second(p, args, weights, frames, tmp_path / f"out_{p}.json") for p in args.processes}
        except RunFailed as e:
            print(f"ERROR: {e}", file=sys.stderr)
            return 1
    base = rates[args.processes[0]]
    print(f"| processes | threads each | images/s | vs {args.processes[0]} |")
    print("| --- | --- | --- | --- |")
    for p, rate in rates.items():
        print(f"| {p} | {threads_per_process(p)} | {rate:.2f} | {rate / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
