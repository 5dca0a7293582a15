# mmkdflow: `make test` and `make demo` create or repair .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
SEEDS ?= 1
TASKS ?= det
DEMO_ARGS ?=

.PHONY: env test test-fast test-floor-lite test-matrix demo clean-env

env:
	@bash tools/setup_env.sh

## the whole suite, slow end-to-end tests included (what CI runs)
test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

## the fast set for development
test-fast: env
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

## teacher -> student distillation on the embedded digits data
## (TASKS="det cls seg" for all three tasks, SEEDS=3 for mean and spread,
## DEMO_ARGS for more tools/demo.py options, e.g. "--fmkt-steps 1 2 4 8")
demo: env
	$(PY) tools/demo.py --seeds $(SEEDS) --task $(TASKS) $(DEMO_ARGS)

clean-env:
	rm -rf $(VENV)

## the floor of the supported range (torch 2.1.2, mmcv-lite 2.1.0,
## mmengine 0.10.7): the tests that need no mmcv.ops / mmdet / mmseg /
## mmpretrain, in .venv-floor-lite (built by tools/setup_floor_env.sh)
FLOOR_LITE_TESTS = tests/test_version.py \
	tests/test_engine/test_restricted_unpickler.py \
	tests/test_engine/test_portable_checkpoints.py \
	tests/test_models/test_losses/test_losses_common.py \
	tests/test_models/test_losses/test_losses_distributions.py \
	tests/test_models/test_losses/test_losses_features.py \
	tests/test_utils/test_allocator.py tests/test_tools/test_sampler_perf.py
test-floor-lite:
	@bash tools/setup_floor_env.sh .venv-floor-lite lite
	.venv-floor-lite/bin/python -m pytest $(FLOOR_LITE_TESTS) $(PYTEST_ARGS)

## the whole suite at the floor: torch 2.1.2 with mmcv 2.1.0 built from
## source against it (about 15-25 minutes once), then both ends
test-matrix: test
	@bash tools/setup_floor_env.sh .venv-floor full
	.venv-floor/bin/python -m pytest tests $(PYTEST_ARGS)
