"""``ropevit-det SUBCOMMAND [ARGS]`` (also ``python -m ropevit_det``): one entry point for every tool.

Sub-commands are imported only when chosen, so ``ropevit-det env`` works even where a heavy dependency is
broken, and ``--help`` is fast.
"""
from __future__ import annotations

import importlib
import sys

# name -> (module under ropevit_det.cli, the tools/ wrapper a clone user runs, one line of help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("train", "tools/train_net.py", "train or evaluate a detector on COCO-format or CCT data"),
    "infer": ("infer", "tools/infer.py", "detect in camera-trap images; MegaDetector-format results"),
    "serve": ("serve", "tools/serve.py", "detection as an HTTP service: batched, bounded, token-protected"),
    "eval-camtrap": ("eval_camtrap", "tools/eval_camera_trap.py", "camera-trap metrics of a results file"),
    "merge": ("merge", "tools/merge_results.py", "merge MegaDetector-format results files (e.g. --shard outputs)"),
    "split-cct": ("split_cct", "tools/split_cct.py", "split a COCO Camera Traps file by location"),
    "review": ("review", "tools/review.py", "MegaDetector's HTML review page of a results file"),
    "rde": ("rde", "tools/rde.py", "repeat-detection elimination (find | apply) on a results file"),
    "convert": ("convert", "tools/convert_birder_to_d2.py", "birder checkpoint -> detectron2 checkpoint"),
    "demo": ("demo", "tools/demo.py", "train + evaluate on a synthetic dataset, on the CPU"),
    "benchmark": ("benchmark", "tools/benchmark.py", "speed against detectron2's ViTDet-B, same run"),
    "benchmark-eval": ("benchmark_eval", "tools/benchmark_eval.py", "COCO evaluation and data-loading speed"),
    "profile": ("profile_inference", "tools/profile_inference.py", "operator-level profile of inference"),
    "benchmark-journal": ("benchmark_journal", "tools/benchmark_journal.py",
                          "checkpoint cost of the results journal over 1,000,000 images"),
    "benchmark-scaling": ("benchmark_scaling", "tools/benchmark_scaling.py",
                          "images/s of infer with 2 processes against 1, same machine"),
    "export": ("export", "tools/export_model.py", "export a detector to ONNX or TorchScript (fixed input size)"),
    "env": ("env", "-", "what a bug report needs: versions, devices, detectron2 build, weights cache"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ropevit-det SUBCOMMAND [ARGS...]   (ropevit-det SUBCOMMAND --help for its options)", "",
             "sub-commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ropevit-det: unknown sub-command {name!r}. Choose one of: {', '.join(COMMANDS)}\n\n{usage()}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"ropevit_det.cli.{COMMANDS[name][0]}")
    # argparse in the sub-command names itself after argv[0]; make its usage line read "ropevit-det NAME".
    sys.argv = [f"ropevit-det {name}", *rest]
    result = module.main(rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
