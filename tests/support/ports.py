"""Free loopback ports for test servers (the product's helper)."""

from reranker_server.embedded import free_ports  # noqa: F401
