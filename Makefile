# OServer: `make run` serves the demo files, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080
WORKERS ?= 2
RUN_ROOT := .run/www

.PHONY: run test unit integration bench scale install clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

# The document root is a fresh copy of httptest/ alone, so the repository itself is never served.
run: $(VENV)/.installed
	rm -rf $(RUN_ROOT) && mkdir -p $(RUN_ROOT) && cp -R httptest $(RUN_ROOT)/httptest
	@echo "Serving $(RUN_ROOT) -- open http://$(HOST):$(PORT)/httptest/dir2/ (Ctrl-C stops)"
	$(PY) httpd.py -r $(RUN_ROOT) -b $(HOST) -p $(PORT) -w $(WORKERS)

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

integration: $(VENV)/.installed
	$(PY) -m pytest -q tests/integration

install: $(VENV)/.installed

clean:
	rm -rf $(VENV) .run .pytest_cache .hypothesis
