# The two commands a newcomer needs: `make dev` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint workers bench-import bench-send bench-tracking bench-report bench-scale clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## Start PostgreSQL (embedded unless DATABASE_URL is set), the Dagster UI on :3000 and the tracking app on :8080.
dev: $(STAMP)
	$(BIN)/python -m campaign_pipelines.devserver

## Start N Celery workers on this machine (default 2) for runs with CAMPAIGNS_EXECUTOR=celery (docs/deploy.md).
N ?= 2
workers: $(STAMP)
	@trap 'kill $$(jobs -p); wait' INT TERM; for i in $$(seq 1 $(N)); do $(BIN)/python -m campaign_pipelines.worker --name worker$$i & done; wait

## Run the whole test suite against real PostgreSQL and Redis.
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench-import: $(STAMP)
	$(BIN)/python bench/import_bench.py --repeat 3

bench-send: $(STAMP)
	$(BIN)/python bench/send_bench.py

bench-tracking: $(STAMP)
	$(BIN)/python bench/tracking_bench.py

bench-report: $(STAMP)
	$(BIN)/python bench/report_bench.py --compare-reads

bench-scale: $(STAMP)
	$(BIN)/python bench/scale_bench.py --sizes 1000000 3000000 10000000

clean:
	rm -rf $(VENV) var
