# The two commands of README.md: `make demo` and `make test`. Both set up what they need.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint bench golden-alerts system-deps clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,deploy]'
	touch $@

demo: $(BIN)/.installed
	mkdir -p out
	$(BIN)/auditor simulate --accounts 5000 --months 24 --seed 7 --out out/demo-events.jsonl
	$(BIN)/auditor replay out/demo-events.jsonl --alerts-out out/alerts.jsonl \
		--deadletter-out out/deadletters.jsonl --metrics-out out/metrics.prom \
		--summary-out out/summary.json
	@echo "alerts: out/alerts.jsonl  dead letters: out/deadletters.jsonl  metrics: out/metrics.prom"
	$(BIN)/auditor report --alerts out/alerts.jsonl --summary out/summary.json --plans-audit \
		--out out/report.html
	@echo "report: file://$(CURDIR)/out/report.html"

system-deps:
	scripts/install-system-deps.sh

test: $(BIN)/.installed system-deps
	$(BIN)/ruff check auditor tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/replay_throughput.py

# Rewrites tests/golden/*.json (the default pack's alerts on fixed streams, as digests) from the
# current tree, printing what changed: only when a change of alerts is intended.
golden-alerts: $(BIN)/.installed
	VENV=$(VENV) scripts/golden-alerts

clean:
	rm -rf out var .pytest_cache .mypy_cache .ruff_cache
