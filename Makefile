# OServer: `make run` serves a landing page and the demo files, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8080
WORKERS ?= 2
RUN_ROOT ?= .run/www
STATUS_PATH := /server-status
BENCH_VENV := bench/.venv
BENCH_PY := $(BENCH_VENV)/bin/python

.PHONY: run test test-tools unit integration bench bench-ab-full bench-tls bench-profile bench-mounts bench-apps testssl scale install clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

# The document root holds fresh copies of the landing page (welcome/), README.md and httptest/ alone, so the
# repository itself is never served. The access log goes to the terminal; the status page is on.
run: $(VENV)/.installed
	rm -rf $(RUN_ROOT) && mkdir -p $(RUN_ROOT) && cp -R httptest $(RUN_ROOT)/httptest
	cp welcome/index.html README.md $(RUN_ROOT)/
	@echo "Serving $(RUN_ROOT) -- open http://$(HOST):$(PORT)/ (Ctrl-C stops); the access log follows"
	$(PY) httpd.py -r $(RUN_ROOT) -b $(HOST) -p $(PORT) -w $(WORKERS) --access-log - --status-path $(STATUS_PATH)

test: $(VENV)/.installed test-tools
	$(PY) -m pytest -q tests

# System tools the integration tests drive: haproxy (tests/integration/test_haproxy.py), from apt when missing.
test-tools:
	@command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || sh tools/apt-install.sh haproxy

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

integration: $(VENV)/.installed test-tools
	$(PY) -m pytest -q tests/integration

# The bench venv holds matplotlib and the servers we compare with; bench/install.sh gets nginx, wrk and ab.
$(BENCH_VENV)/.installed: bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q -r bench/requirements.txt
	touch $@

# OServer vs nginx and the Python servers (issue 7): writes bench/results.md and bench/results.png.
# BENCH_QUICK=1 makes a one-round development run; bench-ab-full runs the issue's exact ab -n 50000 commands;
# bench-profile prints where one worker's time goes (cProfile); BENCH_OSERVER_DIR=DIR benchmarks another checkout;
# bench-tls runs the TLS table alone and writes bench/tls.md.
bench: $(VENV)/.installed $(BENCH_VENV)/.installed
	sh bench/install.sh
	OSERVER_PYTHON=$(PY) $(BENCH_PY) -m bench.run

bench-ab-full: $(VENV)/.installed $(BENCH_VENV)/.installed
	sh bench/install.sh
	OSERVER_PYTHON=$(PY) $(BENCH_PY) -m bench.run --ab-full

bench-tls: $(VENV)/.installed $(BENCH_VENV)/.installed
	sh bench/install.sh
	OSERVER_PYTHON=$(PY) $(BENCH_PY) -m bench.run --tls-only

bench-profile: $(VENV)/.installed $(BENCH_VENV)/.installed
	sh bench/install.sh
	OSERVER_PYTHON=$(PY) $(BENCH_PY) -m bench.profiling

# testssl.sh (Debian's package, installed by bench/install.sh) against a TLS port: writes bench/testssl.md, fails on
# a finding rated HIGH or CRITICAL (about 3 minutes).
testssl: $(VENV)/.installed $(BENCH_VENV)/.installed
	sh bench/install.sh
	OSERVER_PYTHON=$(PY) $(BENCH_PY) -m bench.testssl

# CPU-bound vs I/O-bound mounted handlers (conf/examples) at 1, 2 and 4 workers: writes bench/mounts.md.
bench-mounts: $(VENV)/.installed
	sh bench/install.sh
	$(PY) -m bench.mounts

# Mounted WSGI apps (issue 16): OServer inline and --threads 32 against granian and gunicorn (gthread, sync), a
# static page's p99 during an /io load, and a Flask route; about 4 minutes, writes and prints bench/apps.md.
bench-apps: $(VENV)/.installed $(BENCH_VENV)/.installed
	sh bench/install.sh
	OSERVER_PYTHON=$(PY) $(BENCH_PY) -m bench.apps

# Scale check (issue 8): 1..1000 downloads of a 100 GB sparse file, then 10,000 idle connections, on its own
# loopback server; prints Markdown tables and the goals met (SCALE_ARGS="--url ... --root ..." targets another).
scale: $(VENV)/.installed
	$(PY) -m bench.scale $(SCALE_ARGS)

install: $(VENV)/.installed

clean:
	rm -rf $(VENV) .run .pytest_cache .hypothesis build dist oserver.egg-info
