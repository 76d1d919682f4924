# fastai_active: `make demo` runs the demo, `make test` the whole test suite.
# Both create the project venv (.venv) on first use and install everything into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install export figures readme bench-venv docs docs-serve docs-check integration

$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, on its own: this pair is on the machine's disk (any other torch request downloads GBs)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	# the ray extra too, so that the Ray scoring tests (tests/test_distributed.py) run; detection for mAP
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev,ray,detection]"
	touch $(STAMP)

install: $(STAMP)

# the demo; its table, every run and its wall time with the machine and load go to benchmarks/results/demo (the README quotes them)
demo: $(STAMP)
	$(BIN)/python -m fastai_active.demo --record benchmarks/results/demo

# every test, the ones marked `slow` (worker processes, Ray) included; while developing,
# `.venv/bin/pytest -m "not slow" tests` leaves those out
test: $(STAMP)
	VENV=$(VENV) bash .ci/test

# after editing notebooks: clean them, regenerate the package and README.md
export: $(STAMP)
	$(BIN)/nbdev_clean && $(BIN)/nbdev_export && $(BIN)/python .ci/readme.py

# the README's result tables regenerated from benchmarks/results (then README.md); without --write it only checks
figures: $(STAMP)
	$(BIN)/python -m benchmarks.readme_figures --write

# the docs site, offline: nbdev's notebook processors, then MkDocs Material (docs/build.py) -> _docs/
DOCS_STAMP := $(VENV)/.installed-docs
DOCS_PORT ?= 8000
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python docs/build.py

# look at it: http://127.0.0.1:$(DOCS_PORT)/
docs-serve: docs
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory _docs $(DOCS_PORT)

# every page in headless Chromium (the Debian package; installed here when missing and run as root)
docs-check: docs
	bash .ci/chromium.sh
	$(BIN)/python docs/check.py

# Tests that start a real Label Studio server and a headless browser on 127.0.0.1 (minutes each: not in CI).
# Label Studio goes in its own venv and never into the project's; the browser is the OS package
# (apt-get install -y chromium chromium-driver).
LS_VENV := .venv-ls
$(LS_VENV)/.installed:
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	# sentry-sdk 3 (released after Label Studio 1.23.2) makes it fail to start: TypeError: Unknown option 'send_default_pii'
	$(LS_VENV)/bin/pip install -q --disable-pip-version-check label-studio==1.23.2 'sentry-sdk<3'
	touch $@

integration: $(STAMP) $(LS_VENV)/.installed
	bash .ci/chromium.sh
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev,labelstudio,integration]"
	FASTAI_ACTIVE_INTEGRATION=1 MPLBACKEND=Agg $(BIN)/pytest -q -s -p no:cacheprovider tests/integration
