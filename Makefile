# pyvmm: the two README commands are `make demo` (run the demo guest) and `make test`.
# Both set up what they need: a virtualenv in .venv with pyvmm installed, and the guests.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all setup guests baseline demo test test-unit lint bench fuzz clean

all: setup guests baseline

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $@

# An editable install compiles nothing, and where PYTHONDONTWRITEBYTECODE is set nothing is ever
# cached: every start would compile all of pyvmm again (about 60 ms). compileall writes the cache.
BYTECODE := $(VENV)/.bytecode
$(BYTECODE): $(shell find vmm kvm_abi -name '*.py') | $(STAMP)
	$(BIN)/python -m compileall -q vmm kvm_abi >/dev/null
	touch $@

# kvm_abi's cffi out-of-line modules (preparsed cdefs, so no C parser runs at start-up). The
# install above writes them; an editable install never reruns by itself, so they are rewritten
# here whenever a cdef or their generator changes. (A stale one is never used: kvm_abi warns and
# parses the cdef instead.)
FFI_GENERATED := kvm_abi/_generated_ffi.py kvm_abi/_generated_spp_ffi.py
$(FFI_GENERATED) &: kvm_abi/_cdef.py kvm_abi/_spp_cdef.py kvm_abi/_ffi_build.py | $(STAMP)
	$(BIN)/python kvm_abi/_ffi_build.py

# pip's console scripts cannot take Ctrl-C before the interpreter's site module runs; these can
# (vmm/cli/launcher.py says why). Rewritten after every install, which puts pip's back.
LAUNCHERS := $(BIN)/.launchers
$(LAUNCHERS): $(STAMP) vmm/cli/launcher.py vmm/cli/launcher.c
	$(BIN)/python -m vmm.cli.launcher $(BIN)
	touch $@

setup: $(STAMP) $(FFI_GENERATED) $(BYTECODE) $(LAUNCHERS)

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

# New command lines, port-hammer seeds and random-instruction seeds for FUZZ_SECONDS, judged as the
# suite's fuzzing tests judge them; failing cases are kept in build/fuzz.
FUZZ_SECONDS ?= 600
fuzz: setup guests
	$(BIN)/python -m tests.fuzz --seconds $(FUZZ_SECONDS) --out build/fuzz

bench: setup guests baseline
	$(BIN)/python -m vmm.bench

clean:
	$(MAKE) -C guests clean
	$(MAKE) -C tests/bench clean
	rm -rf $(VENV) *.egg-info
