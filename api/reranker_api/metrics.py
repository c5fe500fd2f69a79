"""Prometheus metrics of the service (one registry per app, served at GET /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reranker_core.endpoints import EndpointStatus

disable_created_metrics()  # no *_created series: they double every counter's exposition

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """reranker_api_requests_total{route,status}, reranker_api_request_duration_seconds{route},
    reranker_api_pairs_total{model}, reranker_api_errors_total{type},
    reranker_api_backend_duration_seconds{model}, reranker_api_in_flight_requests; and per Triton
    replica (EndpointCollector): reranker_api_triton_endpoint_{requests,failures,ejections}_total,
    reranker_api_triton_endpoint_in_flight and reranker_api_triton_endpoint_up{endpoint}."""

    def __init__(self, endpoints: Callable[[], list[EndpointStatus]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if endpoints is not None:
            self.registry.register(EndpointCollector(endpoints))
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


class EndpointCollector(Collector):
    """The endpoint pool's counters, read when /metrics is scraped (nothing per request)."""

    def __init__(self, endpoints: Callable[[], list[EndpointStatus]]) -> None:
        self.endpoints = endpoints

    def describe(self) -> list[Metric]:
        return []  # the series depend on the replicas known at scrape time

    def collect(self) -> Iterator[Metric]:
        prefix = "reranker_api_triton_endpoint"
        families = {
            "requests": CounterMetricFamily(
                f"{prefix}_requests", "Requests sent to a Triton replica", labels=("endpoint",)
            ),
            "failures": CounterMetricFamily(
                f"{prefix}_failures", "Requests to a Triton replica that failed", labels=("endpoint",)
            ),
            "ejections": CounterMetricFamily(
                f"{prefix}_ejections",
                "Times a Triton replica was taken out of rotation",
                labels=("endpoint",),
            ),
        }
        in_flight = GaugeMetricFamily(
            f"{prefix}_in_flight", "Requests outstanding on a Triton replica", labels=("endpoint",)
        )
        up = GaugeMetricFamily(
            f"{prefix}_up", "1 while a Triton replica is in rotation, else 0", labels=("endpoint",)
        )
        for status in self.endpoints():
            for name, family in families.items():
                family.add_metric((status.address,), getattr(status, name))
            in_flight.add_metric((status.address,), status.in_flight)
            up.add_metric((status.address,), 1 if status.state == "live" else 0)
        yield from families.values()
        yield in_flight
        yield up
