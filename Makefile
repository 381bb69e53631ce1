# greycloud: everything a fresh machine needs, from python3 and make alone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GENERATED := greycloud/_async,greycloud/_sync,tests/_sync

.PHONY: install generate check-generated lint format typecheck check test test-no-extras demo emulator bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## generate: regenerate the sync half and the packaged copy of _async_src/
generate: $(STAMP)
	$(BIN)/python tools/generate.py

## check-generated: fail when generated code is stale, missing, extra, hand-edited or async
check-generated: $(STAMP)
	$(BIN)/python tools/generate.py --check

lint: $(STAMP)
	$(BIN)/ruff check greycloud _async_src tools tests bench examples
	$(BIN)/ruff format --check greycloud _async_src tools tests bench examples

## format: the hand-written files only; the generator then rewrites (and formats) its outputs, which
## a formatter must not touch: a changed generated file counts as a hand edit
format: $(STAMP)
	$(BIN)/ruff format --extend-exclude $(GENERATED) greycloud _async_src tools tests bench examples
	$(BIN)/ruff check --fix --extend-exclude $(GENERATED) greycloud _async_src tools tests bench examples
	$(BIN)/python tools/generate.py

## typecheck: mypy --strict on both halves (the package holds both)
typecheck: $(STAMP)
	$(BIN)/mypy

check: check-generated lint typecheck

## test: the README's test command: every check, then the whole suite, the tests marked slow
## included (a plain `pytest` leaves those out, for quick runs while working)
test: check
	$(BIN)/pytest -q -m "slow or not slow"

## test-no-extras: greycloud with no extras in a fresh virtualenv beside an unrelated project's
## tests: they pass, and each optional feature names the extra it needs (about half a minute)
test-no-extras: $(STAMP)
	$(BIN)/python tools/check_no_extras.py

## demo: the main job on the embedded emulator (no credentials, no network): a tour of the
## clients, then a rate-limited bulk run over examples/prompts.jsonl with progress
demo: $(STAMP)
	@$(BIN)/python examples/demo.py
	@printf '\nbulk run: examples/prompts.jsonl through the command line, answered by the emulator too\n'
	rm -f demo-results.jsonl
	$(BIN)/greycloud run examples/prompts.jsonl -o demo-results.jsonl --emulator --rpm 300 --concurrency 8
	@echo "answers: demo-results.jsonl"

emulator: $(STAMP)
	$(BIN)/greycloud emulator

## bench: the quick benchmarks (about a minute); bench/RESULTS.md lists the minute-long ones
bench: $(STAMP)
	cd bench && ../$(BIN)/python bench_emulator.py --seconds 5
	cd bench && ../$(BIN)/python bench_limiter_core.py
	cd bench && ../$(BIN)/python bench_limiter_overhead.py --calls 300

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .pytest_cache .ruff_cache
