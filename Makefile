# triplet-loss-book: the two commands a reader needs are `make book` and `make test`.
#
#   make setup    .venv with tripletutils and the book/test extras (only reinstalls
#                 when pyproject.toml changes)
#   make book     setup + execute every notebook afresh + HTML book in _build/html
#   make test     setup + unit tests + pytest --nbval on the committed notebooks
#                 + HTML from the committed outputs + browser tests of that HTML
#   make html     HTML book from the committed outputs (no execution), for the tests
#   make outputs  re-execute the notebooks in place (the committed outputs)
#   make bench    python -m tripletutils.bench -> notebooks/bench/cpu_2cores.json
#
# Offline machines: export TRIPLETUTILS_MNIST=/path/to/mnist.npz first.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# One place for the environment every target runs the notebooks in.
export PYTHONHASHSEED ?= 0

JB := $(VENV)/bin/jupyter-book
# Jupyter Book resolves local extensions relative to the config file's folder.
BOOK_SED := sed -e 's|book_fixes: book/_ext|book_fixes: $(CURDIR)/book/_ext|'

.PHONY: setup test unit nbval book html browser-deps booktests outputs bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[book,test]"
	touch $(STAMP)

unit: setup
	$(PY) -m pytest -m "not book" tests

nbval: setup
	$(PY) -m pytest --nbval --nbval-current-env \
	    --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider notebooks

test: unit nbval html booktests

# A fresh execution of every notebook (Jupyter Book's "force" mode), then HTML,
# with warnings as errors.
book: setup
	mkdir -p _build
	$(BOOK_SED) _config.yml > _build/_config_book.yml
	$(JB) build . -W -n --keep-going --config _build/_config_book.yml --toc _toc.yml
	@echo "Book: $(CURDIR)/_build/html/index.html"

# The same HTML from the committed outputs (already checked by nbval), no execution.
html: setup
	mkdir -p _build
	$(BOOK_SED) -e 's/execute_notebooks: "force"/execute_notebooks: "off"/' _config.yml > _build/_config_html.yml
	$(JB) build . -W -n --keep-going --config _build/_config_html.yml --toc _toc.yml

# Debian's chromium and chromium-driver for the browser tests, when missing.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	    echo "chromium and chromedriver found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
	    echo "chromium/chromedriver missing and not root: install Debian's chromium and chromium-driver to run the browser tests"; \
	fi

booktests: setup browser-deps
	TRIPLETUTILS_REQUIRE_BOOK=1 $(PY) -m pytest -m book tests

outputs: setup
	cd notebooks && for nb in $(notdir $(NOTEBOOKS)); do \
	    start=$$(date +%s); \
	    ../$(PY) -m jupyter execute --inplace --timeout=1200 "$$nb" || exit 1; \
	    echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	done
	$(PY) -c "import json, base64, pathlib; \
	cells = json.load(open('notebooks/05_per_class_evaluation.ipynb'))['cells']; \
	out = [o for c in cells if 'readme-figure' in c['metadata'].get('tags', []) for o in c['outputs'] if 'image/png' in o.get('data', {})]; \
	pathlib.Path('book/images').mkdir(parents=True, exist_ok=True); \
	pathlib.Path('book/images/embedding_maps.png').write_bytes(base64.b64decode(out[0]['data']['image/png'])); \
	print('wrote book/images/embedding_maps.png')"

# The benchmark chapter 10 quotes (run it on a quiet machine).
bench: setup
	mkdir -p notebooks/bench
	$(PY) -m tripletutils.bench --output notebooks/bench/cpu_2cores.json

clean:
	rm -rf _build artifacts notebooks/artifacts
