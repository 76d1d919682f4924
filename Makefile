# fastai_active: `make demo` runs the demo, `make test` the whole test suite.
# Both create the project venv (.venv) on first use and install everything into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install export readme bench-venv

$(STAMP): settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, on its own: this pair is on the machine's disk (any other torch request downloads GBs)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	# the ray extra too, so that the Ray scoring tests (tests/test_distributed.py) run
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev,ray]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fastai_active.demo

test: $(STAMP)
	VENV=$(VENV) bash .ci/test

# after editing notebooks: clean them, regenerate the package and README.md
export: $(STAMP)
	$(BIN)/nbdev_clean && $(BIN)/nbdev_export && $(BIN)/python .ci/readme.py
