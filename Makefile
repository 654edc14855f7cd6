# The two commands of the README: `make serve` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: serve test test-fast lint bench install

$(BIN)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch, pinned: an unpinned torch pulls a multi-GB CUDA build (see README, GPU workers).
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	# The integrations extra: the frameworks the SDK's callbacks are tested with (see README, Integrations).
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION) -e ".[test,dev,integrations]" -e clients/python
	touch $@

install: $(BIN)/.installed

serve: $(BIN)/.installed
	$(BIN)/asktell serve

test: $(BIN)/.installed
	scripts/ensure-postgres
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest

# The unit layer only (tests/unit: engines, domain, plots, the SDK on a scripted transport): no database, no
# server. One pytest process per core, each with one torch thread: about 40 s on two cores, where one process
# took 95 s. The fuzzer's pytest plugins (schemathesis, hypothesis) take seconds to import and no unit test uses them.
test-fast: $(BIN)/.installed
	OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m unit -q -n auto -p no:schemathesis \
		-p no:hypothesispytest

lint: $(BIN)/.installed
	$(BIN)/ruff check service clients/python tests benchmarks examples
	$(BIN)/ruff format --check service clients/python tests benchmarks examples
	$(BIN)/mypy service clients/python/asktell

bench: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e ".[bench]"
	scripts/ensure-postgres
	$(BIN)/python benchmarks/api_throughput.py
