"""The endpoint pool: which Triton replicas a caller may send a request to, and which one next.

Shared by the SDK (sync and asyncio, gRPC and HTTP) and the rerank API (grpc.aio); it does no I/O
of its own. The adapters run the calls and tell the pool what happened:

- Endpoints are given as one address (`host:8001`), a comma-separated list (`a:8001,b:8001`) or a
  DNS name that resolves to several addresses (`dns:///triton-headless.ns.svc:8001`), re-resolved
  every `refresh_s` through an injectable resolver (socket.getaddrinfo by default).
- Each request goes to a live endpoint in two steps. First the outliers are left out: the
  expected time of a new request on each endpoint is its recent latency (an exponentially
  weighted moving average), scaled up when more requests are in flight there than those latencies
  were measured with (their average, each request included), never down; an endpoint expected to
  take more than OUTLIER times the soonest one gets nothing. A latency measured behind a queue is
  not counted twice, so when the fast replicas are saturated a slow one is left out unless its
  own answer would come nearly as soon. Then two of the others are drawn at random and the one
  with the lower (in flight + 1) x latency wins (the power of two choices on a "peak EWMA" cost:
  equal replicas get equal shares, a somewhat slower one a proportionally smaller one; the random
  draw keeps many callers from all sending to the one replica that looks fastest to each). The
  outliers are left out before the draw, so a slow replica never pairs with a busy fast one while
  the other fast one is idle. An endpoint whose average is older than its renewal interval takes
  one request whose duration replaces it; the interval (2 s) doubles up to 16 s while renewals
  find the endpoint far slower than the others, so one that stays slow costs few slow requests.
- An endpoint is used only once a probe said it is ready and which manifest fingerprint (per
  model) it serves; one serving another manifest than the expected one gets no request for that
  model. A request that failed with a replica failure (see triton_errors) ejects the endpoint:
  it is probed again after an exponential backoff with jitter, and the request goes to another one
  (`Route`), within the caller's deadline.
- Per-endpoint counters (requests, failures, ejections, in flight) for metrics and logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from reranker_core.errors import InputError
from reranker_core.triton_errors import Classified

DNS_PREFIX = "dns:///"
RESOLVE_RETRY_S = 1.0  # a failed or empty resolution is tried again this soon
OUTLIER = 1.5  # a replica expected to take this many times the soonest one's time gets no request
SLOW_RENEWAL = 3.0  # a renewal this many times slower than the fastest other replica backs off the next
Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class EndpointSpec:
    """The endpoints as the caller gave them: fixed addresses, or one DNS name (and port) whose
    addresses are the endpoints, re-resolved periodically."""

    addresses: tuple[str, ...] = ()
    dns_host: str = ""
    dns_port: int = 0

    @property
    def dynamic(self) -> bool:
        return bool(self.dns_host)

    def __str__(self) -> str:
        if self.dynamic:
            return f"{DNS_PREFIX}{join_host_port(self.dns_host, self.dns_port)}"
        return ",".join(self.addresses)


def split_host_port(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"; InputError naming the problem otherwise."""
    text = address.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise InputError(f"endpoint {address!r}: an IPv6 address is written [address]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise InputError(f"endpoint {address!r} has no port: give host:port")
        if ":" in host:
            raise InputError(f"endpoint {address!r}: an IPv6 address is written [address]:port")
    if not host or any(c.isspace() or c in "/@?#" for c in host):
        raise InputError(f"endpoint {address!r} has no valid host name")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InputError(f"endpoint {address!r} has no valid port (1-65535)")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_endpoints(text: str) -> EndpointSpec:
    """The endpoints of "host:port", "a:1,b:2" or "dns:///name:port"; InputError naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"the server address must be host:port (or a comma-separated list), got {text!r}")
    text = text.strip()
    if text.startswith(DNS_PREFIX):
        name = text[len(DNS_PREFIX) :]
        if "," in name:
            raise InputError(f"{text!r}: dns:/// takes one name (its addresses are the endpoints)")
        host, port = split_host_port(name)
        return EndpointSpec(dns_host=host, dns_port=port)
    if "://" in text:
        raise InputError(
            f"server address {text!r}: give host:port without a scheme (use the TLS options for TLS), "
            "a comma-separated list of them, or dns:///name:port"
        )
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise InputError(f"server addresses {text!r}: an empty entry in the comma-separated list")
    addresses = [join_host_port(*split_host_port(p)) for p in parts]
    return EndpointSpec(addresses=tuple(dict.fromkeys(addresses)))


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (socket.getaddrinfo), as sorted "ip:port" strings."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({join_host_port(info[4][0], port) for info in infos})


def fingerprint(manifest_text: str) -> str:
    """A short stable fingerprint of a model's manifest (its JSON text as served)."""
    return hashlib.sha256(manifest_text.encode("utf-8")).hexdigest()[:16]


class State(Enum):
    PENDING = "pending"  # known, not probed yet: gets no request
    LIVE = "live"
    EJECTED = "ejected"  # failed: probed again at retry_at


@dataclass
class Endpoint:
    """One replica's address, state and counters."""

    address: str
    state: State = State.PENDING
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    ejections: int = 0
    strikes: int = 0  # ejections since the last successful request: sets the backoff
    retry_at: float = 0.0
    latency_s: float | None = None  # moving average of successful requests' durations
    depth: float = 1.0  # moving average of the requests in flight (itself included) they were sent into
    sampled_at: float = float("-inf")  # when latency_s last had a new duration
    slow_renewals: int = 0  # renewals in a row that found it SLOW_RENEWAL x slower: spaces the next
    probed_at: float = float("-inf")
    probing: bool = False
    reason: str = ""
    fingerprints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EndpointStatus:
    """A snapshot of one endpoint, for logs and metrics."""

    address: str
    state: str
    in_flight: int
    requests: int
    failures: int
    ejections: int
    reason: str


@dataclass(frozen=True)
class PoolOptions:
    """refresh_s: how often a dns:/// name is resolved again; health_s: how often a live endpoint
    is probed (0: only on failure); eject_base_s doubling up to eject_max_s (+-jitter): how long an
    ejected endpoint waits before its next probe; latency_weight: of each new request duration in
    an endpoint's moving average; latency_ttl_s doubling up to latency_ttl_max_s: how old an
    endpoint's average may get before one request renews it (doubling while renewals find it far
    slower than the others)."""

    refresh_s: float = 10.0
    health_s: float = 2.0
    eject_base_s: float = 0.25
    eject_max_s: float = 5.0
    jitter: float = 0.2
    latency_weight: float = 0.2  # weight of a new duration in the moving average
    latency_ttl_s: float = 2.0  # an average this old is renewed: one request, whose duration replaces it
    latency_ttl_max_s: float = 16.0

    def __post_init__(self) -> None:
        if not self.refresh_s > 0:
            raise InputError(f"the endpoint refresh interval must be > 0 seconds, got {self.refresh_s!r}")
        if self.health_s < 0 or self.eject_base_s < 0 or self.eject_max_s < self.eject_base_s:
            raise InputError("pool intervals must be >= 0 with eject_max_s >= eject_base_s")
        if not 0 <= self.jitter <= 1:
            raise InputError("pool jitter must be in [0, 1]")
        if not 0 < self.latency_weight <= 1:
            raise InputError("pool latency_weight must be in (0, 1]")
        if not 0 < self.latency_ttl_s <= self.latency_ttl_max_s:
            raise InputError("pool latency_ttl_s must be > 0 and <= latency_ttl_max_s")


class EndpointPool:
    """The replicas of one service and the choice among them (no I/O: see the module docstring)."""

    def __init__(
        self,
        spec: EndpointSpec | str,
        options: PoolOptions | None = None,
        *,
        resolver: Resolver = resolve_addresses,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = parse_endpoints(spec) if isinstance(spec, str) else spec
        self.options = options or PoolOptions()
        self.resolver, self.clock = resolver, clock
        self.rng = rng or random.Random()
        self._endpoints: dict[str, Endpoint] = {}
        self._retired: dict[str, Endpoint] = {}  # left the pool, may have requests in flight
        self.expected: dict[str, str] = {}  # model -> manifest fingerprint requests may be served by
        self._pinned: set[str] = set()
        self._resolve_at = float("-inf")
        self.resolve_error = ""
        # One fixed address: nothing to choose from, so nothing to probe; it is always tried.
        self.single = not self.spec.dynamic and len(self.spec.addresses) == 1
        if not self.spec.dynamic:
            self._apply(self.spec.addresses)
        if self.single:
            self.endpoints[0].state = State.LIVE

    # -- membership ------------------------------------------------------------------------------
    @property
    def endpoints(self) -> list[Endpoint]:
        return list(self._endpoints.values())

    def resolve_due(self) -> bool:
        return self.spec.dynamic and self.clock() >= self._resolve_at

    def resolve(self) -> None:
        """Resolve a dns:/// name now and apply the answer (lookup + apply_resolved)."""
        if self.spec.dynamic:
            self.apply_resolved(self.lookup())

    def lookup(self) -> list[str] | OSError:
        """The resolver's answer for the dns:/// name (blocking I/O: asyncio code runs it in a
        thread), or the error it raised. It touches no state of the pool."""
        try:
            return list(self.resolver(self.spec.dns_host, self.spec.dns_port))
        except OSError as exc:
            return exc

    def apply_resolved(self, addresses: list[str] | OSError) -> None:
        """Take a lookup's answer: new addresses join as not yet probed, missing ones leave. A failed
        or empty answer keeps the current endpoints (a failing one is ejected by its requests)."""
        self._resolve_at = self.clock() + self.options.refresh_s
        if isinstance(addresses, OSError) or not addresses:
            self.resolve_error = (
                f"cannot resolve {self.spec}: {addresses}"
                if isinstance(addresses, OSError)
                else f"{self.spec} resolved to no address"
            )
            self._resolve_at = self.clock() + min(self.options.refresh_s, RESOLVE_RETRY_S)
            return
        self.resolve_error = ""
        self._apply(addresses)

    def _apply(self, addresses: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(addresses))
        for address in wanted:
            self._endpoints.setdefault(address, Endpoint(address))
            self._retired.pop(address, None)
        for address in [a for a in self._endpoints if a not in wanted]:
            self._retired[address] = self._endpoints.pop(address)  # requests in flight finish there

    def idle_retired(self) -> list[str]:
        """Addresses that left the pool and have no request in flight any more: their connections
        can be closed now (and are forgotten here)."""
        idle = [a for a, e in self._retired.items() if e.in_flight == 0]
        for address in idle:
            del self._retired[address]
        return idle

    # -- manifests -------------------------------------------------------------------------------
    def expect(self, model: str, fp: str) -> None:
        """Serve `model` only from endpoints with manifest fingerprint `fp` (the SDK pins the manifest
        it tokenizes for). Without a pin, the expected fingerprint is the one most live endpoints
        serve (ties keep the current one): during a rolling update of the model, traffic moves to
        the new manifest once more replicas serve it than the old one, never to a mix."""
        self.expected[model] = fp
        self._pinned.add(model)

    def serves(self, endpoint: Endpoint, model: str | None) -> bool:
        """The endpoint serves `model` with the expected manifest (or no model is named)."""
        if model is None or model not in self.expected:
            return True
        return endpoint.fingerprints.get(model) == self.expected[model]

    def _adopt(self, model: str) -> None:
        if model in self._pinned:
            return
        live = [
            e.fingerprints[model]
            for e in self._endpoints.values()
            if e.state is State.LIVE and model in e.fingerprints
        ]
        if not live:
            return
        counts = Counter(live)
        current = self.expected.get(model)
        best = max(counts.values())
        if counts.get(current, 0) < best:  # ties keep the current one
            self.expected[model] = counts.most_common(1)[0][0]

    # -- selection -------------------------------------------------------------------------------
    def pick(self, model: str | None = None, exclude: Iterable[Endpoint] = ()) -> Endpoint | None:
        """A live endpoint serving `model`: of two drawn at random among those whose expected time
        (see `expected_time`) is within OUTLIER of the soonest, the one with the lower
        (in flight + 1) x latency; when none is live, the ejected (or not yet probed) one due
        soonest, as a last resort; None when none is left."""
        excluded = {id(e) for e in exclude}
        eligible = [e for e in self._endpoints.values() if id(e) not in excluded and self.serves(e, model)]
        live = [e for e in eligible if e.state is State.LIVE]
        if not live:
            if any(e.state is State.LIVE and self.serves(e, model) for e in self._endpoints.values()):
                return None  # live ones exist but were tried: do not fall back on known-bad ones
            resting = [e for e in eligible if e.state is not State.LIVE]  # unprobed or ejected
            return min(resting, key=lambda e: e.retry_at) if resting else None
        if len(live) == 1:
            return live[0]
        now = self.clock()
        known = [e.latency_s for e in live if e.latency_s is not None]
        usual = min(known) if known else 1.0
        times = [self.expected_time(e, usual, now) for e in live]
        soonest = min(times)
        near = [e for e, t in zip(live, times, strict=True) if t <= soonest * OUTLIER]
        if len(near) == 1:
            return near[0]
        a, b = self.rng.sample(near, 2)
        cost_a = (a.in_flight + 1) * self._latency_or(a, usual, now)
        cost_b = (b.in_flight + 1) * self._latency_or(b, usual, now)
        return a if cost_a <= cost_b else b

    def _stale(self, endpoint: Endpoint, now: float) -> bool:
        """Its average is older than its renewal interval (`renewal_interval`): the next duration
        replaces it."""
        return now - endpoint.sampled_at > self.renewal_interval(endpoint)

    def renewal_interval(self, endpoint: Endpoint) -> float:
        """latency_ttl_s, doubled for each renewal in a row that found the endpoint SLOW_RENEWAL
        times slower than the fastest other one, up to latency_ttl_max_s: a replica that stays slow
        costs one slow request every 16 s, not every 2 s."""
        o = self.options
        return min(o.latency_ttl_max_s, o.latency_ttl_s * 2.0 ** min(endpoint.slow_renewals, 30))

    def _far_slower(self, endpoint: Endpoint, duration_s: float) -> bool:
        others = [
            e.latency_s
            for e in self._endpoints.values()
            if e is not endpoint and e.state is State.LIVE and e.latency_s is not None
        ]
        return bool(others) and duration_s > SLOW_RENEWAL * min(others)

    def _latency_or(self, endpoint: Endpoint, usual: float, now: float) -> float:
        """The endpoint's average latency; `usual` for one that has none or is renewing an old one."""
        if endpoint.latency_s is None or (endpoint.in_flight == 0 and self._stale(endpoint, now)):
            return usual
        return endpoint.latency_s

    def expected_time(self, endpoint: Endpoint, usual: float, now: float) -> float:
        """The time a new request would take on `endpoint`: its average latency, scaled up when more
        requests are in flight now than when those latencies were measured, never down (a replica
        with several model instances answers a lone request no faster than its measured average).
        One that never answered, or whose average is older than its renewal interval, takes one
        request at a time, counted as fast as the fastest (`usual`), until it answers; meanwhile an
        old average still counts."""
        if endpoint.latency_s is None and endpoint.in_flight > 0:
            return math.inf
        # idle (in flight 0): the factor is 1, depth being >= 1
        return self._latency_or(endpoint, usual, now) * max(1.0, (endpoint.in_flight + 1) / endpoint.depth)

    def live(self, model: str | None = None) -> list[Endpoint]:
        return [e for e in self._endpoints.values() if e.state is State.LIVE and self.serves(e, model)]

    # -- requests --------------------------------------------------------------------------------
    def started(self, endpoint: Endpoint) -> None:
        endpoint.in_flight += 1
        endpoint.requests += 1

    def succeeded(self, endpoint: Endpoint, duration_s: float | None = None, depth: int = 1) -> None:
        """A request to `endpoint` answered after `duration_s` (None: not measured); `depth`: the
        requests in flight there when it was sent, itself included."""
        endpoint.in_flight = max(0, endpoint.in_flight - 1)
        endpoint.strikes = 0
        if duration_s is not None:
            now = self.clock()
            previous, weight = endpoint.latency_s, self.options.latency_weight
            if previous is None or self._stale(endpoint, now):
                if previous is not None:  # a renewal
                    slow = self._far_slower(endpoint, duration_s)
                    endpoint.slow_renewals = endpoint.slow_renewals + 1 if slow else 0
                endpoint.latency_s, endpoint.depth = duration_s, max(1.0, depth)
            else:
                endpoint.latency_s = previous + weight * (duration_s - previous)
                endpoint.depth += weight * (max(1.0, depth) - endpoint.depth)
            endpoint.sampled_at = now
        if endpoint.state is State.EJECTED:  # the last-resort pick worked: it is back
            endpoint.state, endpoint.reason = State.LIVE, ""

    def failed(self, endpoint: Endpoint, reason: str, replica_failure: bool) -> None:
        """A request to `endpoint` failed; a replica failure (see triton_errors) ejects it."""
        endpoint.in_flight = max(0, endpoint.in_flight - 1)
        endpoint.failures += 1
        if replica_failure:
            self.eject(endpoint, reason)

    def eject(self, endpoint: Endpoint, reason: str) -> None:
        """Take the endpoint out of rotation until a probe after the backoff says it is back. The
        other requests that were in flight to it when it failed change nothing more (one failure
        seen many times); a failed probe lengthens the backoff."""
        endpoint.reason = reason
        if endpoint.state is State.EJECTED:
            return
        endpoint.ejections += 1
        self._rest(endpoint)

    def _rest(self, endpoint: Endpoint) -> None:
        endpoint.state = State.EJECTED
        endpoint.strikes += 1
        endpoint.retry_at = self.clock() + self.backoff(endpoint.strikes)

    def backoff(self, strikes: int) -> float:
        o = self.options
        base = min(o.eject_max_s, o.eject_base_s * 2 ** max(0, strikes - 1))
        return base * (1 + o.jitter * (2 * self.rng.random() - 1))

    # -- probes ----------------------------------------------------------------------------------
    def endpoints_due(self) -> bool:
        """Some endpoint is due for a probe (probes_due() would return it)."""
        now = self.clock()
        return any(self._due(e, now) for e in self._endpoints.values())

    def probes_due(self) -> list[Endpoint]:
        """Endpoints to probe now (marked as being probed): new ones, ejected ones whose backoff
        is over, and live ones not probed for health_s."""
        due = [e for e in self._endpoints.values() if self._due(e, self.clock())]
        for e in due:
            e.probing = True
        return due

    def _due(self, e: Endpoint, now: float) -> bool:
        if e.probing or self.single:
            return False
        health = self.options.health_s
        return (
            e.state is State.PENDING
            or (e.state is State.EJECTED and now >= e.retry_at)
            or (e.state is State.LIVE and health > 0 and now - e.probed_at >= health)
        )

    def probe_passed(self, endpoint: Endpoint, fingerprints: dict[str, str]) -> None:
        """The endpoint is ready and serves these models with these manifest fingerprints."""
        endpoint.probing = False
        endpoint.probed_at = self.clock()
        endpoint.fingerprints = dict(fingerprints)
        if endpoint.state is not State.LIVE:  # (back) in: its next answer is its latency
            endpoint.slow_renewals = 0
        endpoint.state, endpoint.reason = State.LIVE, ""
        for model, fp in fingerprints.items():
            self.expected.setdefault(model, fp)
            self._adopt(model)
        mismatched = [m for m, fp in fingerprints.items() if self.expected.get(m) != fp]
        if mismatched:
            endpoint.reason = "serves another manifest of " + ", ".join(sorted(mismatched))

    def probe_failed(self, endpoint: Endpoint, reason: str) -> None:
        """The endpoint is not usable: out of rotation (again), for a longer backoff each time."""
        endpoint.probing = False
        endpoint.probed_at = self.clock()
        endpoint.reason = reason
        if endpoint.state is not State.EJECTED:
            endpoint.ejections += 1
        self._rest(endpoint)

    def status(self) -> list[EndpointStatus]:
        return [
            EndpointStatus(
                e.address, e.state.value, e.in_flight, e.requests, e.failures, e.ejections, e.reason
            )
            for e in self._endpoints.values()
        ]

    def route(self, model: str | None = None, deadline: float | None = None) -> Route:
        """The failover of one request (see Route); `deadline` on this pool's clock."""
        return Route(self, model, deadline)


class Route:
    """One request's walk over the endpoints: `next()` an endpoint not tried yet (None once none
    is left or the deadline passed); after a failure, `failed()` says whether to try another
    (a replica failure) or give up (any other failure: the caller raises it)."""

    def __init__(self, pool: EndpointPool, model: str | None, deadline: float | None) -> None:
        self.pool, self.model, self.deadline = pool, model, deadline
        self.tried: list[Endpoint] = []
        self._sent_at = 0.0
        self._depth = 1
        self.last = ""  # the reason of the last failure

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.pool.clock()

    def next(self) -> Endpoint | None:
        left = self.remaining()
        if left is not None and left <= 0:
            return None
        endpoint = self.pool.pick(self.model, self.tried)
        if endpoint is not None:
            self.tried.append(endpoint)
            self.pool.started(endpoint)
            self._sent_at, self._depth = self.pool.clock(), endpoint.in_flight
        return endpoint

    def succeeded(self, endpoint: Endpoint) -> None:
        self.pool.succeeded(endpoint, self.pool.clock() - self._sent_at, self._depth)

    def failed(self, endpoint: Endpoint, reason: str, replica_failure: bool) -> bool:
        """Record a failure; True (a replica failure): try another endpoint."""
        self.pool.failed(endpoint, reason, replica_failure)
        self.last = reason
        return replica_failure

    def failed_with(self, endpoint: Endpoint, failure: Classified) -> bool:
        """`failed` for a classified failure."""
        return self.failed(endpoint, f"{failure.kind.value}: {failure.message}", failure.replica_failure)


async def refresh_membership(pool: EndpointPool, clients: dict[str, Any]) -> None:
    """For an asyncio adapter: resolve the pool's DNS name when due (in a thread: getaddrinfo
    blocks) and close the clients (`clients`: address -> client with an async close()) of the
    endpoints that left the answer and have nothing in flight."""
    if pool.resolve_due():
        pool.apply_resolved(await asyncio.to_thread(pool.lookup))
    for address in pool.idle_retired():
        client = clients.pop(address, None)
        if client is not None:
            await client.close()
