# Quick start: `make demo` runs the pipeline, `make test` runs the tests.
# Both create .venv and install what they need; `make test` also installs the
# Debian packages the tests use when run as root on a machine with apt-get.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install system-deps test demo lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

system-deps:
	@tests/system-deps.sh

test: install system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/adafocus-stream demo

clean:
	rm -rf $(VENV) build *.egg-info
