# `make test`: set everything up (idempotent), then run the CPU test suite. `.ci/run` calls exactly this.
# `make demo`: set up, then train + evaluate on the embedded synthetic dataset (output/demo/).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo

setup:
	VENV=$(VENV) bash tools/setup_env.sh

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(PY) tools/demo.py --output-dir output/demo
