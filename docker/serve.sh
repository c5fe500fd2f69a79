#!/usr/bin/env bash
# Entry point of the GPU image: tritonserver with the production flags.
#
# Environment (all optional except the admin key):
#   MODEL_REPOSITORY        model repository: a directory inside the container (default /models)
#                           or an s3://, gs:// or as:// URL that Triton reads itself
#   MODEL_CONFIG_NAME       config variant for every model that has configs/<name>.pbtxt
#                           (onnxruntime_trt, tensorrt_plan); empty = config.pbtxt
#   TRITON_ADMIN_KEY_FILE   file holding the admin key (default /run/secrets/triton_admin_key)
#   TRITON_ADMIN_KEY        the key itself (takes precedence over the file; visible in `docker inspect`)
#   TRITON_ADMIN_HEADER     header that must carry the key (default admin-key)
#   TRITON_RESTRICTED_APIS  APIs behind the key (default model-repository,shared-memory,trace,logging)
#   TRITON_GRPC_TLS_CERT / TRITON_GRPC_TLS_KEY   enable TLS on gRPC (PEM files)
#   TRITON_GRPC_TLS_CLIENT_CA                    also require client certificates (mutual TLS)
#   TRITON_DRAIN_TIMEOUT_S  on SIGTERM, seconds the requests in flight get to finish (default 30;
#                           --exit-timeout-secs): Triton stops being ready and refuses new ones at once
#   LOG_VERBOSE (0), LOG_FORMAT (ISO8601), METRICS_INTERVAL_MS (2000), TRITON_EXIT_ON_ERROR (true)
#   TRITONSERVER            the binary (default /opt/tritonserver/bin/tritonserver)
# Extra arguments are passed on to tritonserver after the ones built here.
set -euo pipefail

# Tokenizers in the Python-backend models must not fork thread pools per stub.
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

die() { echo "serve.sh: $*" >&2; exit 64; }

TRITONSERVER="${TRITONSERVER:-/opt/tritonserver/bin/tritonserver}"
MODEL_REPOSITORY="${MODEL_REPOSITORY:-/models}"
MODEL_CONFIG_NAME="${MODEL_CONFIG_NAME:-}"
ADMIN_KEY_FILE="${TRITON_ADMIN_KEY_FILE:-/run/secrets/triton_admin_key}"
ADMIN_HEADER="${TRITON_ADMIN_HEADER:-admin-key}"
RESTRICTED_APIS="${TRITON_RESTRICTED_APIS:-model-repository,shared-memory,trace,logging}"

key="${TRITON_ADMIN_KEY:-}"
if [[ -z "$key" && -r "$ADMIN_KEY_FILE" ]]; then
  key="$(tr -d '\r\n' < "$ADMIN_KEY_FILE")"
fi
[[ -n "$key" ]] || die "no admin key: mount a secret at $ADMIN_KEY_FILE or set TRITON_ADMIN_KEY"
[[ ${#key} -ge 16 ]] || die "the admin key must be at least 16 characters"
[[ "$key" =~ ^[A-Za-z0-9._~+/-]+$ ]] || die "the admin key may hold only letters, digits and . _ ~ + / -"
[[ "$ADMIN_HEADER" =~ ^[A-Za-z0-9-]+$ ]] || die "TRITON_ADMIN_HEADER must be a plain header name"
[[ "$RESTRICTED_APIS" =~ ^[a-z-]+(,[a-z-]+)*$ ]] || die "TRITON_RESTRICTED_APIS must be a comma list of API names"
# Triton reads s3://, gs:// and as:// repositories itself (credentials: TRITON_CLOUD_CREDENTIAL_PATH
# or the cloud's own environment); a local repository must be mounted.
if [[ ! "$MODEL_REPOSITORY" =~ ^(s3|gs|as)://[^[:space:]]+$ ]]; then
  [[ -d "$MODEL_REPOSITORY" ]] || die "model repository $MODEL_REPOSITORY not found (mount it, or give an s3://, gs:// or as:// URL)"
fi
[[ -z "$MODEL_CONFIG_NAME" || "$MODEL_CONFIG_NAME" =~ ^[A-Za-z0-9_]+$ ]] || die "bad MODEL_CONFIG_NAME"
DRAIN_TIMEOUT_S="${TRITON_DRAIN_TIMEOUT_S:-30}"
[[ "$DRAIN_TIMEOUT_S" =~ ^[1-9][0-9]*$ ]] || die "TRITON_DRAIN_TIMEOUT_S must be a whole number of seconds (1 or more)"

args=(
  "--model-repository=$MODEL_REPOSITORY"
  --model-control-mode=none
  --strict-readiness=true
  "--exit-on-error=${TRITON_EXIT_ON_ERROR:-true}"
  "--exit-timeout-secs=$DRAIN_TIMEOUT_S"
  --disable-auto-complete-config
  --http-port=8000 --grpc-port=8001 --metrics-port=8002
  --allow-metrics=true --allow-gpu-metrics=true --allow-cpu-metrics=true
  "--metrics-interval-ms=${METRICS_INTERVAL_MS:-2000}"
  "--log-verbose=${LOG_VERBOSE:-0}" --log-info=true --log-warning=true --log-error=true
  "--log-format=${LOG_FORMAT:-ISO8601}"
  "--http-restricted-api=$RESTRICTED_APIS:$ADMIN_HEADER=$key"
  "--grpc-restricted-protocol=$RESTRICTED_APIS:$ADMIN_HEADER=$key"
)
if [[ -n "$MODEL_CONFIG_NAME" ]]; then
  args+=("--model-config-name=$MODEL_CONFIG_NAME")
fi
if [[ -n "${TRITON_GRPC_TLS_CERT:-}" || -n "${TRITON_GRPC_TLS_KEY:-}" ]]; then
  [[ -r "${TRITON_GRPC_TLS_CERT:-}" && -r "${TRITON_GRPC_TLS_KEY:-}" ]] \
    || die "gRPC TLS needs readable TRITON_GRPC_TLS_CERT and TRITON_GRPC_TLS_KEY"
  args+=(--grpc-use-ssl=true "--grpc-server-cert=$TRITON_GRPC_TLS_CERT" "--grpc-server-key=$TRITON_GRPC_TLS_KEY")
  if [[ -n "${TRITON_GRPC_TLS_CLIENT_CA:-}" ]]; then
    [[ -r "$TRITON_GRPC_TLS_CLIENT_CA" ]] || die "TRITON_GRPC_TLS_CLIENT_CA not readable"
    args+=(--grpc-use-ssl-mutual=true "--grpc-root-cert=$TRITON_GRPC_TLS_CLIENT_CA")
  fi
fi
exec "$TRITONSERVER" "${args[@]}" "$@"
