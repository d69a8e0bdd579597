# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
AGENT_DIST ?= dist/agent

.PHONY: install run test lint format clean bench-tools agent-package browser prometheus

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

install: $(VENV)/.installed

## Migrate and serve on http://localhost:$(PORT) with Daphne (SQLite unless DATABASE_URL is set), with one
## notification sender (manage.py sendalerts) beside it, stopped with the server.
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py sendalerts & sender=$$!; \
	trap 'kill $$sender 2>/dev/null; wait $$sender' EXIT INT TERM; \
	$(BIN)/daphne -b 0.0.0.0 -p $(PORT) logfleet.asgi:application

## The whole suite, on SQLite by default; set DATABASE_URL and REDIS_URL for PostgreSQL + Redis.
test: install
	$(BIN)/pytest

## Static checks CI runs: ruff, formatting, migrations in sync, deployment checks.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	SECRET_KEY=ci-only-$$(head -c 48 /dev/urandom | base64 | tr -d '/+=') PUBLIC_URL=https://logfleet.example.com \
		ALLOWED_HOSTS=logfleet.example.com EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend \
		$(BIN)/python manage.py check --deploy --fail-level WARNING

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## The edge agent for a host without Django (pyproject.toml): its wheel, with the console script
## logfleet-agent, and the wheels of its two pinned dependencies, in $(AGENT_DIST) (README: "Install
## the agent on an edge host"). The build backend comes from requirements.txt, so no isolated build env.
agent-package: install
	rm -rf $(AGENT_DIST)
	$(BIN)/pip wheel --disable-pip-version-check -q --no-build-isolation -w $(AGENT_DIST) .
	@ls $(AGENT_DIST)

## The load generator the benchmarks drive (wrk, from Debian's packages).
bench-tools:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

## The browser the dashboard's tests drive (Debian's Chromium; without it `make test` skips them).
browser:
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

## The Prometheus server and promtool the live export test runs (Debian's; without them `make test` skips it).
prometheus:
	test -x /usr/bin/prometheus -a -x /usr/bin/promtool || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)

clean:
	rm -rf $(VENV) dist staticfiles .test-db.sqlite3* .pytest_cache .ruff_cache
