# Two entry points (see README): `make quickstart` runs the main job, `make test` runs the tests.
# Builds and models are cached under ~/.cache/llmops, so only the first run is slow.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: quickstart test install install-test provision-test sshd clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# A real `pip install .` (not editable): the tool must work from any folder, templates included.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet .

quickstart: install
	$(BIN)/llmops apply playbooks/quickstart.yml

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'

# The SSH tests start their own sshd on 127.0.0.1; it comes from Debian's openssh-server.
sshd:
	@test -x /usr/sbin/sshd || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; fi; }

# Build llama-server, the tiny model and the vLLM venv once (cached), before the timed tests.
provision-test: install-test
	$(BIN)/llmops provision playbooks/quickstart.yml

test: install-test sshd provision-test
	$(BIN)/python -m pytest -ra

clean:
	rm -rf $(VENV) build dist *.egg-info runs
