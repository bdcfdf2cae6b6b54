# The two set-up commands of the README: `make demo` and `make test`. Both create the
# project-local virtual environment .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: venv
	$(PY) -m kerasnets demo

# Two workers: building Keras graphs is single-threaded Python, so two processes use both cores.
test: venv
	$(PY) -m pytest -q -ra -n 2 --dist worksteal

clean:
	rm -rf $(VENV) out .pytest_cache
