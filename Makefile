# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both install what they need first (Debian data package, CPU-capable torch, the package itself).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
STAMP := .make/installed

.PHONY: setup demo smoke test test-all typecheck lint bench clean

$(STAMP): pyproject.toml
	bash scripts/setup.sh "$(PYTHON)"
	@mkdir -p .make && touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PYTHON) -m encoder_audit audit

# the whole audit at toy size (under a minute on 2 cores): checks the main job end to end
smoke: $(STAMP)
	rm -rf .make/smoke
	$(PYTHON) -m encoder_audit audit --preset smoke --out .make/smoke --no-progress
	$(PYTHON) -c "import json; r = json.load(open('.make/smoke/results.json')); \
	bad = [k for k, s in r['sections'].items() if s['verdict']['level'] == 'failed']; \
	assert not bad, f'smoke audit stages failed: {bad}'; print('smoke audit:', r['wall_time_s'], 's')"

test: $(STAMP)
	$(PYTHON) -m ruff check src tests benchmarks scripts
	$(PYTHON) -m pytest -q

test-all: $(STAMP)
	$(PYTHON) -m pytest -q --runslow

typecheck: $(STAMP)
	$(PYTHON) -m mypy src/encoder_audit

lint: $(STAMP)
	$(PYTHON) -m ruff check src tests benchmarks scripts
	$(PYTHON) -m mypy src/encoder_audit

bench: $(STAMP)
	$(PYTHON) benchmarks/run_all.py

clean:
	rm -rf .make build dist src/*.egg-info .pytest_cache .ruff_cache
