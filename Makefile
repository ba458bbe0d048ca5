# orchestrator-data — `make run` brings the data layer up on the embedded stack; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CLI    := $(BIN)/orchestrator-data
ES_NODE_SOURCES := elasticsearch-node/pom.xml $(shell find elasticsearch-node/src -name '*.java' 2>/dev/null)

.PHONY: install minio run test test-unit ui stack-start stack-stop stack-status status bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The Elasticsearch node's jars come from Maven Central (see elasticsearch-node/README.md).
elasticsearch-node/target/.built: $(ES_NODE_SOURCES)
	mvn -q -B -f elasticsearch-node/pom.xml -DskipTests package
	touch $@

# MinIO, the tests' S3-compatible server: built from the Go module proxy at the version pinned in
# orchestrator_data/stack/object_store.py, into a cache outside the clone (a no-op once there). Only
# `make test` needs it: `make run` does not pay the first build.
minio: $(BIN)/.installed
	$(BIN)/python -m orchestrator_data.stack.object_store build

install: $(BIN)/.installed elasticsearch-node/target/.built

run: install
	$(CLI) stack start
	$(CLI) test
	$(CLI) status
	$(CLI) run bootstrap_job

# Three processes (pytest-xdist), each with its own servers: on 2 cores a third fills the time the
# others wait on servers and subprocesses; worksteal evens out the long tests (tests/conftest.py).
TEST_WORKERS ?= 3

test: install minio
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

test-unit: install
	$(BIN)/pytest -m "not integration"

ui: install
	$(CLI) stack start
	$(CLI) ui

stack-start: install
	$(CLI) stack start

stack-stop:
	$(CLI) stack stop

stack-status status:
	$(CLI) stack status

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) elasticsearch-node/target *.egg-info .pytest_cache
