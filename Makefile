# The two commands at the top of README.md: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast lint install install-test bench reliability-long check clean

$(BIN)/supportbot: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	@touch $@

install: $(BIN)/supportbot

# In CI a missing Dovecot or PostgreSQL is fatal; on a laptop without root their tests skip.
install-test: install
	@if [ -n "$$CI" ]; then bash scripts/install-test-deps.sh; \
	else bash scripts/install-test-deps.sh || echo "make: Dovecot or PostgreSQL missing: their tests will skip"; fi

# Also makes the embedded default's inbox, so README's "drop an .eml into var/inbox/new/" works.
demo: install
	@mkdir -p var/inbox/new var/inbox/cur var/inbox/tmp
	$(BIN)/supportbot demo

test: install-test lint
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not slow"

# Part of `test`: a finding fails CI like a failing test.
lint: install
	$(BIN)/ruff check bot tests bench
	$(BIN)/mypy --strict bot

check: install
	$(BIN)/supportbot check

bench: install-test
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

reliability-long: install-test
	$(BIN)/python bench/reliability.py --long

clean:
	rm -rf $(VENV) var demo-output .pytest_cache
