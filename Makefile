# triplet-loss-book: the two commands a reader needs are `make book` and `make test`.
#
#   make setup    .venv with tripletutils and the book/test extras (only reinstalls
#                 when pyproject.toml changes)
#   make book     setup + execute every notebook afresh + HTML book in _build/html
#   make test     setup + unit tests + pytest --nbval on the committed notebooks
#   make outputs  re-execute the notebooks in place (the committed outputs)
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

.PHONY: setup test unit nbval book html outputs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[book,test]"
	touch $(STAMP)

unit: setup
	$(PY) -m pytest tests

nbval: setup
	$(PY) -m pytest --nbval --nbval-current-env \
	    --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider notebooks

test: unit nbval

# A fresh execution of every notebook (Jupyter Book's "force" mode), then HTML.
book: setup
	$(PY) -m jupyter_book build . --path-output . -W -n --keep-going \
	    --config _config.yml --toc _toc.yml
	@echo "Book: $(CURDIR)/_build/html/index.html"

outputs: setup
	cd notebooks && for nb in $(notdir $(NOTEBOOKS)); do \
	    start=$$(date +%s); \
	    ../$(PY) -m jupyter execute --inplace --timeout=1200 "$$nb" 2>/dev/null || exit 1; \
	    echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	done
	$(PY) -c "import json, base64, pathlib; \
	cells = json.load(open('notebooks/05_per_class_evaluation.ipynb'))['cells']; \
	out = [o for c in cells if 'readme-figure' in c['metadata'].get('tags', []) for o in c['outputs'] if 'image/png' in o.get('data', {})]; \
	pathlib.Path('book/images').mkdir(parents=True, exist_ok=True); \
	pathlib.Path('book/images/embedding_maps.png').write_bytes(base64.b64decode(out[0]['data']['image/png'])); \
	print('wrote book/images/embedding_maps.png')"

clean:
	rm -rf _build artifacts notebooks/artifacts
