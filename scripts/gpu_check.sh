#!/usr/bin/env bash
# One-command GPU check of the product (see scripts/gpu_check.py: export -> embedded Triton ->
# reranker_client, encoder through ONNX Runtime's CUDA/TensorRT providers, LLMs as KIND_GPU
# Python-backend models in fp16/bf16).
#
# On a GPU machine whose python3 has torch (CUDA), transformers, safetensors, onnx,
# onnxruntime-gpu (else the encoder is reported as not checked on the GPU), tokenizers and
# tritonclient[grpc]:
#   scripts/gpu_check.sh [gpu_check.py options]          # e.g. --out /tmp/gpu-check --seconds 6
#   scripts/gpu_check.sh --device cpu --quick             # the same pipeline on the CPU (smoke)
# Wheels and the Triton bundle travel in .whl/ (make them here with `scripts/gpu_check.sh --prepare`):
#   .whl/*.whl                 installed with --no-deps into a private target dir (numpy<2: the
#                              bundled Python-backend stub sends empty outputs with numpy 2)
#   .whl/triton_bundle.tar.xz  tritonserver 2.51 + Python backend + 3.12 stub from nvidia-pytriton
# Environment: PYTHON (default python3), GPU_CHECK_WHEELS (default <repo>/.whl),
#              GPU_CHECK_SITE (wrapper venv, default /tmp/gpu-check-venv).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WHEELS="${GPU_CHECK_WHEELS:-$REPO/.whl}"
SITE="${GPU_CHECK_SITE:-/tmp/gpu-check-venv}"
BUNDLE_NAME="triton_bundle.tar.xz"

prepare() {
  # Run on the build machine (with the repo's .venv): fill .whl/ for a device run.
  local venv_py="$REPO/.venv/bin/python" pyver="${1:-3.12}"
  local site
  site="$("$venv_py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  mkdir -p "$WHEELS"
  "$venv_py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
    --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" "numpy==1.26.4"
  # Everything tritonserver and the Python backend load, minus the other Pythons' stubs and
  # libpython 3.13 (only the 3.13 stub needs it): ~27 MB compressed.
  tar -C "$site" -cf - --exclude='libpython3-*' --exclude='__pycache__' \
    nvidia_pytriton.libs pytriton/__init__.py pytriton/tritonserver/bin \
    pytriton/tritonserver/backends pytriton/tritonserver/caches \
    "pytriton/tritonserver/python_backend_stubs/$pyver" | xz -T0 -6 > "$WHEELS/$BUNDLE_NAME"
  du -sh "$WHEELS"/*
}

if [[ "${1:-}" == "--prepare" ]]; then
  shift
  prepare "$@"
  exit 0
fi

echo "== gpu_check on $(hostname) at $(date -u +%FT%TZ)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv || true

# libpython's folder goes on LD_LIBRARY_PATH (the stub links libpython3.X.so.1.0).
read -r PURELIB LIBPYDIR < <("$PYTHON" -c '
import glob, os, sys, sysconfig
ver = f"{sys.version_info.major}.{sys.version_info.minor}"
cands = [sysconfig.get_config_var("LIBDIR") or "", os.path.join(sys.base_prefix, "lib"),
         "/usr/lib/x86_64-linux-gnu", "/usr/local/lib", "/usr/lib"]
found = next((d for d in cands if d and glob.glob(os.path.join(d, f"libpython{ver}.so*"))), "")
print(sysconfig.get_paths()["purelib"], found or "-")
')
if [[ "$LIBPYDIR" == "-" ]]; then
  echo "gpu_check: warning: no shared libpython found; the Python-backend stub may not start" >&2
else
  export LD_LIBRARY_PATH="$LIBPYDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

shopt -s nullglob
wheels=("$WHEELS"/*.whl)
if ((${#wheels[@]})) || [[ -f "$WHEELS/$BUNDLE_NAME" ]]; then
  # The stub's embedded Python ignores PYTHONPATH (it finds the venv of the first python3 on
  # PATH), so the carried wheels go into a wrapper venv whose site-packages come first and
  # whose .pth file appends the interpreter's own site-packages (torch, transformers, ...).
  if [[ ! -x "$SITE/bin/python" ]]; then
    "$PYTHON" -m venv --without-pip "$SITE"
  fi
  VSITE="$("$SITE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$PURELIB" > "$VSITE/zz_gpu_check_base.pth"
  if ((${#wheels[@]})); then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$VSITE" "${wheels[@]}"
  fi
  if [[ -f "$WHEELS/$BUNDLE_NAME" && ! -x "$VSITE/pytriton/tritonserver/bin/tritonserver" ]]; then
    tar -C "$VSITE" -xJf "$WHEELS/$BUNDLE_NAME"
  fi
  PYTHON="$SITE/bin/python"
fi
export PYTHONPATH="$REPO:$REPO/core:$REPO/server:$REPO/client${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
echo "python: $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])'); libpython dir: $LIBPYDIR"

"$PYTHON" - <<'EOF'
import importlib.util, sys
import numpy
needed = ("torch", "transformers", "safetensors", "pytriton", "onnx", "onnxruntime", "tokenizers", "tritonclient")
missing = [m for m in needed if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing {missing}; carry wheels / the Triton bundle in .whl (scripts/gpu_check.sh --prepare)")
if int(numpy.__version__.split(".")[0]) >= 2:
    sys.exit(f"gpu_check: numpy {numpy.__version__} first on the path; the bundled stub needs numpy<2")
EOF

exec "$PYTHON" "$REPO/scripts/gpu_check.py" "$@"
