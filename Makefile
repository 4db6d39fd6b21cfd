# bfm-stim — the two commands: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# Machine-only liblsl configuration for every LSL process started from here.
export LSLAPICFG := $(CURDIR)/bfm_stim/lsl/lsl_api.cfg
export MPLBACKEND := Agg

.PHONY: venv demo test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first when no torch is present (users with GPUs install their own first).
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	touch $(STAMP)

demo: venv
	$(VENV)/bin/bfm-stim demo --out demo-out

test: venv
	$(PY) -m pytest -q tests

bench: venv
	mkdir -p bench
	$(VENV)/bin/bfm-stim bench simulator --json bench/simulator.json

clean:
	rm -rf $(VENV) demo-out .pytest_cache
