# Roomcast: `make run` starts everything, `make test` runs the suite, `make chaos` the fault suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast chaos screenshots lint format deps dev-deps bench bench-quick bench-deps clean

run: deps
	$(BIN)/python -m devtools.devserver

test: dev-deps
	$(BIN)/python -m pytest -m "not chaos" $(PYTEST_ARGS)

# The unit tests alone (in-process, under a minute): no gunicorn, Celery, nginx or browser.
test-fast: dev-deps
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

# The chaos suite (tests/test_chaos.py): the real stack broken on purpose; each
# scenario prints its figures (-s). CHAOS_SEED=<n> replays a run's choices.
chaos: dev-deps
	$(BIN)/python -m pytest -m chaos -s -v tests/test_chaos.py $(PYTEST_ARGS)

# The README's screenshots, light, dark and phone (docs/screenshots/), taken by a browser test.
screenshots: dev-deps
	UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -m browser tests/test_browser_ux.py -k screenshots $(PYTEST_ARGS)

lint: dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev-deps
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

deps: $(VENV)/.runtime-installed node_modules/.installed

dev-deps: deps $(VENV)/.dev-installed

$(VENV)/.runtime-installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Roomcast needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The benchmark (bench/README.md): every server side by side, on loopback. Its runner
# uses the dev requirements (requests), so a fresh `make run` checkout can bench too.
bench: bench-deps
	$(BIN)/python bench/run.py

bench-quick: bench-deps
	$(BIN)/python bench/run.py --quick

bench-deps: dev-deps bench/node_modules/.installed bench/.venv-peers/.installed bench/.venv-simple/.installed

bench/node_modules/.installed: bench/package.json bench/package-lock.json
	cd bench && npm ci --no-audit --no-fund
	touch $@

# The asyncio peer server, and py-spy.
bench/.venv-peers/.installed: bench/requirements-peers.txt
	test -x bench/.venv-peers/bin/python || $(PYTHON) -m venv bench/.venv-peers
	bench/.venv-peers/bin/python -m pip install --quiet -r bench/requirements-peers.txt
	touch $@

# Roomcast's own requirements without gevent-websocket: engineio then serves
# WebSockets with simple-websocket, for gunicorn -k gevent.
bench/.venv-simple/.installed: requirements.txt
	test -x bench/.venv-simple/bin/python || $(PYTHON) -m venv bench/.venv-simple
	bench/.venv-simple/bin/python -m pip install --quiet -r requirements.txt
	bench/.venv-simple/bin/python -m pip uninstall --quiet --yes gevent-websocket
	touch $@

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache bench/node_modules bench/.venv-peers bench/.venv-simple
