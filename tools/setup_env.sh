#!/usr/bin/env bash
# One-shot, idempotent set-up: a virtual environment in .venv with torch, detectron2 and
# this package (editable, with its test extra). A second run checks each piece and does no
# reinstall work. Override the interpreter with PYTHON=..., the venv path with VENV=...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"
D2_FALLBACK="sal-detectron2==0.7.2"
# detectron2's runtime dependencies; the registry fallback wheel is installed without them.
D2_DEPS=(fvcore iopath pycocotools yacs termcolor tabulate cloudpickle "omegaconf>=2.1,<2.4"
         hydra-core matplotlib tensorboard tqdm "setuptools<81" Pillow)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null \
  || die "Python >= 3.10 is needed; set PYTHON=/path/to/python3.11"

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip wheel installer
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q)

has() { "$PY" - "$@" <<'PYEOF' >/dev/null 2>&1
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
PYEOF
}

# 1. torch / torchvision: the pair that works on this machine kind (docs/INSTALL.md explains the choice).
if "$PY" -c 'import torch, torchvision, torchvision.ops; torchvision.ops.nms' >/dev/null 2>&1; then
  say "torch $("$PY" -c 'import torch; print(torch.__version__)') present"
else
  say "installing $TORCH_PIN $TORCHVISION_PIN (a few minutes)"
  "${PIP[@]}" "$TORCH_PIN" "$TORCHVISION_PIN" || die "could not install $TORCH_PIN $TORCHVISION_PIN"
fi

# 2. detectron2: official source install first, registry fallback where GitHub is unreachable.
if has detectron2 detectron2.modeling; then
  say "detectron2 present"
else
  say "installing detectron2 runtime dependencies"
  "${PIP[@]}" "${D2_DEPS[@]}"
  say "trying the official detectron2 source install (GitHub)"
  if timeout 300 "$PY" -m pip install -q --no-build-isolation \
       'git+https://github.com/facebookresearch/detectron2.git' 2>/dev/null; then
    say "detectron2 installed from source"
  else
    say "GitHub unreachable: installing the registry fallback $D2_FALLBACK (no compiled ops on this Python)"
    tmp="$(mktemp -d)"
    # The wheel is tagged cp310; ask for it explicitly, it runs on 3.11 without its _C extension.
    "$PY" -m pip download -q --no-deps --python-version 3.10 --only-binary=:all: -d "$tmp" "$D2_FALLBACK" \
      || die "could not download $D2_FALLBACK from PyPI. Install detectron2 by hand: \
pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'"
    "$PY" -m pip install -q installer
    "$PY" -m installer "$tmp"/sal_detectron2-*.whl || die "could not install the $D2_FALLBACK wheel"
    rm -rf "$tmp"
  fi
  has detectron2 detectron2.modeling || die "detectron2 does not import after installation"
fi

# 3. this package, editable, with its test, camtrap and serve extras. Redone only when setup.py changes.
stamp="$VENV/.ropevit_det-$(sha256sum "$ROOT/setup.py" | cut -c1-16)"
if [ -f "$stamp" ] && has ropevit_det; then
  say "ropevit_det present (setup.py unchanged)"
else
  say "installing ropevit_det[test,camtrap] in editable mode"
  # numpy<2 is pinned in the fallback wheel's metadata, but the code runs on numpy 2 (birder needs >= 2.2).
  "${PIP[@]}" -e "$ROOT[test,camtrap,serve]" || die "pip install -e .[test,camtrap,serve] failed"
  rm -f "$VENV"/.ropevit_det-*
  touch "$stamp"
fi
# 4. MegaDetector's validator and post-processing (review pages, repeat-detection elimination, ...).
#    megadetector depends on a whole YOLO training stack, so it is installed without deps; what its
#    post-processing imports comes from the camtrap extra (step 3).
MD_MODULES=(megadetector.postprocessing.validate_batch_results megadetector.postprocessing.postprocess_batch_results
            megadetector.postprocessing.repeat_detection_elimination.repeat_detections_core
            megadetector.postprocessing.classification_postprocessing)
if has "${MD_MODULES[@]}"; then
  say "megadetector validator and post-processing present"
else
  say "installing megadetector (without its training dependencies)"
  "${PIP[@]}" --no-deps "megadetector==10.0.28" || die "could not install megadetector==10.0.28"
  # The camtrap extra came with step 3; install it again only if something it brings is missing.
  has "${MD_MODULES[@]}" || "${PIP[@]}" -e "$ROOT[camtrap]" \
    || die "could not install the camtrap extra (megadetector's post-processing needs)"
  has "${MD_MODULES[@]}" || die "megadetector's post-processing does not import: $("$PY" -c \
    "import megadetector.postprocessing.postprocess_batch_results" 2>&1 | tail -1)"
fi

# 4a. SpeciesNet's geofence reference (tests/camera_trap/test_camtrap_geofence.py compares our decisions with its
#     geofence_utils). Installed without deps: its own requirements pull TensorFlow and its detector; the test loads
#     only geofence_utils.py, taxonomy_utils.py and constants.py from the package folder.
if "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('speciesnet') is None)" 2>/dev/null; then
  say "speciesnet (geofence reference) present"
else
  say "installing speciesnet==5.0.6 without deps (geofence reference for the tests)"
  "${PIP[@]}" --no-deps "speciesnet==5.0.6" || die "could not install speciesnet==5.0.6"
fi

# 4b. The LVIS API (detectron2's LVISEvaluator). Installed without deps: lvis 0.5.3's metadata pulls
#     opencv-python, which would overwrite the cv2 of opencv-python-headless (camtrap extra); what it imports
#     (cv2, matplotlib, pycocotools, numpy) is already there.
if has lvis.eval; then
  say "lvis present"
else
  say "installing lvis (LVIS evaluation, without its opencv-python requirement)"
  "${PIP[@]}" --no-deps "lvis==0.5.3" || die "could not install lvis==0.5.3"
  has lvis.eval || die "lvis does not import: $("$PY" -c "import lvis.eval" 2>&1 | tail -1)"
fi

# 4b'. SAHI (infer --tiles). Installed without deps, as lvis is: sahi's metadata pulls opencv-python, which would
#     overwrite the cv2 of opencv-python-headless; the tiles extra brings what sahi.slicing and
#     sahi.postprocess import (shapely, cv2, PIL, tqdm).
if has sahi.slicing sahi.postprocess.combine; then
  say "sahi present"
else
  say "installing sahi (sliced inference, without its opencv-python requirement)"
  "${PIP[@]}" -e "$ROOT[tiles]" || die "could not install the tiles extra"
  "${PIP[@]}" --no-deps "sahi==0.12.8" || die "could not install sahi==0.12.8"
  has sahi.slicing sahi.postprocess.combine || die "sahi does not import: $("$PY" -c \
    "import sahi.postprocess.combine" 2>&1 | tail -1)"
fi

# 4c. The bench extra: MegaDetector v5a's network (YOLOv5x6) from the yolov5 package, for the benchmark peer and
#     its test. yolov5 and ultralytics go in without deps (their requirements pull a training stack and pin old
#     hub clients); the bench extra brings what their import needs. Optional: where it does not install cleanly,
#     say so and go on (tests/benchmarks/test_benchmark_mdv5a.py then fails, naming the install command).
if has yolov5.models.yolo yolov5.utils.augmentations; then
  say "yolov5 (bench extra) present"
else
  say "installing the bench extra (yolov5==7.0.14 and ultralytics without deps)"
  if "${PIP[@]}" -e "$ROOT[bench]" && "${PIP[@]}" --no-deps "yolov5==7.0.14" "ultralytics==8.4.190" \
       && has yolov5.models.yolo yolov5.utils.augmentations; then
    say "yolov5 installed"
  else
    say "WARNING: the bench extra did not install cleanly; the MegaDetector peer of the benchmark is unavailable"
  fi
fi

# 5. A real browser for the review-page test: Debian's chromium and chromium-driver (selenium drives it).
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  say "chromium and chromedriver present"
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  say "installing Debian's chromium and chromium-driver (apt-get)"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation \
    >/dev/null || die "could not install chromium chromium-driver with apt-get"
else
  say "WARNING: chromium is missing and this is not root; the review-page test will fail until you run:"
  say "  sudo apt-get update && sudo apt-get install -y chromium chromium-driver"
fi
say "ready: $VENV"
