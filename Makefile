# The README's two commands: `make run` and `make test`. Both set up .venv on first use, compiling the
# Numba kernels into the cache there (`nksim compile`), so the first run starts at once.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCENARIO ?= scenarios/quickstart.yaml

.PHONY: run test bench check clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $$(.ci/find-python) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(VENV)/bin/nksim compile --quiet scenarios
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/nksim run $(SCENARIO) --overwrite

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

check: $(STAMP)
	$(VENV)/bin/nksim check $(SCENARIO)

clean:
	rm -rf $(VENV) results/*/ .pytest_cache
