# The same two commands as the README, for those who prefer make.
VENV ?= .venv
PY = $(VENV)/bin/python

.PHONY: setup quickstart test bench
$(PY):
	python3 -m venv $(VENV)

setup: $(PY)
	$(PY) -m pip install -c constraints.txt -e '.[test]'

quickstart: setup
	$(VENV)/bin/orchestrator run

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) -m pip install -c constraints.txt -e '.[bench]'
	$(PY) -m benchmarks.harness --size cpu
