# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv through `make setup`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Override for a CUDA build, e.g. make setup TORCH='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'
TORCH ?= torch==2.13.0
ESCNN ?= escnn==1.0.11
# The stamp changes with the torch spec, so a different TORCH re-runs setup.
STAMP := $(VENV)/.setup-$(shell printf '%s|%s' '$(TORCH)' '$(ESCNN)' | md5sum | cut -c1-10)
PYTEST_ARGS ?=
# `make test` runs the tests in this many processes (pytest-xdist), one thread each: one per core of a 2-core machine
TEST_WORKERS ?= 2

.PHONY: setup demo test test-all test-gpu bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet --no-deps $(ESCNN)
	$(PY) -m pip install --quiet -e '.[rl,play,plots,video,pixels,rotation,atari,peers,dev]'
	@rm -f $(VENV)/.setup-*
	@touch $@

demo: setup
	$(VENV)/bin/fernn-rl demo

test: setup
	$(PY) -m pytest -m "not slow" -q -n $(TEST_WORKERS) --durations=15 $(PYTEST_ARGS)

test-all: setup
	HYPOTHESIS_PROFILE=slow $(PY) -m pytest -q $(PYTEST_ARGS)

# On a machine with a CUDA build of torch (make setup TORCH=...): the cuda tests, then a one-minute benchmark.
test-gpu: setup
	$(PY) -m pytest -m cuda -q -rs $(PYTEST_ARGS)
	$(VENV)/bin/fernn-rl bench step --device cuda --vmax 0,2 --repeats 3 --json experiments/results/bench_step_cuda.json

bench: setup
	$(VENV)/bin/fernn-rl bench step --repeats 1 --rounds 3 --json experiments/results/bench_step_h32.json
	$(VENV)/bin/fernn-rl bench step --hidden 16 --vmax 2 --relaxed 2 --no-bf16 --no-grnn-floor --repeats 1 --rounds 3 --json experiments/results/bench_step_relaxed.json
	$(VENV)/bin/fernn-rl bench rotation --repeats 1 --rounds 3 --json experiments/results/bench_rotation.json
	$(VENV)/bin/fernn-rl bench world-model --repeats 1 --rounds 3 --json experiments/results/bench_world_model.json
	$(VENV)/bin/fernn-rl bench scenes --json experiments/results/bench_scenes.json
	$(VENV)/bin/fernn-rl bench rl --json experiments/results/bench_rl.json
	$(VENV)/bin/fernn-rl bench plan --rounds 3 --json experiments/results/bench_plan.json
	OMP_NUM_THREADS=1 PYGLET_HEADLESS=1 $(VENV)/bin/fernn-rl bench block-world --rounds 5 --json experiments/results/bench_block_world.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
