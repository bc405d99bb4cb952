# Two entry points (see README): `make quickstart` runs the main job, `make test` runs the tests.
# Builds and models are cached under ~/.cache/llmops, so only the first run is slow.

PYTHON ?= python3
# Two venvs: the tests' (an editable install with the test extras: tests import the checkout) and
# the main job's (a plain `pip install .`). Shared, each would replace the other's install, and
# after `make quickstart` a plain `.venv/bin/pytest` would test a stale copy of the code.
VENV ?= .venv
BIN := $(VENV)/bin
RUN_VENV ?= .venv-run
RUN_BIN := $(RUN_VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: quickstart test lint install install-test provision-test system-packages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_BIN)/python:
	$(PYTHON) -m venv $(RUN_VENV)

# A real `pip install .` (not editable): the tool must work from any folder, templates included.
install: $(RUN_BIN)/python
	$(RUN_BIN)/python -m pip install --quiet --upgrade pip
	$(RUN_BIN)/python -m pip install --quiet .

quickstart: install
	$(RUN_BIN)/llmops apply playbooks/quickstart.yml

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'

# Debian packages the tests drive for real: openssh-server (the SSH tests start their own sshd on
# 127.0.0.1 and in network namespaces), iproute2 (namespaces), chromium (the HTML report test)
# and podman (containers: launcher podman, images built locally, never pulled).
DEBS := openssh-server iproute2 chromium podman
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

system-packages:
	@test -x /usr/sbin/sshd && command -v ip >/dev/null && command -v chromium >/dev/null && command -v podman >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBS) >/dev/null; }

# Build llama-server, the tiny model and the vLLM venv once (cached), before the timed tests.
provision-test: install-test
	$(BIN)/llmops provision playbooks/quickstart.yml

# Two tiers (tests/conftest.py marks them): the fast one first, so a plain mistake fails in
# about two minutes, then the tests that drive real servers, sshd, namespaces and the browser.
# The fast tier is a plain `pytest` (tests/fast_tier.py): on every core (pytest-xdist: its tests
# share no ports or files) at nice 10, while its tests that judge time (marker `timed`: the
# emulator streams at known times) run beside them in a process of their own, one at a time and
# at normal priority: a loaded CPU would delay the emulator and the client alike.
# The real tier runs one test at a time, because its tests measure servers and must not load
# each other.
FAST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -ra --durations=15

.PHONY: test-fast test-real
test-fast: install-test
	$(PYTEST) -n $(FAST_WORKERS)

test-real: install-test system-packages provision-test
	$(PYTEST) -m real

test: install-test system-packages provision-test
	$(MAKE) --no-print-directory test-fast
	$(MAKE) --no-print-directory test-real

# ruff's rules are in ruff.toml; the fast tier runs the same check (tests/test_lint.py).
lint: install-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(RUN_VENV) build dist *.egg-info runs
