r"""Checkpoint cost over a long run: N synthetic entries through ``ResultsWriter``, from a fake detector.

Prints the writer's time per 1,000 images (each block: 1,000 journal lines, then the fsync checkpoint) over
the first and the last blocks of the run, and their ratio; a checkpoint cost that grows with the run
would show here as a ratio far above 1. Also prints the one-off final write of the results file.

    python tools/benchmark_journal.py                          # 1,000,000 entries (a few minutes)
    python tools/benchmark_journal.py --entries 20000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ropevit_det.camera_trap.results.md_format import detection_entry, image_entry, make_info
from ropevit_det.camera_trap.results.writer import ResultsWriter

BLOCK = 1000


def fake_detections(rng: random.Random) -> list[dict]:
    """What a detector gives a camera-trap frame: mostly 0-3 boxes, as MD entries."""
    detections = []
    for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
        x, y = rng.uniform(0, 1500), rng.uniform(0, 1000)
        detections.append(
            detection_entry(
                rng.choice("123"), rng.random(), [x, y, x + rng.uniform(20, 500), y + rng.uniform(20, 500)], 2048, 1536
            )
        )
    return detections


def run(entries: int, folder: Path, checkpoint_every: int = BLOCK, edge_blocks: int = 20, seed: int = 0) -> dict:
    rng = random.Random(seed)
    blocks: list[float] = []
    writer = ResultsWriter(folder / "results.json", info=make_info("fake"), checkpoint_every=checkpoint_every)
    for start in range(0, entries, BLOCK):
        # The fake detector runs outside the timer: only the writer's work is measured.
        batch = [
            image_entry(f"cam{(start + i) % 50:02d}/IMG_{start + i:07d}.JPG", fake_detections(rng))
            for i in range(min(BLOCK, entries - start))
        ]
        tick = time.perf_counter()
        for entry in batch:
            writer.add(entry)
        blocks.append(time.perf_counter() - tick)
    tick = time.perf_counter()
    writer.finalize()
    final_write = time.perf_counter() - tick
    edge = min(edge_blocks, max(1, len(blocks) // 2))
    first, last = statistics.median(blocks[:edge]), statistics.median(blocks[-edge:])
    return {
        "entries": entries,
        "checkpoint_every": checkpoint_every,
        "edge_blocks": edge,
        "first_ms_per_1000": 1000 * first,
        "last_ms_per_1000": 1000 * last,
        "last_over_first": last / first,
        "final_write_s": final_write,
        "results_mb": (folder / "results.json").stat().st_size / 1e6,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="synthetic images (default: %(default)s)")
    parser.add_argument("--dir", default=None, help="where the journal and results go (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.entries < 2 * BLOCK:
        print(f"error: --entries must be at least {2 * BLOCK}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        result = run(args.entries, Path(folder))
    print(
        f"| entries | writer ms / 1,000 images, first {result['edge_blocks']} blocks (median) | last blocks | "
        "last / first | final results file write | size |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print(
        f"| {result['entries']:,} | {result['first_ms_per_1000']:.1f} | {result['last_ms_per_1000']:.1f} | "
        f"{result['last_over_first']:.2f} | {result['final_write_s']:.1f} s | {result['results_mb']:.0f} MB |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
