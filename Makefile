# kappascope: two commands on a fresh machine.
#   make demo   set up .venv and launch the dashboard on the embedded default
#   make test   set up .venv (and Debian's Chromium for browser tests) and run every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 5006
# the demo listens on localhost only (loopback); serve on other interfaces with kappascope serve --address
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test setup chromium bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

chromium:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)

demo: setup
	$(VENV)/bin/panel serve dashboard/app.py --address localhost --port $(PORT) --show --num-threads 2

test: setup chromium
	$(PY) -m pytest -n 2 --dist loadgroup tests --nbmake notebooks/dashboard_embed.ipynb

bench: setup  # the live-sampling timings of benchmarks/README.md ("Must-reach items"); ≈ 10 min on 2 idle cores
	$(PY) benchmarks/bench_dashboard.py prior=hybrid
	$(PY) -m benchmarks.compare_samplers --must-reach pc:num_corrector_steps=0 --must-reach-only --must-reach-items 1,2 --tag compare_samplers_idle

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
