# The README's two commands: `make run` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SERVER_CONFIG := jupyter-config/jupyter_server_config.d/oal_widget.json
# pip's config on these machines adds local indexes that may be absent; their warnings are noise.
export TF_CPP_MIN_LOG_LEVEL ?= 2
PIP_QUIET := 2>&1 | grep -v "is ignored: it is neither" || true

.PHONY: run test venv lint chromium postgres images clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml $(SERVER_CONFIG)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip $(PIP_QUIET)
	$(PY) -m pip install -q -e ".[dev]" $(PIP_QUIET)
	@# An editable install leaves out setup.cfg's data files: the server extension's config goes in here.
	install -D -m 644 $(SERVER_CONFIG) $(VENV)/etc/jupyter/jupyter_server_config.d/oal_widget.json
	@$(PY) -c "import oal_widget, ipyevents, anywidget, jupyterlab, tensorflow" # fails loudly if the install did
	@touch $(STAMP)

# Debian's Chromium for the browser test (browsers cannot be downloaded by Playwright here).
chromium:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# Debian's PostgreSQL for the store tests: they start a throwaway server of their own (tests/pg_server.py),
# so the package's own cluster is not needed.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }

images: venv
	@test -n "$$(ls images/*/ 2>/dev/null)" || $(PY) scripts/make_sample_images.py

run: venv images
	$(VENV)/bin/jupyter lab notebooks/quickstart.ipynb $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy oal_widget

# OAL_REQUIRE_POSTGRES: here a missing PostgreSQL fails the store tests instead of skipping them.
test: venv chromium postgres lint
	OAL_REQUIRE_POSTGRES=1 $(PY) -m pytest -ra $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info artifacts
