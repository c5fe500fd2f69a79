# BGE rerankers on Triton. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
ORACLE_VENV ?= .venv-oracle
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

MODEL ?= BAAI/bge-reranker-v2-m3
NAME ?=
PRECISION ?= fp32
MODEL_REPOSITORY ?= model_repository
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
API_PORT ?= 8080
API_HOST ?= 127.0.0.1
API_ARGS ?=
REPLICAS ?= 1
GPUS ?=
DRAIN_TIMEOUT_S ?= 30
PYTEST_ARGS ?=

.PHONY: setup oracle serve demo export lint format test test-unit bench bench-quick bench-precision bench-api bench-replicas perf soak eval-example clean help

help:
	@echo "make demo [MODEL=hub-id-or-dir]  export, serve and score the tutorial pairs"
	@echo "make test                        the whole test suite (installs what it needs)"
	@echo "make test-unit / make lint       the unit tests (no process or server; seconds) / ruff"
	@echo "make serve [API_PORT=8080]        run the embedded Triton server on MODEL_REPOSITORY + the rerank HTTP API"
	@echo "make serve REPLICAS=3 [GPUS=0,1,2] three Triton replicas (ports +3 each, one GPU each) behind the API"
	@echo "make export MODEL=... NAME=...   export a reranker into MODEL_REPOSITORY"
	@echo "make eval-example                quality vs speed on the tiny trained rerankers (docs/choosing.md)"
	@echo "make k8s OVERLAY=gpu|cpu         print the Kubernetes manifests of an overlay (deploy/kubernetes)"

setup: $(VENV)/.installed

$(VENV)/.installed: requirements/server.txt requirements/test.txt core/pyproject.toml client/pyproject.toml server/pyproject.toml api/pyproject.toml eval/pyproject.toml pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -r requirements/server.txt -r requirements/test.txt
	$(PIP) install --no-deps nvidia-pytriton==0.7.0
	$(PIP) install --no-deps -e ./core -e ./client -e ./server -e .
	$(PIP) install -e ./api -e ./eval
	touch $@

oracle: $(ORACLE_VENV)/.installed

$(ORACLE_VENV)/.installed: requirements/oracle.txt
	test -x $(ORACLE_VENV)/bin/python || $(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/python -m pip --disable-pip-version-check -q install torch==2.13.0
	$(ORACLE_VENV)/bin/python -m pip --disable-pip-version-check -q install -r requirements/oracle.txt
	touch $@

# The embedded Triton server(s) and the rerank HTTP API in front (API_PORT; API_PORT=0: Triton only).
# REPLICAS=N: N servers, replica i on each port + 3*i; GPUS=0,1,2: one GPU per replica.
# Ctrl-C/SIGTERM: the API finishes its requests, then each replica drains (DRAIN_TIMEOUT_S).
serve: setup
	$(PY) -m tools.serve --model-repository $(MODEL_REPOSITORY) \
		--http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT) \
		--replicas $(REPLICAS) $(if $(GPUS),--gpus $(GPUS)) --drain-timeout-s $(DRAIN_TIMEOUT_S) \
		--api-port $(API_PORT) --api-host $(API_HOST) $(if $(API_ARGS),-- $(API_ARGS))

export: setup
	$(PY) -m export --model $(MODEL) $(if $(NAME),--name $(NAME)) --repository $(MODEL_REPOSITORY) --precision $(PRECISION)

demo: setup
	$(PY) -m tools.demo --model $(MODEL) --repository $(MODEL_REPOSITORY) \
		--http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

# ruff (lint + format check) over the whole tree; `make format` rewrites.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: setup oracle deploy-venv lint
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# FlagEmbedding vs client+embedded Triton vs ONNX Runtime in-process (docs/benchmarks.md).
BENCH_ARGS ?=
bench: setup oracle
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: setup oracle
	$(PY) -m bench.run --quick $(BENCH_ARGS)

# The encoder CPU graphs fp32 vs bf16 (OpenVINO) vs int8, quality on the trained tiny fixture and
# speed on the bge-reranker-base shape, in-process and served (docs/benchmarks.md, "bf16 on CPUs
# that have it"). BENCH_PRECISION_ARGS=--llm adds the LLM Gemma-2B shape fp32 vs bf16 (~19 GB RAM).
bench-precision: setup
	$(PY) -m bench.precision $(BENCH_PRECISION_ARGS)

# The rerank HTTP API vs the Triton text model called directly, 1 x 100 at concurrency 1 and 16
# (docs/benchmarks.md). BENCH_API_ARGS="--shape base" for the bge-reranker-base shape.
BENCH_API_ARGS ?=
bench-api: setup
	$(PY) -m bench.api_overhead $(BENCH_API_ARGS)

# 1, 2, 3 latency-bound replicas (and a slow one) behind one rerank API (docs/benchmarks.md).
bench-replicas: setup
	$(PY) -m bench.replicas $(BENCH_REPLICAS_ARGS)

# Concurrency sweep against a served model: make perf PERF_MODEL=name [PERF_URL=localhost:8001]
PERF_MODEL ?= $(NAME)
PERF_URL ?=
PERF_ARGS ?=
perf: setup
	$(PY) -m bench.perf_sweep --model $(PERF_MODEL) $(if $(PERF_URL),--url $(PERF_URL),--repository $(MODEL_REPOSITORY)) $(PERF_ARGS)

# The worked example of docs/choosing.md: python -m reranker_eval on the tiny trained rerankers,
# served here (writes report.json, pareto.png, table.txt, the data set and configs.yaml).
EVAL_EXAMPLE_OUT ?= docs/eval-example
eval-example: setup
	$(PY) -m tools.eval_example --out $(EVAL_EXAMPLE_OUT)

# Long load run with score checks and memory tracking (a short form runs in make test).
SOAK_ARGS ?= --duration 600
soak: setup oracle
	$(PY) -m tests.support.load.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(ORACLE_VENV) $(DEPLOY_VENV) .pytest_cache

# ---- GPU deployment (docs/deployment.md) ----------------------------------------------------
COMPOSE ?= docker compose
TRT_ARGS ?=

.PHONY: trt-plan compose-config gpu-check

# Build <repo>/<NAME>/1/model.plan + configs/tensorrt_plan.pbtxt on this GPU node, inside the image.
trt-plan:
	$(COMPOSE) run --rm --no-deps --user $$(id -u):$$(id -g) --entrypoint python3 \
		-v $(CURDIR)/export:/opt/reranker/export:ro -v $(abspath $(MODEL_REPOSITORY)):/build-models \
		triton -m export.tensorrt --model-dir /build-models/$(NAME) $(TRT_ARGS)

# Validate docker-compose.yml (no Docker engine needed).
compose-config:
	TRITON_ADMIN_KEY_FILE=$${TRITON_ADMIN_KEY_FILE:-/dev/null} $(COMPOSE) -f docker-compose.yml config -q
	@echo "docker-compose.yml: valid"

# Parity + throughput of the GPU Python-backend path on this machine's GPU (see scripts/gpu_check.py).
gpu-check:
	scripts/gpu_check.sh --out gpu-check-out

# ---- Kubernetes (deploy/kubernetes, docs/kubernetes.md) -------------------------------------
OVERLAY ?= gpu
# auto: kubectl kustomize where kubectl is installed, else deploy/kubernetes/render.py (same output, tested)
K8S_RENDERER ?= auto
DEPLOY_VENV ?= .venv-deploy
K8S_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))

.PHONY: k8s deploy-venv

k8s:
	@test -f deploy/kubernetes/overlays/$(OVERLAY)/kustomization.yaml || { \
		echo "make k8s: no overlay '$(OVERLAY)' (have: $$(ls deploy/kubernetes/overlays | tr '\n' ' '))" >&2; exit 2; }
	@case "$(K8S_RENDERER)" in \
		auto) if command -v kubectl >/dev/null 2>&1; then kubectl kustomize deploy/kubernetes/overlays/$(OVERLAY); \
			else $(K8S_PY) deploy/kubernetes/render.py deploy/kubernetes/overlays/$(OVERLAY); fi ;; \
		kubectl) kubectl kustomize deploy/kubernetes/overlays/$(OVERLAY) ;; \
		python) $(K8S_PY) deploy/kubernetes/render.py deploy/kubernetes/overlays/$(OVERLAY) ;; \
		*) echo "make k8s: K8S_RENDERER must be auto, kubectl or python" >&2; exit 2 ;; \
	esac

# kubernetes-validate + checkov for the manifest tests, in their own environment.
deploy-venv: $(DEPLOY_VENV)/.installed

$(DEPLOY_VENV)/.installed: requirements/deploy.txt
	test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip --disable-pip-version-check -q install -r requirements/deploy.txt
	touch $@
