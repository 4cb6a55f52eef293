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

# The demo: a guest kernel asks pyvmm to write-protect the 128 bytes holding its syscall table;
# an attacker's overwrite is denied and logged while writes to the rest of the page carry on.
demo: setup guests
	$(BIN)/pyvmm run guests/build/spp-demo.bin --policy log-and-deny

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
