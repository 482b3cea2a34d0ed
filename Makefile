# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PIP_FLAGS := --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test test-slow lint format install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamp files make repeated runs cheap; they depend on the files that define the install.
$(VENV)/.installed-test: $(PY) pyproject.toml constraints.txt
	$(PIP) install $(PIP_FLAGS) -e ".[test,comparators]"
	touch $@

install: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/lexppl demo

test: install
	$(PY) -m ruff check lexppl tests benchmarks
	$(PY) -m pytest -n 2 --dist loadfile -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(PY) -m ruff check lexppl tests benchmarks
	$(PY) -m ruff format --check lexppl tests benchmarks

format: install
	$(PY) -m ruff check --fix lexppl tests benchmarks
	$(PY) -m ruff format lexppl tests benchmarks

bench: install
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
