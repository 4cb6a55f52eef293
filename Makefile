# pyvmm: the two README commands are `make demo` (run the demo guest) and `make test`.
# Both set up what they need: a virtualenv in .venv with pyvmm installed, and the guests.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all setup guests baseline demo test test-unit lint bench clean

all: setup guests baseline

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP)

guests:
	$(MAKE) --no-print-directory -C guests -j2

baseline:
	$(MAKE) --no-print-directory -C tests/bench

demo: setup guests
	$(BIN)/pyvmm run guests/build/hello-long.bin

test: setup guests baseline lint
	$(BIN)/pytest -q

test-unit: setup
	$(BIN)/pytest -q tests/unit

lint: setup
	$(BIN)/ruff check vmm kvm_abi tests
	$(BIN)/mypy

bench: setup guests baseline
	$(BIN)/python -m vmm.bench

clean:
	$(MAKE) -C guests clean
	$(MAKE) -C tests/bench clean
	rm -rf $(VENV) *.egg-info
