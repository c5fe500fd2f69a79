"""--triton-url takes one address, a list of replicas or dns:///name:port, and refuses anything else
with a message naming the problem; --dns-refresh is bounded."""

from __future__ import annotations

import pytest

from reranker_api.settings import parse_settings


@pytest.mark.parametrize(
    "url", ["triton:8001", "10.0.0.5:8001,10.0.0.6:8001", "dns:///triton-headless.ns.svc:8001"]
)
def test_replica_forms_are_accepted(url):
    settings = parse_settings(["--triton-url", url, "--dns-refresh", "5"], env={})
    assert settings.triton_url == url and settings.dns_refresh_s == 5.0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--triton-url", "a:8001,,b:8001"], "empty entry"),
        (["--triton-url", "http://a:8001"], "without a scheme"),
        (["--triton-url", "a"], "no port"),
        (["--dns-refresh", "0"], "--dns-refresh"),
    ],
)
def test_bad_values_are_named(args, words):
    with pytest.raises(SystemExit, match=words):
        parse_settings(args, env={})
