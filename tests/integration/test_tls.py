"""TLS end to end, with a throwaway CA: gRPC against the embedded server's own (mutual) TLS, and
HTTPS through a TLS-terminating proxy in front of its plain HTTP endpoint; auth headers reach
Triton's restricted APIs. Every test runs the sync and the asyncio client."""

from __future__ import annotations

import pytest

from reranker_client.errors import ModelNotReadyError, ModelReloadingError, ServerUnavailableError
from reranker_client.retry import RetryPolicy
from tests.support.async_bridge import make_client
from tests.support.pairs import MULTILINGUAL_PAIRS, many_pairs
from tests.support.tls import make_pki

MODEL = "tiny-encoder"
OTHER = "tiny-encoder-short"
ADMIN_KEY = "test-admin-key-0123456789"
MODES = ["sync", "async"]
PAIRS = [list(p) for p in MULTILINGUAL_PAIRS] + many_pairs(12)
ONCE = RetryPolicy.none()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(test_repository, pki, tmp_path_factory):
    """gRPC with mutual TLS (server certificate from the test CA, client certificates required),
    plain HTTP on loopback, and the model-repository API behind an admin-key header, as
    docker/serve.sh deploys it."""
    from reranker_server.embedded import EmbeddedTritonServer
    from tests.support.ports import free_ports

    http, grpc, metrics = free_ports(3)
    server = EmbeddedTritonServer(
        test_repository.root,
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        log_file=tmp_path_factory.mktemp("tls-server") / "tritonserver.log",
        extra_args=(
            "--model-control-mode=explicit",
            f"--load-model={MODEL}",
            f"--load-model={OTHER}",
            "--exit-timeout-secs=3",
            "--grpc-use-ssl=true",
            "--grpc-use-ssl-mutual=true",
            f"--grpc-server-cert={pki.server_cert}",
            f"--grpc-server-key={pki.server_key}",
            f"--grpc-root-cert={pki.ca_cert}",
            f"--http-restricted-api=model-repository:admin-key={ADMIN_KEY}",
            f"--grpc-restricted-protocol=model-repository:admin-key={ADMIN_KEY}",
        ),
    )
    server.start(timeout=300)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_scores(tls_server, test_repository):
    """The reference: the same server's plain HTTP endpoint, sync client."""
    with make_client(
        "sync", tls_server.http_url, MODEL, "http", model_repository=str(test_repository.root)
    ) as c:
        return c.compute_score(PAIRS)


@pytest.fixture(scope="module")
def https_proxy(tls_server, pki):
    from tests.support.tls_proxy import TlsProxy

    with TlsProxy(tls_server.http_port, pki.server_cert, pki.server_key) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def mutual_https_proxy(tls_server, pki):
    from tests.support.tls_proxy import TlsProxy

    with TlsProxy(tls_server.http_port, pki.server_cert, pki.server_key, client_ca=pki.ca_cert) as proxy:
        yield proxy


def scores_over(mode, url, protocol, root, **kwargs):
    with make_client(
        mode, url, MODEL, protocol, model_repository=str(root), retry=ONCE, timeout_s=60, **kwargs
    ) as client:
        return client.compute_score(PAIRS)


@pytest.mark.parametrize("mode", MODES)
def test_grpc_mutual_tls_gives_the_plain_scores(mode, tls_server, pki, plain_scores, test_repository):
    got = scores_over(
        mode,
        tls_server.grpc_url,
        "grpc",
        test_repository.root,
        ssl=True,
        root_certificates=str(pki.ca_cert),
        private_key=str(pki.client_key),
        certificate_chain=str(pki.client_cert),
    )
    assert got == pytest.approx(plain_scores, abs=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["plaintext", "no client certificate", "other CA"])
def test_grpc_tls_refuses_what_it_must(mode, case, tls_server, pki, test_repository, tmp_path):
    kwargs = {
        "plaintext": {},
        "no client certificate": {"ssl": True, "root_certificates": str(pki.ca_cert)},
        "other CA": {
            "ssl": True,
            "root_certificates": str(make_pki(tmp_path, "other").ca_cert),
            "private_key": str(pki.client_key),
            "certificate_chain": str(pki.client_cert),
        },
    }[case]
    with pytest.raises(ServerUnavailableError, match="unreachable"):
        scores_over(mode, tls_server.grpc_url, "grpc", test_repository.root, **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_https_through_a_tls_proxy_gives_the_plain_scores(
    mode, https_proxy, pki, plain_scores, test_repository
):
    before = https_proxy.connections
    got = scores_over(
        mode, https_proxy.url, "http", test_repository.root, ssl=True, root_certificates=str(pki.ca_cert)
    )
    assert got == pytest.approx(plain_scores, abs=1e-6)
    assert https_proxy.connections > before  # it went through TLS


@pytest.mark.parametrize("mode", MODES)
def test_https_with_a_client_certificate(mode, mutual_https_proxy, pki, plain_scores, test_repository):
    got = scores_over(
        mode,
        mutual_https_proxy.url,
        "http",
        test_repository.root,
        ssl=True,
        root_certificates=str(pki.ca_cert),
        private_key=str(pki.client_key),
        certificate_chain=str(pki.client_cert),
    )
    assert got == pytest.approx(plain_scores, abs=1e-6)
    with pytest.raises(ServerUnavailableError):
        scores_over(
            mode,
            mutual_https_proxy.url,
            "http",
            test_repository.root,
            ssl=True,
            root_certificates=str(pki.ca_cert),
        )


@pytest.mark.parametrize("mode", MODES)
def test_https_verifies_the_server_unless_insecure(mode, https_proxy, plain_scores, test_repository):
    with pytest.raises(ServerUnavailableError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        scores_over(mode, https_proxy.url, "http", test_repository.root, ssl=True)  # system CAs only
    got = scores_over(mode, https_proxy.url, "http", test_repository.root, ssl=True, insecure=True)
    assert got == pytest.approx(plain_scores, abs=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_headers_reach_triton_and_the_probe_reads_the_restricted_index(
    mode, tls_server, pki, test_repository
):
    """With the admin-key header the probe reads the restricted repository index and tells a model
    being reloaded (retried) from one it cannot see (final)."""
    import tritonclient.http as httpclient

    admin = httpclient.InferenceServerClient(tls_server.http_url)
    http_headers = {"admin-key": ADMIN_KEY}
    admin.unload_model(OTHER, headers=http_headers)
    try:
        wait_for(
            lambda: any(
                m["name"] == OTHER and m.get("state") == "UNAVAILABLE"
                for m in admin.get_model_repository_index(headers=http_headers)
            )
        )
        tls = {
            "ssl": True,
            "root_certificates": str(pki.ca_cert),
            "private_key": str(pki.client_key),
            "certificate_chain": str(pki.client_cert),
        }
        # gRPC carries the restricted-protocol key as metadata "triton-grpc-protocol-<header>".
        for protocol, url, extra, headers in (
            ("grpc", tls_server.grpc_url, tls, {"triton-grpc-protocol-admin-key": ADMIN_KEY}),
            ("http", tls_server.http_url, {}, http_headers),
        ):
            with pytest.raises(ModelReloadingError, match="UNAVAILABLE: unloaded"):
                make_client(
                    mode,
                    url,
                    OTHER,
                    protocol,
                    model_repository=str(test_repository.root),
                    retry=ONCE,
                    headers=headers,
                    **extra,
                )
            with pytest.raises(ModelNotReadyError, match="not readable") as info:
                make_client(
                    mode,
                    url,
                    OTHER,
                    protocol,
                    model_repository=str(test_repository.root),
                    retry=ONCE,
                    **extra,
                )
            assert not isinstance(info.value, ModelReloadingError)
    finally:
        admin.load_model(OTHER, headers=http_headers)
        admin.close()


def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll until true (a trigger for the next step, not a timing assertion)."""
    import time

    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("gave up waiting")
        time.sleep(0.1)
