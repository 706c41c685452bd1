#!/usr/bin/env bash
# GPU benchmark (issue 6, part 3): ours against detectron2's ViTDet-B at 1024 px on one CUDA GPU.
#
# The GPU machine has python3 with torch, torchvision, timm, numpy, Pillow, PyYAML, tabulate, cloudpickle,
# portalocker, tqdm and matplotlib, but no detectron2 and no network. So it runs in two steps:
#
#   1. here, where PyPI is reachable:   bash tools/gpu_bench.sh prepare
#      Unpacks detectron2 (registry wheel, pure Python part) and the few missing pure-Python / manylinux
#      dependencies for that machine's Python (GPU_PYTHON_VERSION, default 3.12) into .gpu_deps/site
#      (about 8 MiB), and lists .gpu_deps in .git/info/exclude so that it can travel as a carried path.
#   2. on the GPU machine, with .gpu_deps carried:   bash tools/gpu_bench.sh run
#      No installation: PYTHONPATH points at the repository and .gpu_deps/site. Writes bench_gpu.json,
#      bench_gpu.md, bench_gpu.log and nvidia-smi.txt into $OUT (default ./output/gpu_bench), then
#      bench_gpu_capped.{json,md,log} (inference with the NMS candidate cap, GPU_BENCH_CAP); with
#      GPU_BENCH_COMPILED=1 also bench_gpu_compiled.{json,md,log}. Budget: main run at most GPU_BENCH_TIMEOUT
#      (360 s), the capped run GPU_BENCH_CAP_TIMEOUT (150 s), the torch.compile run at most
#      GPU_BENCH_COMPILED_TIMEOUT (180 s). Measured on an H200: main run 158 s.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="${GPU_DEPS_DIR:-$ROOT/.gpu_deps}"
PYVER="${GPU_PYTHON_VERSION:-3.12}"
PY_HERE="${PYTHON:-$ROOT/.venv/bin/python}"

# Missing on the GPU machine and needed by detectron2's model code (LazyConfig, yacs configs, masks).
BINARY_DEPS=(pycocotools)
PURE_WHEELS=(yacs "omegaconf>=2.1,<2.4" "hydra-core>=1.1" termcolor)
PURE_SDISTS=("fvcore==0.1.5.post20221221" "iopath==0.1.10" "antlr4-python3-runtime==4.9.3")
D2_WHEEL="sal-detectron2==0.7.2"

say() { printf '[gpu_bench] %s\n' "$*"; }
die() { printf '[gpu_bench] ERROR: %s\n' "$*" >&2; exit 1; }

unpack_wheels() {  # wheels are zip files: unpacked onto sys.path they import like installed packages
  "$PY_HERE" - "$1" "$2" <<'PYEOF'
import sys, zipfile, pathlib
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for wheel in sorted(src.glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        # detectron2's compiled _C is built for CPython 3.10 only; without it detectron2 falls back to
        # torchvision's ROIAlign/NMS, exactly as in the CPU environment.
        # The wheel's top-level tools/ (detectron2's scripts) is left out too.
        members = [m for m in z.namelist() if not m.startswith(("detectron2/_C.", "tools/"))]
        z.extractall(dst, members)
    print(f"  unpacked {wheel.name}")
PYEOF
}

prepare() {
  [ -x "$PY_HERE" ] || die "no Python at $PY_HERE; run tools/setup_env.sh or set PYTHON=..."
  rm -rf "$DEPS"
  mkdir -p "$DEPS/wheels" "$DEPS/site"
  local platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
                   --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
  say "downloading manylinux wheels for CPython $PYVER: ${BINARY_DEPS[*]}"
  "$PY_HERE" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    "${platforms[@]}" -d "$DEPS/wheels" "${BINARY_DEPS[@]}"
  say "downloading pure-Python wheels: ${PURE_WHEELS[*]}"
  "$PY_HERE" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" -d "$DEPS/wheels" \
    "${PURE_WHEELS[@]}"
  say "building pure-Python wheels from sdists: ${PURE_SDISTS[*]}"
  "$PY_HERE" -m pip wheel -q --no-deps -w "$DEPS/wheels" "${PURE_SDISTS[@]}"
  say "downloading $D2_WHEEL (its Python sources; the cp310 extension is left out)"
  "$PY_HERE" -m pip download -q --no-deps --only-binary=:all: --python-version 3.10 -d "$DEPS/wheels" "$D2_WHEEL"
  unpack_wheels "$DEPS/wheels" "$DEPS/site"
  rm -rf "$DEPS/wheels"
  local exclude="$ROOT/.git/info/exclude"
  if [ -d "$ROOT/.git" ] && ! grep -qxF "/.gpu_deps/" "$exclude" 2>/dev/null; then
    mkdir -p "$(dirname "$exclude")" && echo "/.gpu_deps/" >> "$exclude"
  fi
  say "ready: $DEPS ($(du -sh "$DEPS" | cut -f1)); carry '.gpu_deps' and run: bash tools/gpu_bench.sh run"
}

to_markdown() {  # $1: a benchmark JSON (possibly partial), $2: the Markdown file to write
  [ -f "$1" ] || { say "no $1"; return 0; }
  "${GPU_PYTHON:-python3}" - "$1" > "$2" <<'PYEOF' || say "could not render $1"
import json, sys
from benchmarks import markdown_report
result = json.load(open(sys.argv[1]))
if result.get("partial"):
    print("PARTIAL RUN: stopped before the end; the rows below are all that was measured.\n")
print(markdown_report(result))
PYEOF
}

run() {
  local out="${OUT:-$ROOT/output/gpu_bench}"
  mkdir -p "$out"
  [ -d "$DEPS/site/detectron2" ] || die "$DEPS/site is missing: run 'bash tools/gpu_bench.sh prepare' where \
PyPI is reachable, then carry .gpu_deps"
  export PYTHONPATH="$ROOT:$DEPS/site${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
  local py="${GPU_PYTHON:-python3}"
  (nvidia-smi || true) > "$out/nvidia-smi.txt" 2>&1
  # GPU_BENCH_DEVICE/SIZE/EXTRA exist for a dry run of this script on a CPU (e.g. cpu, 64, "--tiny").
  local device="${GPU_BENCH_DEVICE:-cuda}" size="${GPU_BENCH_SIZE:-1024}"
  local extra=(${GPU_BENCH_EXTRA:-})
  "$py" - "$device" <<'PYEOF' 2>&1 | tee "$out/bench_gpu.log"
import sys
import detectron2, ropevit_det, timm, torch  # noqa: F401  (fail here, early, if anything is missing)
print("torch", torch.__version__, "detectron2", detectron2.__version__, "timm", timm.__version__)
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("torch sees no GPU")
    print("GPU:", torch.cuda.get_device_name(0))
PYEOF
  set -o pipefail
  # 1024 px; batch 1 for latency (ms/image), batch 8 for throughput (images/s); training at batch 1 and 2
  # (ViTDet's global blocks keep 12 x 4096^2 attention maps per image for the backward pass). ViTDet-B in
  # fp32 (the ratios' baseline) and in bf16 (the like-for-like comparison on a GPU). A configuration that
  # runs out of GPU memory is recorded as such and the run goes on.
  # The JSON is rewritten after each model, so a run stopped by its timeout keeps what it measured.
  local batches="${GPU_BENCH_BATCHES:-1,8}" train_batches="${GPU_BENCH_TRAIN_BATCHES:-1,2}"
  timeout "${GPU_BENCH_TIMEOUT:-360}" "$py" "$ROOT/tools/benchmark.py" --device "$device" --sizes "$size" \
    --batches "$batches" --train-batches "$train_batches" \
    --vitdet-modes fp32,bf16 --warmup 3 --repeats 10 "${extra[@]}" \
    --json "$out/bench_gpu.json" 2>&1 | tee -a "$out/bench_gpu.log" || say "main run stopped early (see the log)"
  to_markdown "$out/bench_gpu.json" "$out/bench_gpu.md"
  # The heads' lever (MODEL.ROI_HEADS.TOPK_CANDIDATES_TEST, both models alike): at the benchmark's score
  # threshold of 0, class-wise NMS over 1,000 proposals x 80 classes dominates a GPU inference; capping the
  # candidates that enter NMS per image (GPU_BENCH_CAP, default 1000; 0 skips this run) removes that.
  local cap="${GPU_BENCH_CAP:-1000}"
  if [ "$cap" != 0 ]; then
    timeout "${GPU_BENCH_CAP_TIMEOUT:-150}" "$py" "$ROOT/tools/benchmark.py" --device "$device" --sizes "$size" \
      --batches "$batches" --tasks inference --ours-modes bf16,fast --vitdet-modes fp32,bf16 \
      --topk-candidates "$cap" --warmup 3 --repeats 10 --no-accuracy "${extra[@]}" \
      --json "$out/bench_gpu_capped.json" 2>&1 | tee "$out/bench_gpu_capped.log" || say "capped run stopped early"
    to_markdown "$out/bench_gpu_capped.json" "$out/bench_gpu_capped.md"
  fi
  # Optional second lever (GPU_BENCH_COMPILED=1): the fast mode with torch.compile'd blocks (Triton),
  # inference only. Compiling takes minutes (one graph per block: drop-path rates differ), so it is off by
  # default and, when on, runs after the main table is safe, with what is left of the time.
  if [ "${GPU_BENCH_COMPILED:-0}" = 1 ]; then
    timeout "${GPU_BENCH_COMPILED_TIMEOUT:-180}" "$py" "$ROOT/tools/benchmark.py" --device "$device" --sizes "$size" \
      --batches "$batches" --tasks backbone,inference --ours-modes fast,fast_compiled --vitdet-modes bf16 \
      --warmup 3 --repeats 10 --no-accuracy "${extra[@]}" --json "$out/bench_gpu_compiled.json" 2>&1 \
      | tee "$out/bench_gpu_compiled.log" || say "compiled run stopped early (see its log)"
    to_markdown "$out/bench_gpu_compiled.json" "$out/bench_gpu_compiled.md"
  fi
  say "wrote $out"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) die "usage: bash tools/gpu_bench.sh prepare|run" ;;
esac
