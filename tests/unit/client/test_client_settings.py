"""ConnectionSettings: the arguments both clients share are checked once, with clear errors."""

from __future__ import annotations

import ssl

import pytest

from reranker_client.errors import InvalidInputError
from reranker_client.settings import ConnectionSettings


@pytest.fixture
def pem(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


def create(protocol="grpc", **kwargs):
    return ConnectionSettings.create("localhost:1", protocol, "m", **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"root_certificates": "ca.pem"}, "root_certificates given but ssl=False"),
        ({"insecure": True}, "insecure given but ssl=False"),
        ({"ssl": True, "root_certificates": "/no/such/ca.pem"}, "root_certificates: no such file"),
        ({"ssl": True, "root_certificates": 3}, "path to a PEM file"),
        ({"ssl": True, "insecure": True}, "HTTPS options"),
        ({"model_version": "latest"}, "model_version must be a positive integer"),
        ({"model_version": 0}, "model_version"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"concurrency": 0}, "max_concurrency"),
        ({"headers": {"a": 1}}, "headers must map str to str"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        create(**kwargs)


def test_key_and_chain_go_together(pem):
    with pytest.raises(InvalidInputError, match="private_key and certificate_chain go together"):
        create(ssl=True, private_key=pem)


@pytest.mark.parametrize("url", ["https://h:1", "", None])
def test_url_has_no_scheme(url):
    with pytest.raises(InvalidInputError, match="url"):
        ConnectionSettings.create(url, "http", "m")


def test_valid_settings(pem):
    s = create(
        "http",
        ssl=True,
        root_certificates=pem,
        insecure=True,
        model_version=3,
        timeout_s=5,
        headers={"authorization": "Bearer x"},
    )
    assert s.tls is not None and s.tls.root_certificates == pem and s.tls.insecure
    assert s.model_version == "3" and s.attempt_timeout(None) == 5 and s.attempt_timeout(2.0) == 2.0
    assert create().tls is None and create(model_version=None).model_version == ""
    context = ssl.create_default_context()
    assert create("http", ssl=True, ssl_context=context).tls.stdlib_context() is context


def test_insecure_https_context_does_not_verify():
    context = create("http", ssl=True, insecure=True).tls.stdlib_context()
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
