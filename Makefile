# One command per chore; CI runs exactly what developers run (.ci/run -> make test).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install system-packages demo test test-fast lint format bench reliability gpu-check deploy-check worker flower ui migrate clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,s3,embedded,openvino]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install crackq with its test tools

demo: install  ## the main job: train a first model, classify held-out photos through the queue
	$(VENV)/bin/crackq demo $(DEMO_ARGS)

system-packages:  ## Debian packages the tests use (tcmalloc, prometheus), when run as root
	bash .ci/system-packages

test: install system-packages lint  ## lint, type-check and run every test against the local Redis and PostgreSQL
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install  ## the developer loop: tests not marked slow, no lint, stop at the first failure
	$(PY) -m pytest -m "not slow" -q -x $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff format --check worker models db migrations tests benchmarks harness
	$(VENV)/bin/ruff check worker models db migrations tests benchmarks harness
	$(VENV)/bin/mypy worker models db harness

format: install
	$(VENV)/bin/ruff format worker models db migrations tests benchmarks harness
	$(VENV)/bin/ruff check --fix worker models db migrations tests benchmarks harness

bench: install  ## throughput benchmarks; JSON lines on stdout
	$(PY) -m benchmarks.run $(BENCH_ARGS)

deploy-check: install  ## render docker-compose.yml with Compose, check it and ops/k8s against the CLI and settings
	$(PY) -m harness.deploy

reliability: install  ## faults, hostile inputs and a load run against real processes (--quick: RELIABILITY_ARGS=--quick)
	$(PY) -m benchmarks.run --suite reliability $(RELIABILITY_ARGS)

gpu-check: install  ## on a GPU host: CUDA tests, GPU benchmarks, a fine-tune, a worker per GPU (GPU_CHECK_ARGS=--dry-run)
	VENV=$(VENV) bash benchmarks/gpu_check.sh $(GPU_CHECK_ARGS)

worker: install
	$(VENV)/bin/crackq worker -Q inference

flower: install
	$(VENV)/bin/crackq flower

ui: install  ## the inspector's console on http://127.0.0.1:8600/ (review queue, assets, models)
	$(VENV)/bin/crackq ui

migrate: install
	$(VENV)/bin/crackq migrate

clean:
	rm -rf $(VENV) .crackq .pytest_cache .mypy_cache .ruff_cache *.egg-info
