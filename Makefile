# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both install what they need first (Debian data package, CPU-capable torch, the package itself).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
STAMP := .make/installed

.PHONY: setup demo test test-all lint bench clean

$(STAMP): pyproject.toml
	bash scripts/setup.sh "$(PYTHON)"
	@mkdir -p .make && touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PYTHON) -m encoder_audit audit

test: $(STAMP)
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m pytest -q

test-all: $(STAMP)
	$(PYTHON) -m pytest -q --runslow

lint: $(STAMP)
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m mypy src/encoder_audit

bench: $(STAMP)
	$(PYTHON) benchmarks/run_all.py

clean:
	rm -rf .make build dist src/*.egg-info .pytest_cache .ruff_cache
