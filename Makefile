# imgcheck: the two commands a newcomer needs are `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-slow lint fuzz fuzz-ci bench clean

setup:
	@bash scripts/setup.sh

## Run the main job on an embedded default: a local registry with sample k2 images, verified end to end.
demo: setup
	$(PY) scripts/demo.py

## The whole suite (real registry, real engine); lint and type checks first. A skipped test fails the run:
## every tool a test needs is installed by scripts/setup.sh.
test: setup lint
	IMGCHECK_NO_SKIPS=1 $(PY) -m pytest -q

## Slow tests: building imgcheck's own image, exhaustive runs.
test-slow: setup
	IMGCHECK_NO_SKIPS=1 $(PY) -m pytest -q -m slow

lint: setup
	$(VENV)/bin/ruff check src tests fixtures scripts bench
	$(VENV)/bin/ruff format --check src tests fixtures scripts bench
	$(VENV)/bin/mypy

## Property-based fuzzing of every parser of outside input (>= 10,000 examples in total).
fuzz: setup
	IMGCHECK_FUZZ_EXAMPLES=2000 $(PY) -m pytest -q -m fuzz tests

# The same depth with a fixed sequence of examples, for CI (deterministic, ~3 min).
fuzz-ci: setup
	IMGCHECK_NO_SKIPS=1 IMGCHECK_FUZZ_EXAMPLES=2000 IMGCHECK_FUZZ_DERANDOMIZE=1 $(PY) -m pytest -q -m fuzz tests

bench: setup
	$(PY) bench/metadata.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
