r"""Small objects in 4K frames: plain inference, tiles, tiles + full frame and high resolution, in one run.

Builds a synthetic set for it (:mod:`ropevit_det.data.synthetic_frames`): ``--frames`` frames of 3840 x 2160 with
``--small`` small shapes (16-64 px across) among 3 large ones (150-300 px), plus as many empty frames, and trains
the tests'
shapes detector (``tests/trained_shapes.py``: the demo's recipe, a 2-block ViT, 120 steps at 160 px; cached
under ``--work-dir``). Then runs the batch job (``run_batch_job``, as ``ropevit-det infer`` does) once per mode,
each in its own process so that its peak memory is its own:

* ``plain``: the frame at the model's test size (``--test-size``, default 720 / 1280: a third of a 4K frame, as
  MegaDetector runs at 1280 px);
* ``tiles``: SAHI tiles of ``--tile-size`` px (each resized to the test size: 1280 px tiles at 720 px), merged;
* ``tiles+full``: the tiles and the full frame, merged;
* ``high-res``: the full frame at ``--high-res`` (default 1216 / 2160: the scale the default tiles run at) with
  windowed attention (``--window`` patches, every block windowed), the ViT's own answer.

Reports, per mode: recall at ``--threshold`` by COCO size band (area in full-image pixels; an object is found
by a detection with IoU >= 0.3), false positives per
empty frame, seconds per frame (the batch loop's own time: decoding included, model loading not) and peak
memory (resident set of the mode's process; on a GPU, the largest CUDA allocation).

    python tools/benchmark_tiles.py --frames 2 --json output/benchmark_tiles/table.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# COCO's size bands: area in pixels of the full image.
SIZE_BANDS = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, float("inf"))}


@dataclass(frozen=True)
class ModeResult:
    mode: str
    recall: dict[str, float | None]  # by size band, at the threshold
    objects: dict[str, int]  # ground-truth objects per size band
    false_positives_per_empty_frame: float
    seconds_per_frame: float
    peak_memory_mb: float
    device: str


def build_set(
    folder: Path, frames: int, small: int, seed: int = 0, size: tuple[int, int] = (3840, 2160)
) -> dict[str, list]:
    """``frames`` frames with ``small`` small shapes and 3 large ones each, and ``frames`` empty ones, as JPEGs;
    returns {file: [box, ...]}."""
    from PIL import Image

    from ropevit_det.data.synthetic_frames import render_frame

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth: dict[str, list] = {}
    width, height = size
    for index in range(frames):
        diameters = [*rng.uniform(16, 64, size=small), *rng.uniform(150, 300, size=3)]
        pixels, objects = render_frame(rng, height, width, diameters)
        name = f"objects_{index:03d}.jpg"
        Image.fromarray(pixels).save(folder / name, quality=95)
        truth[name] = [list(o.box) for o in objects]
    for index in range(frames):
        pixels, _ = render_frame(rng, height, width, [])
        name = f"empty_{index:03d}.jpg"
        Image.fromarray(pixels).save(folder / name, quality=95)
        truth[name] = []
    return truth


def trained_model(work_dir: Path) -> tuple[str, Path, list[str]]:
    """The tests' shapes detector, trained once into ``work_dir``: (config file, weights, model overrides)."""
    repo = Path(__file__).resolve().parents[2]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from ropevit_det import model_zoo
    from tests.trained_shapes import MODEL_OVERRIDES, train_shapes_detector

    weights = work_dir / "model" / "train" / "model_final.pth"
    if not weights.is_file():
        print(f"training the shapes detector into {weights.parent} (a few minutes on 2 cores)", file=sys.stderr)
        weights = train_shapes_detector(work_dir / "model").weights
    return model_zoo.get_config_file("demo/ropevit_shapes_cpu.yaml"), weights, list(MODEL_OVERRIDES)


def mode_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    plain = ["INPUT.MIN_SIZE_TEST", str(args.test_size[0]), "INPUT.MAX_SIZE_TEST", str(args.test_size[1])]
    high = [
        "INPUT.MIN_SIZE_TEST",
        str(args.high_res[0]),
        "INPUT.MAX_SIZE_TEST",
        str(args.high_res[1]),
        "MODEL.ROPE_VIT.WINDOW_SIZE",
        str(args.window),
        "MODEL.ROPE_VIT.GLOBAL_BLOCKS",
        "[]",
    ]
    tiles = {"tiles": True, "tile_size": args.tile_size, "tile_overlap": args.tile_overlap}
    return {
        "plain": {"opts": plain},
        "tiles": {"opts": plain, **tiles},
        "tiles+full": {"opts": plain, **tiles, "tiles_with_full_frame": True},
        "high-res": {"opts": high},
    }


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ``getrusage``'s ru_maxrss: that survives the exec of a
    spawned process, so it would report the parent's peak (the 4K frames it drew)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def _run_mode(fields: dict[str, Any]) -> dict[str, float]:
    """In a process of its own: one batch job; its loop seconds, images and peak memory."""
    import torch

    from ropevit_det.camera_trap.detection.batch_job import run_batch_job
    from ropevit_det.camera_trap.detection.job_settings import BatchJobSettings

    summary = run_batch_job(BatchJobSettings(**fields))
    peak_mb = _peak_rss_mb()
    device = "cpu"
    if torch.cuda.is_available() and (fields.get("device") or "cuda").startswith("cuda"):
        peak_mb, device = torch.cuda.max_memory_allocated() / 2**20, torch.cuda.get_device_name()
    return {"seconds": summary.seconds, "images": summary.images, "peak_mb": peak_mb, "device": device}


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def score(
    results: dict, truth: dict[str, list], threshold: float, size: tuple[int, int], min_iou: float = 0.3
) -> tuple[dict[str, float | None], dict[str, int], float]:
    """(recall by size band, objects by size band, false positives per empty frame) at ``threshold``.

    An object is found by a detection at or above ``threshold`` with IoU >= ``min_iou``: 0.3, as the briefly
    trained shapes model draws loose boxes (the question here is whether it finds the object at all)."""
    width, height = size
    found = {band: 0 for band in SIZE_BANDS}
    total = {band: 0 for band in SIZE_BANDS}
    empty_frames = false_positives = 0
    for entry in results["images"]:
        boxes = [
            [x * width, y * height, (x + w) * width, (y + h) * height]
            for x, y, w, h in (d["bbox"] for d in entry.get("detections") or () if d["conf"] >= threshold)
        ]
        objects = truth[entry["file"]]
        if not objects:
            empty_frames += 1
            false_positives += len(boxes)
        for box in objects:
            area = (box[2] - box[0]) * (box[3] - box[1])
            band = next(name for name, (low, high) in SIZE_BANDS.items() if low <= area < high)
            total[band] += 1
            found[band] += any(_iou(box, b) >= min_iou for b in boxes)
    recall = {band: (found[band] / total[band] if total[band] else None) for band in SIZE_BANDS}
    return recall, total, false_positives / max(empty_frames, 1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--frames", type=int, default=4, help="frames with objects, and as many empty ones (default: %(default)s)"
    )
    parser.add_argument(
        "--small",
        type=int,
        default=20,
        help="small shapes (16-64 px across) per frame, among 3 large ones (default: %(default)s)",
    )
    parser.add_argument(
        "--work-dir",
        default="output/benchmark_tiles",
        help="the trained model (reused when there) and the frames (default: %(default)s)",
    )
    parser.add_argument("--modes", nargs="+", default=["plain", "tiles", "tiles+full", "high-res"])
    parser.add_argument(
        "--test-size",
        type=int,
        nargs=2,
        default=[720, 1280],
        metavar=("MIN", "MAX"),
        help="the model's test size for plain inference and for each tile (default: 720 1280)",
    )
    parser.add_argument(
        "--tile-size",
        type=int,
        default=1280,
        help="tile side in frame pixels; each is resized to the test size (default: %(default)s: 8 "
        "tiles of a 4K frame, run at 0.56 of their size)",
    )
    parser.add_argument("--tile-overlap", type=float, default=0.2, help="(default: %(default)s)")
    parser.add_argument(
        "--high-res",
        type=int,
        nargs=2,
        default=[1216, 2160],
        metavar=("MIN", "MAX"),
        help="test size of the high-resolution mode (default: 1216 2160: the frame at the scale "
        "the default tiles run at)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=12,
        help="windowed attention of the high-resolution mode, in patches (default: %(default)s, "
        "the 12 x 12 patch grid the shapes model was trained on)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.2,
        help="the typical detection threshold the recall and false positives are counted at (default: %(default)s)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu unless CUDA is available)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the table as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    modes = mode_settings(args)
    unknown = [m for m in args.modes if m not in modes]
    if unknown:
        print(f"ERROR: --modes: unknown {', '.join(unknown)}; choose from {', '.join(modes)}", file=sys.stderr)
        return 2
    work = Path(args.work_dir).resolve()
    config, weights, overrides = trained_model(work)
    size = (3840, 2160)
    frames = (work / f"frames_{args.frames}x{args.small}").resolve()
    truth_file = frames / "truth.json"
    if truth_file.is_file():
        truth = json.loads(truth_file.read_text())
    else:
        truth = build_set(frames, args.frames, args.small, size=size)
        truth_file.write_text(json.dumps(truth))
    files = frames / "files.txt"
    files.write_text("".join(f"{frames / name}\n" for name in sorted(truth)))
    rows: list[ModeResult] = []
    context = multiprocessing.get_context("spawn")
    for mode in args.modes:
        output = work / f"results_{mode}.json"
        fields = dict(
            config_file=config,
            weights=str(weights),
            input=str(files),
            input_root=str(frames),
            output=str(output),
            overwrite=True,
            class_names="shape",
            threshold=0.05,
            typical_threshold=args.threshold,
            batch_size=1,
            num_workers=0,
            device=args.device,
            progress=False,
            **{**modes[mode], "opts": (*overrides, *modes[mode]["opts"])},
        )
        with context.Pool(1) as pool:
            run = pool.apply(_run_mode, (fields,))
        results = json.loads(output.read_text())
        recall, objects, false_positives = score(results, truth, args.threshold, size)
        rows.append(
            ModeResult(
                mode,
                recall,
                objects,
                false_positives,
                run["seconds"] / max(run["images"], 1),
                run["peak_mb"],
                run["device"],
            )
        )
        print(f"{mode}: done", file=sys.stderr)
    print(markdown_table(rows, args))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


def markdown_table(rows: list[ModeResult], args: argparse.Namespace) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    counts = rows[0].objects if rows else {}
    header = (
        f"| mode | recall small ({counts.get('small', 0)}) | recall medium ({counts.get('medium', 0)}) | "
        f"recall large ({counts.get('large', 0)}) | false positives per empty frame | s per frame | "
        "peak memory (MB) |"
    )
    lines = [header, "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r.mode} | {pct(r.recall['small'])} | {pct(r.recall['medium'])} | {pct(r.recall['large'])} "
            f"| {r.false_positives_per_empty_frame:.2f} | {r.seconds_per_frame:.2f} | "
            f"{r.peak_memory_mb:.0f} |"
        )
    lines.append(
        f"\nthreshold {args.threshold}, found = IoU >= 0.3; device {rows[0].device if rows else '-'}; "
        f"{args.frames} frames with "
        f"objects ({args.small} small + 3 large each) and {args.frames} empty, 3840x2160; "
        f"test size {args.test_size}, tiles {args.tile_size} px overlap {args.tile_overlap}, high-res "
        f"{args.high_res} window {args.window}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
