"""Prometheus metrics of the service (one registry per app, served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # no *_created series: they double every counter's exposition

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """reranker_api_requests_total{route,status}, reranker_api_request_duration_seconds{route},
    reranker_api_pairs_total{model}, reranker_api_errors_total{type},
    reranker_api_backend_duration_seconds{model}, reranker_api_in_flight_requests."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "reranker_api_requests_total",
            "HTTP requests by route and status code",
            ("route", "status"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "reranker_api_request_duration_seconds",
            "HTTP request latency",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pairs = Counter(
            "reranker_api_pairs_total", "(query, document) pairs scored", ("model",), registry=self.registry
        )
        self.errors = Counter(
            "reranker_api_errors_total", "Failed requests by error type", ("type",), registry=self.registry
        )
        self.backend_duration = Histogram(
            "reranker_api_backend_duration_seconds",
            "Time waiting for Triton per scored request",
            ("model",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "reranker_api_in_flight_requests", "Requests being scored now", registry=self.registry
        )
