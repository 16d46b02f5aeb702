# Everything a fresh machine needs, then the job. `make demo` and `make test` are the README's two commands.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test lint typecheck pytest bench clean lock dist vsix

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

TASK := azure-pipelines-task/MlgateV1

$(TASK)/node_modules/.installed: $(TASK)/package.json $(TASK)/package-lock.json
	cd $(TASK) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed $(TASK)/node_modules/.installed

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlgate demo

lint: setup
	$(BIN)/ruff check src tests benchmarks action

typecheck: setup
	$(BIN)/mypy --strict src action/setup_venv.py

pytest: setup
	PATH="$(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/pytest -q

test: lint typecheck pytest

bench: setup
	for b in benchmarks/*.py; do PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python $$b || exit 1; done

# The release files: sdist + wheel (checked), and the Azure DevOps extension carrying that wheel.
dist: setup
	rm -rf dist && $(BIN)/python -m build --outdir dist && $(BIN)/twine check --strict dist/*

vsix: dist
	$(BIN)/python azure-pipelines-task/bundle.py --wheel dist/mlgate-*-py3-none-any.whl
	cd azure-pipelines-task && npx tfx-cli extension create --manifest-globs vss-extension.json --output-path ../dist

# The locked, hashed runtime dependencies (locks/*.txt) from pyproject.toml, one per install profile:
# all.txt first, every other profile constrained by it so the versions agree. Re-run after changing
# dependencies; the packaging tests check the locks match pyproject.toml.
LOCK := $(BIN)/uv pip compile --universal --python-version 3.10 --generate-hashes --no-header -q
lock: setup
	$(LOCK) pyproject.toml --extra azure --extra github --extra service --extra s3 -o locks/all.txt
	$(LOCK) pyproject.toml -c locks/all.txt -o locks/core.txt
	for x in azure github service s3; do $(LOCK) pyproject.toml --extra $$x -c locks/all.txt -o locks/$$x.txt || exit 1; done
	$(LOCK) locks/tools.in -o locks/tools.txt
	$(LOCK) locks/release.in -o locks/release.txt

clean:
	rm -rf $(VENV) node_modules $(TASK)/node_modules $(TASK)/mlgate .demo dist
