# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv when missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format install lock clean

$(PY):
	python3 -m venv $(VENV)

# torch comes first from pip (the CPU wheel these machines provide); uv then installs the pinned lock fast.
$(STAMP): pyproject.toml requirements.lock | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 uv
	$(UV) pip install -q --python $(PY) -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Options pass through: make demo ARGS="--http-port 0 --verbose"
ARGS ?=
demo: install
	$(VENV)/bin/alchemist pipeline run --local $(ARGS)

# lint-imports checks the layering contracts in pyproject.toml ([tool.importlinter]).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache --no-logo

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(PY) -m pytest

# Re-pin every dependency; torch and its CUDA wheels are stripped because torch comes from pip first.
lock: | $(PY)
	$(PY) -m pip install -q uv
	echo "torch==2.13.0" > $(VENV)/torch-constraint.txt
	$(UV) pip compile pyproject.toml --extra dev -c $(VENV)/torch-constraint.txt --python-version 3.11 \
		--no-header -o $(VENV)/full.lock
	$(PY) infra/strip_lock.py $(VENV)/full.lock requirements.lock

clean:
	rm -rf $(VENV) work
