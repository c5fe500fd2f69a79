"""The sans-IO endpoint pool: address forms, DNS re-resolution, power-of-two selection on requests
in flight, ejection with backoff, probes and resurrection, manifest fingerprints, deadlines."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from reranker_core.endpoints import (
    EndpointPool,
    EndpointSpec,
    PoolOptions,
    State,
    fingerprint,
    parse_endpoints,
)
from reranker_core.errors import InputError
from reranker_core.triton_errors import Classified, Failure

DOWN = Classified(Failure.UNREACHABLE, "connection refused")
BAD_INPUT = Classified(Failure.INVALID, "passages[0] is empty")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live_pool(addresses: str, clock: Clock | None = None, **options) -> EndpointPool:
    pool = EndpointPool(addresses, PoolOptions(**options), clock=clock or Clock(), rng=random.Random(7))
    for endpoint in pool.probes_due():
        pool.probe_passed(endpoint, {"m": "fp1"})
    return pool


@pytest.mark.parametrize(
    "text, spec",
    [
        ("localhost:8001", EndpointSpec(addresses=("localhost:8001",))),
        (" a:1, b:2 ,a:1", EndpointSpec(addresses=("a:1", "b:2"))),
        ("[::1]:8001", EndpointSpec(addresses=("[::1]:8001",))),
        (
            "dns:///triton-headless.ns.svc:8001",
            EndpointSpec(dns_host="triton-headless.ns.svc", dns_port=8001),
        ),
    ],
)
def test_address_forms(text, spec):
    assert parse_endpoints(text) == spec
    assert str(parse_endpoints(str(spec))) == str(spec)


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "host:port"),
        ("a:1,,b:2", "empty entry"),
        ("a", "no port"),
        ("a:0", "valid port"),
        ("a:http", "valid port"),
        ("::1:8001", "IPv6"),
        ("http://a:1", "without a scheme"),
        ("dns:///a:1,b:2", "one name"),
        ("dns:///a", "no port"),
    ],
)
def test_bad_addresses_are_named(text, words):
    with pytest.raises(InputError, match=words):
        parse_endpoints(text)


def test_unprobed_endpoints_get_requests_only_as_a_last_resort():
    pool = EndpointPool("a:1,b:2", clock=Clock())
    assert all(e.state is State.PENDING for e in pool.endpoints)
    assert pool.pick("m") is not None  # nothing probed yet, no manifest expected: try one
    a, b = pool.probes_due()
    pool.probe_passed(a, {"m": "fp1"})
    assert pool.pick("m") is a  # b is not probed and the manifest of m is now known
    assert pool.probes_due() == []  # b is being probed already


def test_equal_replicas_spread_evenly_and_the_busy_one_is_avoided():
    pool = live_pool("a:1,b:2,c:3")
    counts = Counter()
    for _ in range(3000):
        endpoint = pool.pick("m")
        pool.started(endpoint)
        counts[endpoint.address] += 1
        pool.succeeded(endpoint)
    assert all(800 < n < 1200 for n in counts.values()), counts
    slow = pool.endpoints[0]
    slow.in_flight = 50  # a slow replica holds its requests longer
    picks = Counter(pool.pick("m").address for _ in range(3000))
    assert picks[slow.address] == 0, picks  # it always loses a draw against an idle one


def answered(pool: EndpointPool, endpoint, duration: float) -> None:
    pool.started(endpoint)
    pool.succeeded(endpoint, duration)


def test_a_slow_replica_gets_requests_only_when_it_would_answer_sooner():
    clock = Clock()
    pool = live_pool("a:1,b:2,c:3", clock)
    fast_a, fast_b, slow = pool.endpoints
    for endpoint, duration in ((fast_a, 0.02), (fast_b, 0.02), (slow, 0.2)):
        answered(pool, endpoint, duration)
    fast_a.in_flight = fast_b.in_flight = 3  # expected wait 4 x 20 ms < 200 ms
    assert Counter(pool.pick("m").address for _ in range(300))[slow.address] == 0
    fast_a.in_flight = fast_b.in_flight = 12  # 13 x 20 ms > 200 ms: the slow one is quicker now
    assert Counter(pool.pick("m").address for _ in range(300))[slow.address] > 50
    answered(pool, slow, 0.02)  # it got faster: the average follows
    assert slow.latency_s == pytest.approx(0.2 + 0.2 * (0.02 - 0.2))


def test_a_latency_measured_behind_a_queue_is_not_counted_twice():
    """Saturated fast replicas answer in 240 ms because each request waits behind 11 others; a new one
    would wait as long, not 12 x 240 ms: a replica taking 400 ms on its own gets nothing."""
    clock = Clock()
    pool = live_pool("a:1,b:2,c:3", clock)
    fast_a, fast_b, slow = pool.endpoints
    for endpoint in (fast_a, fast_b):
        endpoint.in_flight = 11
        pool.started(endpoint)
        pool.succeeded(endpoint, 0.24, depth=12)
    answered(pool, slow, 0.4)
    assert fast_a.depth == 12 and slow.depth == 1
    assert Counter(pool.pick("m").address for _ in range(300))[slow.address] == 0
    fast_a.in_flight = fast_b.in_flight = 30  # 31/12 x 240 ms > 400 ms: now the slow one is sooner
    assert Counter(pool.pick("m").address for _ in range(300))[slow.address] > 50


def test_a_route_reports_the_depth_its_request_was_sent_into():
    clock = Clock()
    pool = live_pool("a:1", clock)
    (only,) = pool.endpoints
    only.in_flight = 3
    route = pool.route("m")
    assert route.next() is only
    clock.now += 0.5
    route.succeeded(only)
    assert (only.latency_s, only.depth, only.in_flight) == (0.5, 4, 3)
    route = pool.route("m")
    route.next()
    route.succeeded(only)  # answered at once, sent behind 3 others
    assert only.depth == pytest.approx(4.0)
    assert only.latency_s == pytest.approx(0.5 + 0.2 * (0.0 - 0.5))


def test_a_slow_replica_never_makes_a_busy_fast_one_win_over_an_idle_one():
    """Two replicas drawn at random would pair the slow one with the busy fast one a third of the
    time, and that one would win; every live replica is compared instead."""
    pool = live_pool("a:1,b:2,c:3")
    busy, idle, slow = pool.endpoints
    for endpoint, duration in ((busy, 0.04), (idle, 0.04), (slow, 0.4)):
        answered(pool, endpoint, duration)
    busy.in_flight = 2
    assert Counter(pool.pick("m").address for _ in range(300)) == {idle.address: 300}


def test_equal_replicas_get_equal_shares_whatever_their_history():
    """A replica that got little traffic for a while is not kept at little: with equal latencies
    the one with fewer requests in flight wins."""
    pool = live_pool("a:1,b:2")
    busy, quiet = pool.endpoints
    answered(pool, busy, 0.1)
    answered(pool, quiet, 0.1)
    busy.in_flight, quiet.in_flight = 4, 1
    assert Counter(pool.pick("m").address for _ in range(300))[quiet.address] == 300


def test_a_latency_not_renewed_is_forgotten():
    clock = Clock()
    pool = live_pool("a:1,b:2", clock)
    fast, slow = pool.endpoints
    answered(pool, fast, 0.02)
    answered(pool, slow, 0.2)
    fast.in_flight = 3
    assert Counter(pool.pick("m").address for _ in range(100))[slow.address] == 0
    clock.now += 2.5  # no new duration for longer than latency_ttl_s: tried afresh
    answered(pool, fast, 0.02)
    fast.in_flight = 3
    assert Counter(pool.pick("m").address for _ in range(100))[slow.address] == 100
    slow.in_flight = 1  # one request at a time until it has a new duration; its old one counts meanwhile
    assert Counter(pool.pick("m").address for _ in range(100))[slow.address] == 0


def _renewals_of(pool: EndpointPool, clock: Clock, slow, seconds: float, duration: float) -> list[float]:
    """A steady trickle (one request every 0.1 s) for `seconds`: the times at which `slow` got one,
    answering in `duration`; the others answer in 0.02 s."""
    times = []
    for _ in range(int(seconds * 10)):
        clock.now += 0.1
        endpoint = pool.pick("m")
        if endpoint is slow:
            times.append(clock.now)
        answered(pool, endpoint, duration if endpoint is slow else 0.02)
    return times


def test_a_replica_that_stays_far_slower_is_renewed_ever_less_often():
    """At 10 requests/s a renewal every 2 s would be 5 % of the requests, all slow, in the p99."""
    clock = Clock()
    pool = live_pool("a:1,b:2,c:3", clock)
    fast_a, fast_b, slow = pool.endpoints
    for endpoint, duration in ((fast_a, 0.02), (fast_b, 0.02), (slow, 0.2)):
        answered(pool, endpoint, duration)
    times = _renewals_of(pool, clock, slow, 60.0, 0.2)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # 2 s, doubled per renewal that found it 10x slower, up to 16 s (+ until a draw picks it)
    assert len(gaps) == 4 and all(s < g < s + 1.5 for g, s in zip(gaps, [4, 8, 16, 16], strict=True)), times
    assert pool.renewal_interval(slow) == 16.0 and slow.slow_renewals == 5


def _fast_and_slow(clock: Clock, backed_off: bool = True):
    """A pool of a fast replica (0.02 s) and a 10x slower one, whose renewals have found it slow
    at least twice when `backed_off`."""
    pool = live_pool("a:1,b:2", clock)
    fast, slow = pool.endpoints
    answered(pool, fast, 0.02)
    answered(pool, slow, 0.2)
    if backed_off:
        _renewals_of(pool, clock, slow, 20.0, 0.2)
        assert slow.slow_renewals >= 2 and pool.renewal_interval(slow) >= 8.0
    return pool, fast, slow


def test_a_slow_replica_that_recovers_is_back_at_its_next_renewal():
    clock = Clock()
    pool, _, slow = _fast_and_slow(clock)
    _renewals_of(pool, clock, slow, 17.0, 0.02)  # recovered: the next renewal is fast
    assert slow.slow_renewals == 0 and pool.renewal_interval(slow) == 2.0
    share = _renewals_of(pool, clock, slow, 10.0, 0.02)
    assert len(share) > 30, share  # equal replicas: about half of 100 requests


def test_a_renewal_only_somewhat_slower_does_not_back_off():
    """Noise on a shared machine (2x here) never spaces the renewals: only SLOW_RENEWAL does."""
    clock = Clock()
    pool, fast, slow = _fast_and_slow(clock, backed_off=False)
    clock.now += 2.5
    answered(pool, fast, 0.02)
    answered(pool, slow, 0.04)  # a renewal at 2x the other's latency
    assert slow.slow_renewals == 0 and pool.renewal_interval(slow) == 2.0


def test_an_ejected_replica_back_in_starts_again_from_the_short_renewal():
    clock = Clock()
    pool, _, slow = _fast_and_slow(clock)
    backed_off = slow.slow_renewals
    pool.probe_passed(slow, {"m": "fp1"})  # a health probe of a live replica changes nothing
    assert slow.slow_renewals == backed_off
    pool.eject(slow, "connection refused")
    clock.now += 10
    for endpoint in pool.probes_due():
        pool.probe_passed(endpoint, {"m": "fp1"})
    assert slow.slow_renewals == 0 and pool.renewal_interval(slow) == 2.0


def test_pool_options_refuse_a_renewal_interval_above_its_maximum():
    with pytest.raises(InputError, match="latency_ttl_s"):
        PoolOptions(latency_ttl_s=20.0)


def test_a_burst_after_a_quiet_spell_does_not_queue_on_the_slow_replica():
    """All averages are older than latency_ttl_s: each replica gets one request to renew its own,
    the rest of the burst goes by the old averages, not evenly over the three."""
    clock = Clock()
    pool = live_pool("a:1,b:2,c:3", clock)
    fast_a, fast_b, slow = pool.endpoints
    for endpoint, duration in ((fast_a, 0.04), (fast_b, 0.04), (slow, 0.4)):
        answered(pool, endpoint, duration)
    clock.now += 60
    for _ in range(24):
        pool.started(pool.pick("m"))
    assert slow.in_flight == 1 and fast_a.in_flight + fast_b.in_flight == 23


def test_a_latency_measured_behind_a_queue_does_not_make_an_idle_replica_look_fast():
    """1.2 s measured with 6 requests in flight: a lone request there is not expected in 0.2 s
    (a replica with several model instances answers it no faster than its average)."""
    pool = live_pool("a:1,b:2")
    queued, steady = pool.endpoints
    for _ in range(20):
        queued.in_flight = 5
        pool.started(queued)
        pool.succeeded(queued, 1.2, depth=6)
    queued.in_flight = 0
    answered(pool, steady, 0.3)
    assert Counter(pool.pick("m").address for _ in range(100))[queued.address] == 0


def test_a_replica_that_looks_somewhat_slower_keeps_a_proportional_share():
    """40 % apart may be noise on a shared machine: the slower-looking one is not starved, its
    share is proportional (it is left out only beyond OUTLIER of the soonest expected time)."""
    pool = live_pool("a:1,b:2")
    a, b = pool.endpoints
    answered(pool, a, 0.10)
    answered(pool, b, 0.14)
    for _ in range(240):
        pool.started(pool.pick("m"))
    assert b.in_flight == pytest.approx(240 * 0.10 / 0.24, abs=2), (a.in_flight, b.in_flight)


def test_a_failed_replica_is_ejected_and_probed_back_with_growing_backoff():
    clock = Clock()
    pool = live_pool("a:1,b:2", clock, eject_base_s=1.0, eject_max_s=4.0, jitter=0.0, health_s=0)
    a, b = pool.endpoints
    route = pool.route("m")
    first = route.next()
    assert route.failed_with(first, DOWN)  # retry elsewhere
    assert first.state is State.EJECTED and first.ejections == 1
    second = route.next()
    assert second is not first
    route.succeeded(second)
    assert route.next() is None  # every live endpoint tried
    assert pool.probes_due() == []  # backoff not over
    clock.now += 1.0
    assert pool.probes_due() == [first]
    pool.probe_failed(first, "refused")
    assert first.retry_at == clock.now + 2.0  # doubled
    clock.now += 2.0
    pool.probes_due()
    pool.probe_failed(first, "refused")
    clock.now += 4.0
    pool.probes_due()
    pool.probe_failed(first, "refused")
    assert first.retry_at == clock.now + 4.0  # capped
    clock.now += 4.0
    assert pool.probes_due() == [first]
    pool.probe_passed(first, {"m": "fp1"})
    assert first.state is State.LIVE and first.ejections == 1
    assert [s.state for s in pool.status()] == ["live", "live"]


def test_requests_failing_together_on_one_replica_eject_it_once():
    clock = Clock()
    pool = live_pool("a:1,b:2", clock, jitter=0.0)
    routes = [pool.route("m") for _ in range(8)]
    endpoint = pool.endpoints[0]
    for route in routes:  # eight requests in flight to the same replica
        pool.started(endpoint)
        route.tried.append(endpoint)
    for route in routes:
        route.failed_with(endpoint, DOWN)
    assert endpoint.ejections == 1 and endpoint.strikes == 1 and endpoint.in_flight == 0
    assert endpoint.retry_at == clock.now + 0.25


def test_backoff_has_jitter():
    pool = EndpointPool("a:1", PoolOptions(eject_base_s=1.0, jitter=0.5), rng=random.Random(1))
    delays = {round(pool.backoff(1), 6) for _ in range(20)}
    assert len(delays) > 1 and all(0.5 <= d <= 1.5 for d in delays)


def test_a_final_error_is_not_retried_and_does_not_eject():
    pool = live_pool("a:1,b:2")
    route = pool.route("m")
    endpoint = route.next()
    assert not route.failed_with(endpoint, BAD_INPUT)
    assert endpoint.state is State.LIVE and endpoint.failures == 1 and endpoint.in_flight == 0


def test_when_all_are_ejected_the_one_due_soonest_is_tried():
    clock = Clock()
    pool = live_pool("a:1,b:2", clock, jitter=0.0)
    a, b = pool.endpoints
    pool.eject(a, "down")
    pool.probes_due()
    pool.probe_failed(a, "still down")  # a longer backoff
    pool.eject(b, "down")
    route = pool.route("m")
    assert route.next() is b
    route.succeeded(b)  # it answered: back in rotation
    assert b.state is State.LIVE and b.strikes == 0


def test_a_replica_serving_another_manifest_gets_no_request():
    pool = EndpointPool("a:1,b:2,c:3", clock=Clock())
    a, b, c = pool.probes_due()
    pool.probe_passed(a, {"m": "fp1"})
    pool.probe_passed(b, {"m": "fp2"})
    pool.probe_passed(c, {"m": "fp1"})
    assert pool.expected["m"] == "fp1"
    assert "another manifest" in b.reason
    assert {pool.pick("m").address for _ in range(200)} == {"a:1", "c:3"}
    assert pool.pick("other-model") is not None  # no expectation for other models


def test_an_unpinned_manifest_follows_the_majority_of_a_rollout_but_a_pin_never_moves():
    pool = live_pool("a:1,b:2,c:3")
    a, b, c = pool.endpoints
    pool.probe_passed(a, {"m": "fp2"})
    assert pool.expected["m"] == "fp1"  # b and c still serve fp1
    pool.probe_passed(b, {"m": "fp2"})
    assert pool.expected["m"] == "fp2"  # most replicas serve the new manifest now
    assert {pool.pick("m").address for _ in range(100)} == {"a:1", "b:2"}
    pool.probe_passed(c, {"m": "fp2"})
    assert {pool.pick("m").address for _ in range(100)} == {"a:1", "b:2", "c:3"}
    pinned = live_pool("a:1,b:2")
    pinned.expect("m", "fp1")
    for endpoint in pinned.endpoints:
        pinned.probe_passed(endpoint, {"m": "fp2"})
    assert pinned.expected["m"] == "fp1" and pinned.pick("m") is None


def test_the_route_stops_at_its_deadline():
    clock = Clock()
    pool = live_pool("a:1,b:2", clock)
    route = pool.route("m", deadline=clock.now + 1.0)
    endpoint = route.next()
    clock.now += 1.5
    assert route.failed_with(endpoint, DOWN)
    assert route.next() is None and route.remaining() < 0


def test_dns_names_are_resolved_again_and_replicas_come_and_go():
    clock = Clock()
    answers = [
        ["10.0.0.1:8001", "10.0.0.2:8001"],
        OSError("no such host"),
        [],
        ["10.0.0.2:8001", "10.0.0.3:8001"],
    ]
    asked = []

    def resolver(host, port):
        asked.append((host, port))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    pool = EndpointPool("dns:///svc.ns:8001", PoolOptions(refresh_s=5.0), resolver=resolver, clock=clock)
    assert pool.endpoints == [] and pool.resolve_due()
    pool.resolve()
    assert [e.address for e in pool.endpoints] == ["10.0.0.1:8001", "10.0.0.2:8001"]
    assert not pool.resolve_due()
    clock.now += 5.0
    pool.resolve()  # failure: keep what we have, try again soon
    assert "no such host" in pool.resolve_error and len(pool.endpoints) == 2
    assert not pool.resolve_due()
    clock.now += 1.0
    assert pool.resolve_due()
    pool.resolve()  # empty: keep what we have
    assert len(pool.endpoints) == 2
    clock.now += 1.0
    kept = pool.endpoints[1]
    pool.resolve()
    assert [e.address for e in pool.endpoints] == ["10.0.0.2:8001", "10.0.0.3:8001"]
    assert pool.endpoints[0] is kept and pool.endpoints[1].state is State.PENDING
    assert pool.idle_retired() == ["10.0.0.1:8001"]  # left, nothing in flight: close it
    assert pool.idle_retired() == []
    assert asked == [("svc.ns", 8001)] * 4


def test_a_replica_that_leaves_with_requests_in_flight_is_closed_only_when_they_are_done():
    answers = [["10.0.0.1:8001", "10.0.0.2:8001"], ["10.0.0.2:8001"], ["10.0.0.1:8001", "10.0.0.2:8001"]]
    clock = Clock()
    pool = EndpointPool(
        "dns:///svc:8001", PoolOptions(refresh_s=1.0), resolver=lambda h, p: answers.pop(0), clock=clock
    )
    pool.resolve()
    leaving = pool.endpoints[0]
    pool.started(leaving)
    clock.now += 1
    pool.resolve()
    assert pool.idle_retired() == []  # a request is still in flight there
    pool.succeeded(leaving)
    assert pool.idle_retired() == ["10.0.0.1:8001"]
    pool.started(pool.endpoints[0])
    clock.now += 1
    pool.resolve()  # it comes back: a new endpoint, nothing to close
    assert pool.idle_retired() == []


def test_live_replicas_are_probed_again_every_health_interval():
    clock = Clock()
    pool = live_pool("a:1,b:2", clock, health_s=2.0)
    assert pool.probes_due() == []
    clock.now += 2.0
    endpoint, _ = pool.probes_due()
    pool.probe_failed(endpoint, "not ready")
    assert endpoint.state is State.EJECTED


def test_a_single_address_is_never_probed_and_always_tried():
    clock = Clock()
    pool = EndpointPool("a:1", PoolOptions(health_s=1.0), clock=clock)
    (endpoint,) = pool.endpoints
    assert endpoint.state is State.LIVE and pool.probes_due() == []
    pool.eject(endpoint, "down")
    clock.now += 100
    assert pool.probes_due() == [] and pool.route("m").next() is endpoint


def test_fingerprint_is_stable_and_differs_by_manifest():
    assert fingerprint('{"a": 1}') == fingerprint('{"a": 1}') != fingerprint('{"a": 2}')
