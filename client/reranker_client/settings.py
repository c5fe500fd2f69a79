"""How a client reaches the server: address, protocol, model version, timeouts, headers and TLS.

Validated once here and shared by the sync and asyncio clients, so both connect, time out and
authenticate the same way.
"""

from __future__ import annotations

import ssl as ssl_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reranker_client.errors import InvalidInputError, caller_errors
from reranker_core.endpoints import EndpointSpec, PoolOptions, parse_endpoints

PROTOCOLS = ("grpc", "http")
# Bound on opening an HTTP connection when timeout_s is None (no client-side request timeout).
MAX_CONNECT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TlsOptions:
    """TLS towards the server. gRPC: Triton's own TLS (--grpc-use-ssl). HTTPS: Triton's HTTP
    endpoint has no TLS, so HTTPS reaches it through a TLS-terminating proxy.

    root_certificates: PEM file of the CA(s) that signed the server certificate (None: the system's).
    private_key / certificate_chain: PEM files of a client certificate, for mutual TLS.
    insecure (HTTPS only): do not verify the server certificate at all (testing only).
    ssl_context (asyncio HTTPS only): a ready ssl.SSLContext, used instead of the options above.
    """

    root_certificates: str | None = None
    private_key: str | None = None
    certificate_chain: str | None = None
    insecure: bool = False
    ssl_context: ssl_module.SSLContext | None = None

    def stdlib_context(self) -> ssl_module.SSLContext:
        """An ssl.SSLContext for HTTPS built from these options."""
        if self.ssl_context is not None:
            return self.ssl_context
        return self.context_with(ssl_module)

    def context_with(self, module: Any) -> ssl_module.SSLContext:
        """A client SSLContext made by `module` (the stdlib ssl, or gevent.ssl for the sync HTTP client)."""
        context = module.create_default_context(cafile=self.root_certificates)
        if self.certificate_chain:
            context.load_cert_chain(self.certificate_chain, self.private_key)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl_module.CERT_NONE
        return context


def _readable_file(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, Path)):
        raise InvalidInputError(f"{name} must be a path to a PEM file, got {type(value).__name__}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"{name}: no such file {str(path)!r}")
    return str(path)


def tls_options(
    protocol: str,
    *,
    ssl: bool,
    root_certificates: Any = None,
    private_key: Any = None,
    certificate_chain: Any = None,
    insecure: bool = False,
    ssl_context: ssl_module.SSLContext | None = None,
) -> TlsOptions | None:
    """Checked TLS options (None for plaintext); every problem is a clear InvalidInputError."""
    given = {
        "root_certificates": root_certificates,
        "private_key": private_key,
        "certificate_chain": certificate_chain,
        "ssl_context": ssl_context,
    }
    if not ssl:
        extra = [k for k, v in given.items() if v is not None] + (["insecure"] if insecure else [])
        if extra:
            raise InvalidInputError(f"{', '.join(extra)} given but ssl=False; pass ssl=True to use TLS")
        return None
    if (private_key is None) != (certificate_chain is None):
        raise InvalidInputError(
            "private_key and certificate_chain go together (a client certificate "
            "for mutual TLS): give both or neither"
        )
    if protocol == "grpc" and (insecure or ssl_context is not None):
        raise InvalidInputError(
            "insecure and ssl_context are HTTPS options; for gRPC give "
            "root_certificates (and private_key/certificate_chain)"
        )
    if ssl_context is not None and not isinstance(ssl_context, ssl_module.SSLContext):
        raise InvalidInputError(f"ssl_context must be an ssl.SSLContext, got {type(ssl_context).__name__}")
    return TlsOptions(
        _readable_file(root_certificates, "root_certificates"),
        _readable_file(private_key, "private_key"),
        _readable_file(certificate_chain, "certificate_chain"),
        bool(insecure),
        ssl_context,
    )


def model_version_string(version: None | int | str) -> str:
    """Triton's model version as sent on the wire: "" lets the server's version policy choose."""
    if version is None or version == "":
        return ""
    if (
        isinstance(version, bool)
        or not isinstance(version, (int, str))
        or not str(version).isdigit()
        or int(version) < 1
    ):
        raise InvalidInputError(
            f"model_version must be a positive integer (or None for the server's choice), got {version!r}"
        )
    return str(int(version))


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything both clients need to talk to one model on its server(s): `url` as given, and the
    endpoints it names (one address, a comma-separated list, or dns:///name:port)."""

    url: str
    protocol: str
    model: str
    model_version: str = ""
    timeout_s: float | None = 120.0
    concurrency: int = 4
    headers: dict[str, str] = field(default_factory=dict)
    tls: TlsOptions | None = None
    endpoints: EndpointSpec = EndpointSpec()
    pool: PoolOptions = PoolOptions()

    @classmethod
    def create(
        cls,
        url: str,
        protocol: str,
        model: str,
        *,
        model_version: None | int | str = None,
        timeout_s: float | None = 120.0,
        concurrency: int = 4,
        headers: dict[str, str] | None = None,
        ssl: bool = False,
        dns_refresh_s: float = 10.0,
        **tls: Any,
    ) -> ConnectionSettings:
        """Validate the arguments the client constructors take."""
        if protocol not in PROTOCOLS:
            raise InvalidInputError(f"protocol must be 'grpc' or 'http', got {protocol!r}")
        if not isinstance(url, str) or not url:
            raise InvalidInputError(f"url must be host:port (or a comma-separated list), got {url!r}")
        if "://" in url and not url.startswith("dns:///"):
            raise InvalidInputError(
                f"url must be host:port without a scheme (use ssl=True for TLS), got {url!r}"
            )
        if (
            isinstance(dns_refresh_s, bool)
            or not isinstance(dns_refresh_s, (int, float))
            or not dns_refresh_s > 0
        ):
            raise InvalidInputError(
                f"dns_refresh_s must be a positive number of seconds, got {dns_refresh_s!r}"
            )
        with caller_errors():
            endpoints = parse_endpoints(url)
        if endpoints.dynamic and ssl:
            raise InvalidInputError(
                "dns:/// names resolve to IP addresses, which a server certificate does not name: "
                "with ssl=True list the replicas' host names instead (url='a:8001,b:8001')"
            )
        if not isinstance(model, str) or not model:
            raise InvalidInputError(f"model must be a non-empty model name, got {model!r}")
        if timeout_s is not None and (
            isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0
        ):
            raise InvalidInputError(
                f"timeout_s must be a positive number of seconds or None, got {timeout_s!r}"
            )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInputError(f"max_concurrency must be a positive integer, got {concurrency!r}")
        headers = dict(headers or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise InvalidInputError("headers must map str to str")
        return cls(
            url,
            protocol,
            model,
            model_version_string(model_version),
            None if timeout_s is None else float(timeout_s),
            concurrency,
            headers,
            tls_options(protocol, ssl=ssl, **tls),
            endpoints,
            # live replicas are probed by their requests (a failure ejects one); ejected ones after a backoff
            PoolOptions(refresh_s=float(dns_refresh_s), health_s=0.0),
        )

    def attempt_timeout(self, remaining: float | None) -> float | None:
        """The client-side timeout of each request of one attempt: timeout_s, cut to what is left
        of the retry deadline."""
        if remaining is None:
            return self.timeout_s
        return remaining if self.timeout_s is None else min(self.timeout_s, remaining)
