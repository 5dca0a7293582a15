# mmkdflow: `make test` and `make demo` create or repair .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
SEEDS ?= 1
TASKS ?= det

.PHONY: env test test-fast demo clean-env

env:
	@bash tools/setup_env.sh

## the whole suite, slow end-to-end tests included (what CI runs)
test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

## the fast set for development
test-fast: env
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

## teacher -> student distillation on the embedded digits data
## (TASKS="det cls seg" for all three tasks, SEEDS=3 for mean and spread)
demo: env
	$(PY) tools/demo.py --seeds $(SEEDS) --task $(TASKS)

clean-env:
	rm -rf $(VENV)
