# `make test`: set everything up (idempotent), lint and format-check with ruff (ruff.toml), then run the CPU test
# suite. `.ci/run` calls exactly this.
# `make demo`: set up, then train + evaluate on the embedded synthetic dataset (output/demo/).
# `make demo-camera-trap`: set up, then the camera-trap workflow on the sample frames, on the CPU
# (output/demo_camera_trap/).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo demo-camera-trap

setup:
	VENV=$(VENV) bash tools/setup_env.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q tests

demo: setup
	$(PY) tools/demo.py --output-dir output/demo

demo-camera-trap: setup
	$(PY) tools/demo.py --camera-trap --output-dir output/demo_camera_trap
