#!/usr/bin/env python
"""Is the int8 CPU path as fast on torchao as on torch.ao.quantization? Same model, same run.

Both engines of ``ropevit_det.export.quantize_vit_linears`` quantize the same ViT's encoder linear layers: the
ViT-B/14 of the detector (random weights, 768 wide, 12 blocks, global attention) runs ``detection_features`` on
one normalised frame per size. After one warm-up run each, the two run alternately (``--repeats`` rounds, the
order swapped every round), so that the load of a shared machine falls on both alike. Prints, per size, each
engine's times, torchao's speed-up over torch.ao per round (torch.ao time / torchao time) and its median, and each
engine's neck cosine against fp32 (per location, mean: the guard of tests/export/test_cpu_backend.py).

    OMP_NUM_THREADS=1 python tools/compare_int8_backends.py --sizes 448 1024 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time

import torch

from ropevit_det import RoPEViT
from ropevit_det.export import quantize_vit_linears

ENGINES = ("torch_ao", "torchao")


def neck_cosine(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(reference.flatten(2), candidate.flatten(2), dim=1).mean().item()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[448, 1024], help="square input sizes in pixels")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per size (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fp32 = RoPEViT().eval()
    engines = {
        "torch_ao": quantize_vit_linears(copy.deepcopy(fp32), "torch.ao"),
        "torchao": quantize_vit_linears(copy.deepcopy(fp32), "torchao"),
    }
    results = []
    for size in args.sizes:
        # Smooth random colour normalised as the detector does: a frame-like input, not white noise.
        image = torch.nn.functional.interpolate(torch.randn(1, 3, 8, 8), size=(size, size), mode="bicubic")
        image = image + 0.1 * torch.randn_like(image)
        with torch.no_grad():
            reference = fp32.detection_features(image)["neck"]  # also the warm-up of the shared fp32 parts
            necks = {name: model.detection_features(image)["neck"] for name, model in engines.items()}  # warm-up
            times: dict[str, list[float]] = {name: [] for name in engines}
            for round_ in range(args.repeats):
                # Alternate the order, so that neither engine always runs right after the other.
                for name in ENGINES if round_ % 2 == 0 else ENGINES[::-1]:
                    start = time.perf_counter()
                    engines[name].detection_features(image)
                    times[name].append(time.perf_counter() - start)
        paired = [old / new for old, new in zip(times["torch_ao"], times["torchao"])]
        row = {
            "size": size,
            "threads": args.threads,
            "seconds": times,
            "median_s": {name: statistics.median(t) for name, t in times.items()},
            "min_s": {name: min(t) for name, t in times.items()},
            # legacy / torchao time of each round (> 1: torchao faster); the median is robust to one bad round.
            "speedup_torchao_over_torch_ao_per_round": paired,
            "speedup_torchao_over_torch_ao_median": statistics.median(paired),
            "neck_cosine": {name: neck_cosine(reference, neck) for name, neck in necks.items()},
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
