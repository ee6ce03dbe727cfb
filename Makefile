# Two commands a newcomer needs: `make demo` and `make test`. Each sets up
# .venv itself on a machine with only Python 3.11+ and make. pip runs with -qq:
# errors still show, but not the build backend's notes about editable installs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BRIEFING := $(BIN)/briefing --config config.yaml
# A fixed, public key for the demo only: anyone can forge its links. Real runs
# read BRIEFING_SECRET_KEY from the environment.
DEMO_KEY := demo-only-signing-key-not-secret-do-not-use-in-production
# Development data for `make quality` and `make bench`, beside the repository.
DATA ?= ../shared/data

.PHONY: demo web test lint install install-test bench bench-send bounce-corpus quality clean

$(BIN)/briefing: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e .
	@touch $@

$(VENV)/.test-installed: $(BIN)/briefing
	$(BIN)/python -m pip install -qq -e '.[test]'
	@touch $@

$(VENV)/.bench-installed: $(BIN)/briefing
	$(BIN)/python -m pip install -qq -e '.[test,bench]'
	@touch $@

install: $(BIN)/briefing
install-test: $(VENV)/.test-installed

demo: $(BIN)/briefing
	@echo "== ingest the samples"
	$(BRIEFING) ingest
	@echo "== import subscribers/sample.csv (its last row is deliberately bad)"
	@# The import exits 1 when a row is bad; here that is the expected outcome.
	@$(BRIEFING) subscribers import subscribers/sample.csv || test $$? -eq 1
	@echo "== deliver today's edition to every sample subscription"
	BRIEFING_SECRET_KEY=$(DEMO_KEY) $(BRIEFING) send --now
	@echo "== preview one edition for an editor"
	BRIEFING_SECRET_KEY=$(DEMO_KEY) $(BRIEFING) preview --subscriber ana.silva@example.com --out var/preview
	@echo
	@echo "Messages (Maildir): var/outbox/new/   HTML preview: var/preview/"

web: $(BIN)/briefing
	@echo "== serve the demo's links (unsubscribe, preferences, view in browser, sign-up)"
	BRIEFING_SECRET_KEY=$(DEMO_KEY) $(BRIEFING) web

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

$(VENV)/.lint-installed: $(BIN)/briefing
	$(BIN)/python -m pip install -qq -e '.[lint]'
	@touch $@

# Style, types and the import contracts in pyproject.toml ([tool.importlinter]).
lint: $(VENV)/.lint-installed
	$(BIN)/ruff check briefing tests benchmarks
	$(BIN)/ruff format --check briefing tests benchmarks
	$(BIN)/mypy --strict briefing
	$(BIN)/lint-imports

bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/render_compose.py
	$(BIN)/python benchmarks/relate.py --data $(DATA)

# The text-quality harness on the development data (DATA), which is never
# copied into this repository.
quality:
	@test -d "$(DATA)/bbc" && test -f "$(DATA)/allsides/stories.jsonl" || { \
	  echo "make quality: no development data in $(DATA) (expected bbc/ and allsides/stories.jsonl);"; \
	  echo "put it there or run: make quality DATA=/path/to/data"; exit 1; }
	@$(MAKE) --no-print-directory $(VENV)/.bench-installed
	@mkdir -p var
	$(BIN)/python benchmarks/quality.py --data $(DATA) --out var/quality.jsonl

# Fetches Postfix's smtp-sink/smtp-source into benchmarks/.cache (apt-get download + dpkg -x).
bench-send: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/send_throughput.py

# The scale table (benchmarks/scale.py): N = 10k and 100k on SQLite and the local PostgreSQL
# (ARGS="--big" adds 1M; ARGS="--n 10k --db sqlite" for a quick one). Fetches Postfix like bench-send.
.PHONY: bench-scale
bench-scale: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/scale.py $(ARGS)

# Real bounce messages for the classifier's tests: the sdist of flufl.bounce ships Mailman's corpus.
# Extracted into tests/.cache/bounce-corpus (git-ignored); the tests skip, saying why, without it.
BOUNCE_CORPUS := tests/.cache/bounce-corpus
bounce-corpus: $(BIN)/briefing
	mkdir -p tests/.cache/sdist
	$(BIN)/python -m pip download -q --no-deps --no-binary :all: flufl.bounce -d tests/.cache/sdist
	rm -rf $(BOUNCE_CORPUS) && mkdir -p $(BOUNCE_CORPUS)
	tar -xzf "$$(ls tests/.cache/sdist/flufl_bounce-*.tar.gz | sort -V | tail -1)" -C $(BOUNCE_CORPUS) \
		--strip-components=3 --wildcards '*/tests/data/*'
	@ls $(BOUNCE_CORPUS) | wc -l | xargs echo "bounce messages in $(BOUNCE_CORPUS):"

clean:
	rm -rf var .pytest_cache
