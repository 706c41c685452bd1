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
    "classify": ("classify", "-", "add species labels to any MegaDetector-format results file (also RDE's output)"),
    "camtrapdp": ("camtrapdp", "-", "Camtrap DP 1.0.2 packages: export results, validate, import boxes as CCT"),
    "blur": ("blur", "-", "blurred copies of the images with a person or vehicle (before sharing or review)"),
    "convert": ("convert", "tools/convert_birder_to_d2.py", "birder checkpoint -> detectron2 checkpoint"),
    "demo": ("demo", "tools/demo.py", "train + evaluate on a synthetic dataset, on the CPU"),
    "export": ("export", "tools/export_model.py", "export a detector to ONNX or TorchScript (fixed input size)"),
    "env": ("env", "-", "what a bug report needs: versions, devices, detectron2 build, weights cache"),
}

# The benchmark harness lives in the repository's benchmarks/ folder, not in the installed package (it builds rival
# models from other installs, as detectron2's and timm's benchmarks do): the old sub-commands point to it.
CLONE_ONLY: dict[str, str] = {
    "benchmark": "tools/benchmark.py",
    "benchmark-eval": "tools/benchmark_eval.py",
    "profile": "tools/profile_inference.py",
    "benchmark-journal": "tools/benchmark_journal.py",
    "benchmark-scaling": "tools/benchmark_scaling.py",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: ropevit-det SUBCOMMAND [ARGS...]   (ropevit-det SUBCOMMAND --help for its options)",
        "",
        "sub-commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += [
        "",
        "benchmarks (from a clone of the repository, not installed): "
        + ", ".join(f"python {tool}" for tool in dict.fromkeys(CLONE_ONLY.values())),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name in CLONE_ONLY:
        print(
            f"ropevit-det {name}: the benchmark harness is not part of the installed package; it needs a clone of "
            f"the repository: python {CLONE_ONLY[name]} {' '.join(rest)}".rstrip(),
            file=sys.stderr,
        )
        return 2
    if name not in COMMANDS:
        print(
            f"ropevit-det: unknown sub-command {name!r}. Choose one of: {', '.join(COMMANDS)}\n\n{usage()}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"ropevit_det.cli.{COMMANDS[name][0]}")
    # argparse in the sub-command names itself after argv[0]; make its usage line read "ropevit-det NAME".
    sys.argv = [f"ropevit-det {name}", *rest]
    result = module.main(rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
