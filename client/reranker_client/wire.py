"""tritonclient objects and call arguments, built once for the four clients (gRPC/HTTP x sync/asyncio)."""

from __future__ import annotations

from typing import Any

from reranker_client.errors import InvalidInputError
from reranker_client.ops import InferAll, InferRequest
from reranker_client.settings import MAX_CONNECT_TIMEOUT_S, ConnectionSettings


def client_module(protocol: str, asynchronous: bool) -> Any:
    if protocol == "grpc":
        if asynchronous:
            import tritonclient.grpc.aio as module
        else:
            import tritonclient.grpc as module
    elif asynchronous:
        import tritonclient.http.aio as module
    else:
        import tritonclient.http as module
    return module


class TritonCalls:
    """Builds a tritonclient client and the arguments of each call from ConnectionSettings."""

    def __init__(self, settings: ConnectionSettings, asynchronous: bool) -> None:
        self.settings = settings
        self.asynchronous = asynchronous
        self.grpc = settings.protocol == "grpc"
        self.module = client_module(settings.protocol, asynchronous)

    def make_client(self, address: str) -> Any:
        """A client of the server at `address` (host:port, one endpoint of settings.url)."""
        s, tls = self.settings, self.settings.tls
        kwargs: dict[str, Any] = {}
        if self.grpc:
            if tls is not None:
                kwargs = {
                    "ssl": True,
                    "root_certificates": tls.root_certificates,
                    "private_key": tls.private_key,
                    "certificate_chain": tls.certificate_chain,
                }
            return self.module.InferenceServerClient(url=address, **kwargs)
        # HTTP: the transports bound every operation by the attempt's timeout themselves
        # (gevent.Timeout / asyncio.wait_for), so the libraries' own timeouts stay out of the way
        # and a slow answer is always a RequestTimeoutError, never a socket error.
        if self.asynchronous:
            if tls is not None:
                kwargs = {"ssl": True, "ssl_context": tls.stdlib_context()}
            return self.module.InferenceServerClient(
                url=address, conn_limit=s.concurrency, conn_timeout=None, **kwargs
            )
        if tls is not None:
            kwargs = {
                "ssl": True,
                "ssl_context_factory": self._gevent_context_factory(),
                "insecure": tls.insecure,
            }
        connect = MAX_CONNECT_TIMEOUT_S if s.timeout_s is None else None
        return self.module.InferenceServerClient(
            url=address, concurrency=s.concurrency, connection_timeout=connect, network_timeout=None, **kwargs
        )

    def _gevent_context_factory(self) -> Any:
        """geventhttpclient wants a factory of gevent SSL contexts (cooperative sockets)."""
        import gevent.ssl

        tls = self.settings.tls
        assert tls is not None
        if tls.ssl_context is not None:
            if not isinstance(tls.ssl_context, gevent.ssl.SSLContext):
                raise InvalidInputError(
                    "the synchronous HTTP client needs a gevent.ssl.SSLContext as "
                    "ssl_context (or give root_certificates/insecure instead)"
                )
            context = tls.ssl_context
        else:
            context = tls.context_with(gevent.ssl)
        return lambda *args, **kwargs: context

    # -- per-call arguments ------------------------------------------------------------------
    def common(self, timeout: float | None) -> dict[str, Any]:
        """headers, and gRPC's per-call deadline (HTTP timeouts are enforced by the transport)."""
        kwargs: dict[str, Any] = {"headers": self.settings.headers}
        if self.grpc:
            kwargs["client_timeout"] = timeout
        return kwargs

    def config_kwargs(self, timeout: float | None) -> dict[str, Any]:
        kwargs = self.common(timeout)
        if self.grpc:
            kwargs["as_json"] = True
        return kwargs

    def index_kwargs(self, timeout: float | None) -> dict[str, Any]:
        return self.config_kwargs(timeout)

    def inputs(self, request: InferRequest) -> list:
        inputs = []
        for tensor in request.inputs:
            item = self.module.InferInput(tensor.name, list(tensor.data.shape), tensor.datatype)
            if self.grpc:
                item.set_data_from_numpy(tensor.data)
            else:
                item.set_data_from_numpy(tensor.data, binary_data=True)
            inputs.append(item)
        return inputs

    def outputs(self, request: InferRequest) -> list:
        if self.grpc:
            return [self.module.InferRequestedOutput(name) for name in request.outputs]
        return [self.module.InferRequestedOutput(name, binary_data=True) for name in request.outputs]

    def infer_kwargs(self, op: InferAll, request: InferRequest, timeout: float | None) -> dict[str, Any]:
        kwargs = self.common(timeout)
        kwargs.update(model_version=op.version, outputs=self.outputs(request), parameters=request.parameters)
        return kwargs

    @staticmethod
    def result_arrays(result: Any, request: InferRequest) -> dict[str, Any]:
        """{output name: array} of one response; an output the server left out is absent."""
        out = {}
        for name in request.outputs:
            array = result.as_numpy(name)
            if array is not None:
                out[name] = array
        return out
