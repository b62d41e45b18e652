# triplet-loss-book: the two commands a reader needs are `make book` and `make test`.
#
#   make setup    .venv with tripletutils and the book/test extras, at the exact
#                 versions of constraints.txt (reinstalls when either file changes)
#   make book     setup + execute every notebook afresh + HTML book in _build/html
#   make unit     the fast unit tests (no training); make unit-all: all of them
#   make test     setup + lint + all unit tests + pytest --nbval on the committed
#                 notebooks (and chapter 12 again with oneDNN off) + HTML from the
#                 committed outputs + browser tests
#   make html     HTML book from the committed outputs (no execution), for the tests
#   make outputs  re-execute the notebooks in place (the committed outputs)
#   make bench    python -m tripletutils.bench -> tripletutils/results/cpu_2cores.json
#   make bench-search  python -m tripletutils.search_bench -> tripletutils/results/search_2cores.json
#   make profile  python -m tripletutils.step_profile -> tripletutils/results/step_profile_2cores.json
#   make experiments [NAME=...] [WORKERS=2] [SCHEDULER=tcp://host:8786]
#                 the runs whose record is missing or stale ->
#                 tripletutils/results/NAME/<run id>.json (resumable)
#   make lint     ruff (format and lint), actionlint and zizmor on the workflows,
#                 CITATION.cff validated by cffconvert
#   make browser  Debian's chromium + chromium-driver for the browser tests (root)
#   make lab      JupyterLab on notebooks/ with the book's kernel
#   make publish  _build/html -> the gh-pages branch (ghp-import), pushed
#   make test-oldest  unit tests against the oldest supported version of every dependency
#   make repo-url URL=https://github.com/you/fork   a fork's one-line change
#
# Offline machines: export TRIPLETUTILS_MNIST=/path/to/mnist.npz first.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# The results ledger (an appendix built from the experiments' records).
LEDGER := book/ledger.ipynb
# One place for the environment every target runs the notebooks in.
export PYTHONHASHSEED ?= 0
# oneDNN on every x86 CPU (TensorFlow turns it on by itself only with AVX-512 or
# AMX): 1.3 times faster training on an AVX2-only AMD EPYC.
export TF_ENABLE_ONEDNN_OPTS ?= 1

JB := $(VENV)/bin/jupyter-book
# Jupyter Book resolves local extensions relative to the config file's folder.
BOOK_SED := sed -e 's|book_fixes: book/_ext|book_fixes: $(CURDIR)/book/_ext|'

.PHONY: setup lock test unit unit-all nbval nbval-kernels experiments book html browser booktests outputs bench clean \
	lint citation lab publish test-oldest repo-url check-solutions colab test-backends \
	bench-search profile

setup: $(STAMP)

# Exact versions from constraints.txt: the committed outputs were made with them.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check \
	    -c constraints.txt -e ".[book,test,experiments,search]"
	touch $(STAMP)

# Regenerate the lock from the current .venv (after changing pyproject.toml).
lock: setup
	{ sed -n '1,/Regenerate with: make lock/p' constraints.txt; \
	  $(PY) -m pip freeze --exclude-editable --disable-pip-version-check; } \
	  > constraints.txt.new && mv constraints.txt.new constraints.txt

# The fast unit tests (a minute or two); `make unit-all` adds the slow ones that
# train networks, as `make test` does.
unit: setup
	$(PY) -m pytest -m "not book and not slow" tests

unit-all: setup
	$(PY) -m pytest -m "not book" tests

nbval: setup
	$(PY) -m pytest --nbval --nbval-current-env \
	    --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider notebooks \
	    $(LEDGER)

# Chapter 12 once more with oneDNN off: other kernels round differently, as other
# CPUs do (bfloat16 natively or emulated), so an output that depends on the CPU's
# arithmetic and is still compared as text fails here, on any machine.
NBVAL_KERNELS := notebooks/12_performance.ipynb notebooks/13_deployment.ipynb
nbval-kernels: setup
	TF_ENABLE_ONEDNN_OPTS=0 $(PY) -m pytest --nbval --nbval-current-env \
	    --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider $(NBVAL_KERNELS)

test: lint unit-all nbval nbval-kernels html booktests

# One formatter and linter for the package, the tests and the notebooks; the two
# GitHub workflows checked by actionlint and zizmor (offline); CITATION.cff.
lint: setup citation
	$(VENV)/bin/ruff format --check --diff .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/actionlint -no-color
	$(VENV)/bin/zizmor --offline --no-progress .github/workflows

# cffconvert pins jsonschema<4, which the book's tools cannot share: own venv.
TOOLS := .venv-tools
citation:
	test -x $(TOOLS)/bin/cffconvert || { $(PYTHON) -m venv $(TOOLS) && \
	    $(TOOLS)/bin/pip install --quiet --disable-pip-version-check \
	    "cffconvert==2.0.0"; }
	$(TOOLS)/bin/cffconvert --validate -i CITATION.cff

# A fresh execution of every notebook, then HTML with warnings as errors. One run
# serves two checks: tools/check_solutions.py runs each chapter top to bottom in a
# fresh kernel in its own folder (as Jupyter Book's "force" mode did), writes it
# executed to $(STAGE) (a cell that fails or writes to stderr fails the book), then
# runs the chapter's worked solutions in the same kernel; the book is then built
# from those executed copies, without executing again.
STAGE := _build/stage
book: setup
	rm -rf $(STAGE) && mkdir -p $(STAGE)
	cp -r book _toc.yml $(STAGE)/
	$(PY) tools/check_solutions.py --executed-dir $(STAGE) $(NOTEBOOKS) $(LEDGER)
	$(BOOK_SED) -e 's/execute_notebooks: "force"/execute_notebooks: "off"/' \
	    _config.yml > $(STAGE)/_config.yml
	$(JB) build $(STAGE) -W -n --keep-going
	rm -rf _build/html && cp -r $(STAGE)/_build/html _build/html
	@echo "Book: $(CURDIR)/_build/html/index.html"

# The same HTML from the committed outputs (already checked by nbval), no execution.
html: setup
	mkdir -p _build
	$(BOOK_SED) -e 's/execute_notebooks: "force"/execute_notebooks: "off"/' _config.yml > _build/_config_html.yml
	$(JB) build . -W -n --keep-going --config _build/_config_html.yml --toc _toc.yml

# Debian's chromium and chromium-driver for the browser tests (needs root; CI runs
# it). Elsewhere, CHROME_BIN and CHROMEDRIVER can name any Chrome and its driver.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	    echo "chromium and chromedriver found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        chromium chromium-driver >/dev/null; \
	else \
	    echo "make browser needs root and apt-get: install Debian's chromium and"; \
	    echo "chromium-driver yourself, or set CHROME_BIN and CHROMEDRIVER"; exit 1; \
	fi

booktests: setup html
	@command -v chromedriver >/dev/null || [ -n "$$CHROMEDRIVER" ] || \
	    echo "No chromedriver: the browser tests will be skipped; run 'make browser'."
	TRIPLETUTILS_REQUIRE_BOOK=1 $(PY) -m pytest -m book tests

# Repeated runs over seeds, the committed records the chapters read (not run by
# CI): only the runs whose record is missing, stale or corrupt, WORKERS local
# processes of one thread each, or a Dask cluster with SCHEDULER=tcp://host:8786.
# NAME=seed_reproduction runs one; without NAME, all of them.
WORKERS ?= 2
experiments: setup
	$(PY) -m tripletutils.engine $(NAME) --workers $(WORKERS) \
	    $(if $(SCHEDULER),--scheduler $(SCHEDULER))

check-solutions: setup
	$(PY) tools/check_solutions.py $(NOTEBOOKS)

outputs: setup
	cd notebooks && for nb in $(notdir $(NOTEBOOKS)); do \
	    start=$$(date +%s); \
	    ../$(PY) -m jupyter execute --inplace --timeout=1200 "$$nb" || exit 1; \
	    echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	done
	cd $(dir $(LEDGER)) && ../$(PY) -m jupyter execute --inplace $(notdir $(LEDGER))
	$(PY) -c "import json, base64, pathlib; \
	cells = json.load(open('notebooks/05_per_class_evaluation.ipynb'))['cells']; \
	out = [o for c in cells if 'readme-figure' in c['metadata'].get('tags', []) for o in c['outputs'] if 'image/png' in o.get('data', {})]; \
	pathlib.Path('book/images').mkdir(parents=True, exist_ok=True); \
	pathlib.Path('book/images/embedding_maps.png').write_bytes(base64.b64decode(out[0]['data']['image/png'])); \
	print('wrote book/images/embedding_maps.png')"

# The benchmark chapter 12 quotes (run it on a quiet machine).
bench: setup
	$(PY) -m tripletutils.bench --output tripletutils/results/cpu_2cores.json

# The search benchmark chapter 14 quotes: exact and approximate indexes at 60,000 and
# about a million references (run it on a quiet machine; about 10 minutes on 2 cores).
bench-search: setup
	$(PY) -m tripletutils.search_bench --output tripletutils/results/search_2cores.json

# Where a training step's time goes (TensorFlow's profiler), for chapter 12.
profile: setup
	$(PY) -m tripletutils.step_profile --output tripletutils/results/step_profile_2cores.json

# JupyterLab (the `lab` extra) with the venv registered as a named kernel.
KERNEL := triplet-loss-book
lab: setup
	$(PY) -m pip install --quiet --disable-pip-version-check \
	    -c constraints.txt -e ".[book,test,lab]"
	$(PY) -m ipykernel install --user --name $(KERNEL) \
	    --display-name "Triplet loss book (.venv)"
	cd notebooks && ../$(VENV)/bin/jupyter lab \
	    --MappingKernelManager.default_kernel_name=$(KERNEL) \
	    $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)

# Publish _build/html (make html or make book first) to the gh-pages branch of
# PUBLISH_REMOTE, with .nojekyll so that GitHub Pages serves _static/ as it is.
SITE ?= _build/html
PUBLISH_REMOTE ?= origin
publish:
	@test -f $(SITE)/index.html || { echo "$(SITE) is not built: make html"; exit 1; }
	$(VENV)/bin/ghp-import --no-jekyll --push --force --remote $(PUBLISH_REMOTE) \
	    --branch gh-pages --message "Publish the book" $(SITE)

# The unit tests against the oldest TensorFlow/Keras that pyproject.toml allows.
OLDEST := .venv-oldest
test-oldest:
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install --quiet --disable-pip-version-check \
	    -c constraints-oldest.txt -e ".[test,experiments,search]"
	$(OLDEST)/bin/python -c "import tensorflow as tf, keras; \
	    print('oldest: tensorflow', tf.__version__, 'keras', keras.__version__)"
	$(OLDEST)/bin/python -m pytest -m "not book" -p no:cacheprovider tests

# The pair losses on Keras 3's other backends, JAX and PyTorch: the NumPy-reference
# tests of their values and gradients (tests/test_pair_losses.py, each backend's own
# autodiff), in an environment of their own without TensorFlow (so without
# tests/conftest.py, which imports it). Not run by CI.
BACKENDS := .venv-backends
test-backends:
	test -x $(BACKENDS)/bin/python || $(PYTHON) -m venv $(BACKENDS)
	$(BACKENDS)/bin/pip install --quiet --disable-pip-version-check \
	    -c constraints-backends.txt keras numpy scipy pytest jax jaxlib torch
	for backend in jax torch; do \
	    KERAS_BACKEND=$$backend PYTHONPATH=. $(BACKENDS)/bin/python -m pytest \
	    --noconftest -p no:cacheprovider tests/test_pair_losses.py || exit 1; \
	done

# Every chapter as a Colab reader runs it: alone in an empty folder, on Colab's
# Python and packages (constraints-colab.txt), installing the package from this
# checkout's committed HEAD. PYTHON313 names a Python 3.13 interpreter.
COLAB := .venv-colab
PYTHON313 ?= python3.13
colab:
	test -x $(COLAB)/bin/python || $(PYTHON313) -m venv $(COLAB)
	grep -v '^python_version' constraints-colab.txt > $(COLAB)/requirements.txt
	$(COLAB)/bin/pip install --quiet --disable-pip-version-check \
	    -r $(COLAB)/requirements.txt
	$(COLAB)/bin/python tools/colab_check.py $(NOTEBOOKS)

# A fork's repository URL: written once in _config.yml, copied by this target.
repo-url: setup
	$(PY) tools/repo_url.py set "$(URL)"

clean:
	rm -rf _build artifacts notebooks/artifacts
