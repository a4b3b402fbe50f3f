# The two commands: `make demo` (main job on the embedded default) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= .demo
SANDBOX_TOKEN := $(shell $(PYTHON) -c 'import secrets; print(secrets.token_hex(16))')

.PHONY: demo test airflow lint lock clean

# Install into a local virtualenv with every transitive version pinned by constraints.txt.
$(BIN)/hub: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,airflow,video]'
	touch $@

demo: $(BIN)/hub ## init a fresh hub home in .demo/ and walk sample applications through it
	scripts/system-packages demo
	rm -rf $(DEMO)
	$(BIN)/hub init $(DEMO)
	$(BIN)/hub --home $(DEMO) catalog check
	@# 跨省通办: the sandbox partner hub 福鼎 (its own home and database), paired with this one
	$(BIN)/hub --home $(DEMO) partners keygen
	$(BIN)/hub --home $(DEMO) sandbox partner-home $(DEMO)/fuding --our-url http://127.0.0.1:8000 --partner-url http://127.0.0.1:8710
	$(BIN)/hub --home $(DEMO)/fuding db upgrade
	@# the sandbox 医保 system and the 福鼎 hub beside the demo, so the main job shows real traffic; stopped after
	HUB_SANDBOX_TOKEN=$(SANDBOX_TOKEN) $(BIN)/hub --home $(DEMO) sandbox run --decide-after 0.1 --sample-batches 0 & pid=$$!; \
	$(BIN)/hub --home $(DEMO)/fuding serve --port 8710 & fd=$$!; \
	trap "kill $$pid $$fd 2>/dev/null" EXIT; \
	HUB_SANDBOX_TOKEN=$(SANDBOX_TOKEN) HUB_DEMO_PARTNER_HOME=$(DEMO)/fuding $(BIN)/hub --home $(DEMO) demo

# The suite in TEST_WORKERS pytest-xdist processes (2: this project's machines have two cores; the
# tests wait on servers and subprocesses much of the time, so two workers keep both cores busy).
# Whole files go to a worker (module-scoped servers and browsers start once), in collection order:
# tests/conftest.py puts the longest files first. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2

test: $(BIN)/hub ## lint, then the whole suite (PostgreSQL too when HUB_TEST_DATABASE_URL is set)
	scripts/system-packages test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

airflow: $(BIN)/hub ## Airflow (SQLite, LocalExecutor) running the hub's DAGs on .airflow/hub with the sandbox
	scripts/airflow-local

lock: ## re-resolve constraints.txt after changing pyproject.toml
	$(BIN)/pip install --quiet uv==0.13.8
	$(BIN)/uv pip compile pyproject.toml --all-extras --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu --no-header -o constraints.txt

clean:
	rm -rf $(VENV) $(DEMO) .airflow
