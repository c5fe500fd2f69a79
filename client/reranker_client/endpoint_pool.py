"""What the sync and asyncio transports share about the endpoint pool (reranker_core.endpoints):
the pool of a ConnectionSettings, the probe of one endpoint, and the error when no replica is left."""

from __future__ import annotations

from reranker_client.errors import RerankerError, ServerUnavailableError
from reranker_client.ops import Flow, probe_model
from reranker_client.session import manifest_json_from_config
from reranker_client.settings import ConnectionSettings
from reranker_core.endpoints import EndpointPool, fingerprint

PROBE_TIMEOUT_S = 2.0  # a probe is three small calls; a replica slower than this is left out


def make_pool(settings: ConnectionSettings) -> EndpointPool:
    return EndpointPool(settings.endpoints, settings.pool)


def probe_timeout(settings: ConnectionSettings) -> float:
    return PROBE_TIMEOUT_S if settings.timeout_s is None else min(PROBE_TIMEOUT_S, settings.timeout_s)


def probe_flow(settings: ConnectionSettings, address: str) -> Flow[dict[str, str]]:
    """Is the model ready on `address`, and which manifest does it serve: {model: fingerprint}."""
    config = yield from probe_model(address, settings.model, settings.model_version)
    return {settings.model: fingerprint(manifest_json_from_config(config) or "")}


def pin_manifest(pool: EndpointPool, model: str) -> None:
    """From now on, only replicas serving the manifest the client connected with get its requests."""
    if model in pool.expected:
        pool.expect(model, pool.expected[model])


def no_replica(pool: EndpointPool, model: str, last: RerankerError | None) -> RerankerError:
    """The (retryable) error when every replica was tried or is ejected: with one endpoint, its own."""
    if last is not None and len(pool.endpoints) <= 1:
        return last
    states = "; ".join(f"{s.address} {s.state}{f' ({s.reason})' if s.reason else ''}" for s in pool.status())
    why = pool.resolve_error or states or "no endpoint"
    return _wrapped(last, f"no replica of model {model!r} at {pool.spec} could take the request: {why}")


def _wrapped(cause: BaseException | None, message: str) -> ServerUnavailableError:
    error = ServerUnavailableError(message)
    error.__cause__ = cause
    return error
