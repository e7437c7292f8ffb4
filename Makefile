# Two commands do all set-up on a fresh machine with Python 3.11:
#   make run   - create .venv if missing, install, run the flagship pipeline end to end
#   make test  - likewise, then run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run quickstart test bench install clean lint

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# The ML lifecycle demo on the embedded defaults (store ./cache): data -> train -> gate -> registry ->
# a serving check on loopback -> monitoring of a clean batch (no alert) and a drifted one (alert, expected).
run: $(STAMP)
	$(BIN)/python pipelines/datasource.py
	$(BIN)/orch run pipelines/lifecycle.py
	$(BIN)/python pipelines/serving_check.py churn
	$(BIN)/orch monitor churn --batch data/lifecycle/batch_clean.parquet
	$(BIN)/orch monitor churn --batch data/lifecycle/batch_drifted.parquet; \
	  status=$$?; test $$status -eq 1 && echo "(the alert above is expected: that batch is drifted)" || exit 1
	$(BIN)/python pipelines/summary.py churn

quickstart: $(STAMP)
	$(BIN)/orch run pipelines/quickstart.py

# Two workers (pytest-xdist): many tests wait on child processes, so the suite takes about half the
# time on two cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/python -m ruff check orchestrator tests pipelines benchmarks
	$(BIN)/python -m mypy orchestrator
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
