# facetransfer: the two commands a new user needs are `make repro` and `make test`.
# Every target installs what it needs first (`setup` is idempotent).

VENV   := .venv
BIN    := $(abspath $(VENV))/bin
PYTHON ?= python3
export PATH := $(BIN):$(PATH)

.PHONY: setup data repro smoke test test-all bench ui server share

setup: $(VENV)/.installed

# Reinstall when the dependency list changes. torch/torchvision are pinned in
# pyproject.toml to the builds that lie on this machine's disk.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# data/ must match data.dvc: restore it from the DVC cache, or regenerate it
# (same seed, same bytes). `dvc commit` then caches it; if the hash it computes
# differs from the committed one, data.dvc is put back and this fails.
data: setup
	@dvc status -q data.dvc 2>/dev/null || dvc checkout -q --force data.dvc 2>/dev/null || true
	@dvc status -q data.dvc 2>/dev/null || facetransfer synth --out data
	@cp data.dvc .data.dvc.expected
	@dvc commit -q --force data.dvc
	@if [ "$$(grep md5: data.dvc)" = "$$(grep md5: .data.dvc.expected)" ]; then rm .data.dvc.expected; \
	else mv .data.dvc.expected data.dvc; \
	  echo "error: data/ does not match the hash in data.dvc; the generator is not reproducing its bytes here"; exit 1; fi

# The main job: the full default pipeline on the synthetic benchmark.
# `facetransfer warm` forks every stage from one process that has imported torch, mlflow & co. once
# (~11 s saved per stage on 2 cores; same commands, outputs and dvc.lock: src/facetransfer/warm.py).
repro: data
	facetransfer track-init
	facetransfer warm -- dvc repro

# The whole pipeline on a tiny benchmark and the smoke profile, in this working
# tree (outputs land where `make repro` puts them; run `make repro` to go back).
smoke: setup
	facetransfer synth --out data --params profiles/smoke.yaml
	@# One shell, the trap set before params.yaml is swapped: it is put back on every exit (a failing
	@# track-init or repro, Ctrl-C), not only after the repro.
	@cp params.yaml .params.default.yaml && trap 'mv .params.default.yaml params.yaml' EXIT && \
	  cp profiles/smoke.yaml params.yaml && facetransfer track-init && facetransfer warm -- dvc repro

# ruff first (a few seconds; its rules are in pyproject.toml): a finding fails `make test` before pytest starts.
# Two workers (or one per core): tests/test_pipeline.py (the end-to-end `dvc repro`, one file so its
# module fixture is built once) starts first on one of them; every other file goes to the other.
test: setup
	ruff check src tests bench
	pytest -m "not slow" -q -n auto --dist loadfile --no-loadscope-reorder

test-all: setup
	pytest -q

bench: setup
	python bench/synth_prepare.py
	python bench/learnability.py
	python bench/train_throughput.py
	python bench/cpu_kernels.py
	python bench/gpu_paper_profile.py

ui: setup
	mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db

# A team tracking server: runs in mlflow-server.db, artifacts proxied from mlflow-artifacts/ (clients
# store mlflow-artifacts:/ URIs, so artifact links survive clones). Teammates set
# MLFLOW_TRACKING_URI=http://<host>:5001; serve beyond this machine with MLFLOW_HOST=0.0.0.0.
MLFLOW_HOST ?= 127.0.0.1
server: setup
	mlflow server --host $(MLFLOW_HOST) --port 5001 --backend-store-uri sqlite:///mlflow-server.db \
	  --artifacts-destination mlflow-artifacts

# Push data, prepared arrays, models, masked datasets, the run cache and the outputs of runs only the run
# cache knows (queued experiments) to the DVC remote (default: .dvc/config's "local"; another one with
# `make share REMOTE=<name>`). A teammate then runs `dvc pull --run-cache` (or `dvc repro --pull`) and
# retrains nothing (docs/team.md, docs/scaling.md).
share: setup
	facetransfer share $(if $(REMOTE),--remote $(REMOTE))
