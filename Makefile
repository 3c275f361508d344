# Two commands are the whole set-up on a fresh machine: `make demo` and `make test`.
#
# What they install comes from the lock in requirements/ (exact versions with hashes), so a
# fresh machine installs today what was tested, whatever the registry serves tomorrow.
# `make lock` refreshes it; `make test-latest` and `make test-oldest` run the tests against the
# newest releases and against the lower bounds pyproject.toml claims.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
UV_VERSION := 0.13.9
# Inputs of the lock: every lock file is compiled from these for Python 3.11 on any platform.
LOCK_INPUTS := pyproject.toml requirements/build.in
# What the tests and the demo need beside the service: the test tools, and the sandbox
# (`--sandbox`, the local API emulators) that they run. The image (runtime.txt) needs neither.
TEST_EXTRAS := --extra test --extra sandbox
COMPILE = $(VENV)-lock/bin/uv pip compile $(LOCK_INPUTS) --quiet --generate-hashes \
	--universal --python-version 3.11 --custom-compile-command "make lock"

.PHONY: demo test lint bench lock names test-latest test-oldest clean

# The project itself goes in without its dependencies (they all come from the lock) and
# without build isolation (setuptools comes from the lock too).
define install_locked
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install --quiet --require-hashes --no-deps -r $(2)
	$(1)/bin/pip install --quiet --no-deps --no-build-isolation -e .
endef

$(STAMP): pyproject.toml requirements/test.txt
	rm -rf $(VENV)
	$(call install_locked,$(VENV),requirements/test.txt)
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/bench.txt
	touch $(BENCH_STAMP)

demo: $(STAMP)
	rm -rf demo-output
	$(BIN)/resume-collector once --sandbox --config examples/demo.toml
	$(BIN)/resume-collector stats --config examples/demo.toml

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/pipeline_bench.py
	$(BIN)/python benchmarks/ratelimit_bench.py

# Compile the anonymizer's world name list from names-dataset (processors/data/world_names.txt.gz).
names: $(BENCH_STAMP)
	$(BIN)/python -c 'from processors.anonymize.world_names import main; main()'

# Refresh the lock: the newest releases that satisfy pyproject.toml, and (oldest.txt) the lower
# bounds it claims. Review the diff of requirements/ like any other change.
lock:
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install --quiet uv==$(UV_VERSION)
	$(COMPILE) $(TEST_EXTRAS) -o requirements/test.txt
	$(COMPILE) -c requirements/test.txt -o requirements/runtime.txt
	$(COMPILE) $(TEST_EXTRAS) --extra bench -c requirements/test.txt -o requirements/bench.txt
	$(COMPILE) $(TEST_EXTRAS) --resolution lowest-direct -o requirements/oldest.txt

# The tests against whatever the registry serves today: an upgrade is a reviewed change.
test-latest:
	rm -rf $(VENV)-latest
	$(PYTHON) -m venv $(VENV)-latest
	$(VENV)-latest/bin/pip install --quiet --upgrade -e '.[test,sandbox]'
	$(VENV)-latest/bin/pytest -q -p no:cacheprovider

# The tests against the lowest versions pyproject.toml allows (requirements/oldest.txt).
test-oldest:
	rm -rf $(VENV)-oldest
	$(call install_locked,$(VENV)-oldest,requirements/oldest.txt)
	$(VENV)-oldest/bin/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(VENV)-lock $(VENV)-latest $(VENV)-oldest demo-output
