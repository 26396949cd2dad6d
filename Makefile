# cdfv — two commands on a fresh machine: `make repro` (install + run the pipeline) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
SMOKE_DIR ?= build/smoke

.PHONY: setup system-deps repro lint test smoke server clean-smoke

# Python deps: created/updated only when pyproject.toml or constraints.txt change.
# facenet-pytorch (MTCNN, weights bundled) goes in with --no-deps: its torch<2.3 / Pillow<10.3 pins are too old.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev,offline,distributed]'
	$(BIN)/python -m pip install --no-deps facenet-pytorch==2.6.0
	@touch $@

# System tools: ffmpeg (libx265) and OpenJPEG for the conventional codecs.
system-deps:
	@if command -v ffmpeg >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q libopenjp2; then \
		true; \
	elif [ "$$(id -u)" = "0" ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ffmpeg libopenjp2-7; \
	else \
		echo "cdfv needs ffmpeg (with libx265) and libopenjp2: run 'sudo apt-get install -y ffmpeg libopenjp2-7'" >&2; \
		exit 1; \
	fi

setup: $(STAMP) system-deps

# The paper's pipeline on the real datasets (params.yaml): `cdfv repro` validates params, fetches what is
# public, runs every stage whose inputs exist (dvc repro of those) and says what is missing and what unlocks it.
repro: setup
	PATH="$(BIN):$$PATH" $(BIN)/cdfv repro

# Lint (rules in pyproject.toml): a finding fails `make test`, so CI.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The test suite (exit 5 = no tests collected counts as success for CI).
test: setup lint
	@PATH="$(BIN):$$PATH" $(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

# The whole DAG offline on ../shared/fixtures (profiles/smoke.yaml), CPU, minutes. The workspace is a
# git repository with its results committed: `dvc exp run -S ...`, `dvc metrics diff`, `dvc plots diff`
# work there at once (docs/reviewing.md).
smoke: setup
	$(BIN)/cdfv workspace $(SMOKE_DIR) --profile smoke --git
	cd $(SMOKE_DIR) && PATH="$(BIN):$$PATH" $(BIN)/dvc repro
	cd $(SMOKE_DIR) && git add -A && (git diff --cached --quiet || git commit -q -m "make smoke: dvc repro")

clean-smoke:
	rm -rf $(SMOKE_DIR)

# A local Prefect server (embedded SQLite) on 127.0.0.1:4200.
server: setup
	PREFECT_HOME=$${PREFECT_HOME:-$$HOME/.prefect} $(BIN)/prefect server start --host 127.0.0.1 --port 4200
