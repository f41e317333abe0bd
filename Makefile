# Entry points: `make demo` (the example daily DAG against the sandbox) and `make test`
# (lint + the whole suite; .ci/run calls it). Each creates and fills its virtual environment.
# Others: `make bench` (benchmarks), `make stack-test` (distributed Airflow on Celery),
# `make stack-faults` (the same stack under faults: a lost worker, scheduler and triggerer
# restarts, the API unreachable), `make soak` (the same stack at scale, 15-30 min: a 12-month
# backfill beside 14 daily runs at a 20 requests/s limit, one worker killed), `make
# package-check` (build, twine check, install the wheel into a fresh venv), `make docs` (the
# Sphinx docs in docs/, warnings as errors, into docs/_build/html).
#
# Airflow versions: AIRFLOW_VERSION=3.0.6|3.1.8|3.2.2|3.3.2 with its own VENV, pinned by
# constraints/airflow-$(AIRFLOW_VERSION).txt (versions of that release's time, tested in CI).
# INSTALLER=uv (default: uv, installed by pip into the venv from constraints, installs the
# ~240 pinned packages in seconds) or INSTALLER=pip (same pins, a few minutes).
PYTHON ?= python3.11
AIRFLOW_VERSION ?= 3.3.2
VENV ?= .venv
CONSTRAINTS ?= constraints/airflow-$(AIRFLOW_VERSION).txt
INSTALLER ?= uv
# pytest-xdist processes for `make test` (0: one process). Most tests wait on sockets, sleeps and
# subprocesses (the sandbox, dag.test(), Chromium), so 3 keep 2 cores busy.
PYTEST_WORKERS ?= 3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(AIRFLOW_VERSION)
PIN := $(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS))
INSTALL_uv := $(VENV)/bin/uv pip install -q --python $(PY)
INSTALL_pip := $(PY) -m pip install -q

.PHONY: venv test lint demo bench stack-test stack-faults soak package-check docs clean

$(STAMP): setup.cfg pyproject.toml $(wildcard $(CONSTRAINTS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(filter uv,$(INSTALLER)),$(PY) -m pip install -q $(PIN) uv)
	$(INSTALL_$(INSTALLER)) $(PIN) "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# The docs extra (Sphinx, MyST) goes into the same venv, pinned by the same constraints: the API
# pages import the package (autodoc), so they need the Airflow the tests use.
DOCS_STAMP := $(VENV)/.installed-docs-$(AIRFLOW_VERSION)
$(DOCS_STAMP): $(STAMP)
	$(INSTALL_$(INSTALLER)) $(PIN) "apache-airflow==$(AIRFLOW_VERSION)" -e ".[test,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	rm -rf docs/_build
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

# mypy runs against the newest Airflow only: the 3.0 fallback imports type-check differently.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(if $(filter 3.3.%,$(AIRFLOW_VERSION)),$(VENV)/bin/mypy)

test: lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) scripts/demo.py

bench: $(STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

stack-test: $(STAMP)
	VENV=$(VENV) bash scripts/stack.sh test

# Its own stack folder, so that it can run beside `make stack-test`.
STACK_FAULTS_DIR ?= $(or $(TMPDIR),/tmp)/engagelab-stack-faults
stack-faults: $(STAMP)
	VENV=$(VENV) STACK_DIR=$(STACK_FAULTS_DIR) STACK_DRIVER=tests/stack/stack_faults.py \
		bash scripts/stack.sh test $(STACK_ARGS)

# Not in CI: 15 min at the defaults, 30 min with SOAK_ARGS="--months 36"; SOAK_ARGS e.g.
# "--months 3 --journeys 500" for a shorter one.
# statsd: Airflow sends the scheduler's loop time over StatsD only with that package.
STACK_SOAK_DIR ?= $(or $(TMPDIR),/tmp)/engagelab-soak
soak: $(STAMP)
	$(PY) -c "import statsd" 2>/dev/null || $(INSTALL_$(INSTALLER)) -c constraints/celery-stack.txt statsd
	VENV=$(VENV) STACK_DIR=$(STACK_SOAK_DIR) STACK_DRIVER=tests/stack/stack_soak.py \
		bash scripts/stack.sh test $(SOAK_ARGS)

package-check:
	AIRFLOW_VERSION=$(AIRFLOW_VERSION) bash scripts/check-package.sh

clean:
	rm -rf $(VENV) build dist *.egg-info demo-output .airflow-demo docs/_build
