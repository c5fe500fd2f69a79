# syntax=docker/dockerfile:1
# The rerank HTTP API (TEI / Cohere / NVIDIA NIM shapes) in front of Triton: a small CPU-only
# image, no torch, no tokenizer (the Triton text models tokenize).
# Build from the repository root:  docker build -f docker/api.Dockerfile -t bge-reranker-api:24.12 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/reranker-api
COPY core/ core/
COPY api/ api/
RUN python -m pip install --no-cache-dir ./core ./api \
 && python -c "import reranker_api, fastapi, uvicorn, tritonclient.grpc.aio, prometheus_client" \
 && ! python -c "import tokenizers" 2>/dev/null \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin reranker

USER 10001
EXPOSE 8080
# Liveness of the process itself; readiness (Triton and the model) is GET /health.
HEALTHCHECK --interval=15s --timeout=5s --retries=4 --start-period=20s \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/v1/health/live', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "reranker_api", "--host", "0.0.0.0", "--port", "8080"]
CMD ["--triton-url", "triton:8001"]
