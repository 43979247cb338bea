"""The door's rules as plain functions: message rate, addresses, origins, socket counts."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.guard import (
    POLICY_VIOLATION,
    TRY_AGAIN_LATER,
    Door,
    Throttle,
    Verdict,
    address_key,
    client_address,
    forwarded_for,
    origin_allowed,
    parse_ip,
)
from hub.settings import Settings, SettingsError, load_settings, networks

# -- message rate -----------------------------------------------------------


def send(throttle: Throttle, times: list[float]) -> list[tuple[float, Verdict]]:
    """Feed arrival times until the throttle closes the socket; the verdicts given."""
    verdicts = []
    for t in times:
        verdict = throttle.check(t)
        verdicts.append((t, verdict))
        if verdict is Verdict.CLOSE:
            break
    return verdicts


def steady(rate: float, seconds: float, start: float = 0.0) -> list[float]:
    n = int(rate * seconds)
    return [start + i / rate for i in range(n)]


def warns_per_second_at_most_one(verdicts: list[tuple[float, Verdict]]) -> bool:
    warned = [t for t, v in verdicts if v is Verdict.WARN]
    return all(b - a >= 1.0 for a, b in itertools.pairwise(warned))


@pytest.mark.parametrize("rate", [1.0, 5.0, 50.0, 1000.0])
@pytest.mark.parametrize("pace", [1.1, 2.0, 10.0, 50.0])
def test_a_flood_at_any_pace_is_closed_within_5_s(rate: float, pace: float) -> None:
    verdicts = send(Throttle(rate), steady(rate * pace, 120))
    closed_at, last = verdicts[-1]
    assert last is Verdict.CLOSE
    # Counted from the first message the bucket refused: before it, the flood was
    # spending the burst the limit grants everyone.
    first_refused = next(t for t, v in verdicts if v is not Verdict.ALLOW)
    assert closed_at - first_refused <= 5.0
    assert warns_per_second_at_most_one(verdicts)


@pytest.mark.parametrize("rate", [0.5, 1.0, 5.0, 1000.0])
def test_a_client_at_exactly_the_rate_is_never_refused(rate: float) -> None:
    verdicts = send(Throttle(rate), steady(rate, 600))
    assert {v for _, v in verdicts} == {Verdict.ALLOW}


def test_a_client_at_the_rate_with_jitter_is_never_refused() -> None:
    rate = 5.0
    draw = random.Random(7)
    times = [i / rate + draw.uniform(-0.4, 0.4) / rate for i in range(3000)]
    verdicts = send(Throttle(rate), sorted(times))
    assert {v for _, v in verdicts} == {Verdict.ALLOW}


@pytest.mark.parametrize("burst_of", [1, 3, 5])
def test_bursting_then_pausing_is_refused_but_never_closed(burst_of: int) -> None:
    rate = 5.0
    throttle = Throttle(rate)
    verdicts: list[tuple[float, Verdict]] = []
    for round_ in range(20):  # a burst of `burst_of` seconds' worth, then 6 s of quiet
        start = round_ * 6.0
        verdicts += send(throttle, [start + i * 1e-4 for i in range(int(burst_of * rate))])
    kinds = [v for _, v in verdicts]
    assert Verdict.CLOSE not in kinds
    assert kinds.count(Verdict.WARN) == (20 if burst_of > 1 else 0)  # one per burst
    assert warns_per_second_at_most_one(verdicts)


def test_bursts_of_the_allowance_each_second_are_never_refused() -> None:
    rate = 5.0
    times = [s + i * 1e-3 for s in range(60) for i in range(int(rate))]
    assert {v for _, v in send(Throttle(rate), times)} == {Verdict.ALLOW}


def test_a_refused_client_that_slows_down_is_not_closed() -> None:
    rate = 5.0
    throttle = Throttle(rate)
    flood = steady(rate * 3, 1.0)
    verdicts = send(throttle, flood + steady(rate / 2, 60, start=1.5))
    assert Verdict.CLOSE not in {v for _, v in verdicts}
    assert verdicts[-1][1] is Verdict.ALLOW


def test_one_warning_then_silence_within_a_second() -> None:
    throttle = Throttle(2.0)
    kinds = [throttle.check(0.0) for _ in range(6)]
    assert kinds == [Verdict.ALLOW, Verdict.ALLOW, Verdict.WARN] + [Verdict.DROP] * 3
    assert throttle.check(1.0) is Verdict.ALLOW  # two tokens back after a second
    assert throttle.check(1.0) is Verdict.ALLOW
    assert throttle.check(1.0) is Verdict.WARN


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=400))
def test_never_more_than_one_warning_a_second(gaps: list[float]) -> None:
    throttle = Throttle(5.0)
    now = 0.0
    verdicts = []
    for gap in gaps:
        now += gap
        verdicts.append((now, throttle.check(now)))
    assert warns_per_second_at_most_one(verdicts)
    # A close always follows more than rate * window arrivals within the window.
    for i, (t, v) in enumerate(verdicts):
        if v is Verdict.CLOSE:
            assert sum(1 for u, _ in verdicts[: i + 1] if u > t - 5.0) > 25


# -- addresses ----------------------------------------------------------------

LOOPBACK = networks("127.0.0.1")


def test_forwarded_for_reads_every_line_in_order() -> None:
    raw = [
        (b"host", b"hub.example"),
        (b"x-forwarded-for", b"198.51.100.1, 198.51.100.2"),
        (b"X-Forwarded-For", b" 203.0.113.9 "),
        (b"x-forwarded-for", b""),
    ]
    assert forwarded_for(raw) == ["198.51.100.1", "198.51.100.2", "203.0.113.9"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:4431", "192.0.2.1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("unknown", None),
        ("", None),
        ("999.1.1.1", None),
    ],
)
def test_parse_ip(text: str, expected: str | None) -> None:
    ip = parse_ip(text)
    assert (None if ip is None else str(ip)) == expected


def test_ipv6_is_counted_per_network() -> None:
    one, two = parse_ip("2001:db8:1:2::1"), parse_ip("2001:db8:1:2:ffff::9")
    assert one is not None and two is not None
    assert address_key(one, 64) == address_key(two, 64) == "2001:db8:1:2::/64"
    assert address_key(one, 128) == "2001:db8:1:2::1"
    assert address_key(one, 48) == "2001:db8:1::/48"
    v4 = parse_ip("192.0.2.1")
    assert v4 is not None and address_key(v4, 64) == "192.0.2.1"


def test_the_peer_counts_without_a_trusted_proxy() -> None:
    assert client_address("192.0.2.5", ["203.0.113.9"], []) == "192.0.2.5"
    assert client_address("192.0.2.5", ["203.0.113.9"], networks("10.0.0.0/8")) == "192.0.2.5"
    assert client_address("2001:db8:7:7::5", [], []) == "2001:db8:7:7::/64"
    assert client_address("::ffff:192.0.2.5", [], []) == "192.0.2.5"


def test_the_right_most_untrusted_hop_counts() -> None:
    proxies = networks("127.0.0.1, 10.0.0.0/8")
    # The client forged the first hop; the edge proxy (10.1.1.1) saw 203.0.113.9.
    hops = ["198.51.100.66", "203.0.113.9", "10.1.1.1"]
    assert client_address("127.0.0.1", hops, proxies) == "203.0.113.9"
    # Only trusted hops: the furthest one is all we know.
    assert client_address("127.0.0.1", ["10.2.2.2", "10.1.1.1"], proxies) == "10.2.2.2"
    assert client_address("127.0.0.1", [], proxies) == "127.0.0.1"


def test_a_hop_that_is_not_an_address_ends_the_walk() -> None:
    proxies = networks("127.0.0.1, 10.0.0.0/8")
    assert client_address("127.0.0.1", ["203.0.113.9", "garbage"], proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", ["unknown", "10.1.1.1"], proxies) == "10.1.1.1"


def test_forwarded_ipv6_is_grouped_and_mapped_ipv4_is_ipv4() -> None:
    proxies = networks("::1, 127.0.0.1")
    assert client_address("::1", ["[2001:db8:5:6::77]:5050"], proxies, 56) == "2001:db8:5::/56"
    assert client_address("::ffff:127.0.0.1", ["::ffff:203.0.113.4"], proxies) == "203.0.113.4"


def test_trust_proxy_takes_cidr_ranges_and_refuses_nonsense() -> None:
    settings = load_settings({"HUB_TRUST_PROXY": "10.0.0.0/8, 2001:db8::/32,127.0.0.1"})
    assert [str(n) for n in networks(settings.trust_proxy)] == [
        "10.0.0.0/8",
        "2001:db8::/32",
        "127.0.0.1/32",
    ]
    for bad in ["10.0.0.5/8", "proxy.example", "10.0.0.0/33", "127.0.0.1,,x"]:
        with pytest.raises(SettingsError) as caught:
            load_settings({"HUB_TRUST_PROXY": bad})
        message = str(caught.value)
        assert message.startswith("HUB_TRUST_PROXY=") and "\n" not in message


@pytest.mark.parametrize("bad", ["0", "129", "sixty-four"])
def test_ipv6_prefix_must_be_a_prefix_length(bad: str) -> None:
    with pytest.raises(SettingsError, match="HUB_IPV6_PREFIX"):
        load_settings({"HUB_IPV6_PREFIX": bad})


# -- origins ----------------------------------------------------------------------


def test_own_origin_only_by_default() -> None:
    assert origin_allowed("http://hub.example:8000", "hub.example:8000", "ws", [])
    assert origin_allowed("https://hub.example", "hub.example", "wss", [])
    assert not origin_allowed("https://hub.example", "hub.example", "ws", [])
    assert not origin_allowed("http://evil.example", "hub.example", "ws", [])
    assert not origin_allowed("http://hub.example", None, "ws", [])


def test_no_origin_is_not_a_browser_page() -> None:
    assert origin_allowed(None, "hub.example", "ws", [])
    assert origin_allowed(None, None, "ws", ["https://a.example"])


def test_listed_origins() -> None:
    listed = ["https://a.example", "https://b.example"]
    assert origin_allowed("https://b.example", "hub.internal", "ws", listed)
    assert not origin_allowed("http://hub.internal", "hub.internal", "ws", listed)
    assert origin_allowed("https://anything.example", "hub.internal", "ws", ["*"])


# -- the door -----------------------------------------------------------------


def test_door_counts_per_address_and_in_all() -> None:
    door = Door(Settings(max_sockets_per_ip=2, max_sockets=3))
    assert door.enter("a") is None and door.enter("a") is None
    assert door.enter("a") == POLICY_VIOLATION
    assert door.enter("b") is None
    assert door.enter("c") == TRY_AGAIN_LATER
    door.leave("a")
    assert door.enter("c") is None
    for address in ("a", "b", "c"):
        door.leave(address)
    assert door.total == 0 and door.per_address == {}


def test_door_groups_a_network_through_a_trusted_proxy() -> None:
    door = Door(Settings(max_sockets_per_ip=1, trust_proxy="127.0.0.0/8", ipv6_prefix=64))
    raw = [(b"x-forwarded-for", b"2001:db8:1:2::1")]
    first = door.address("127.0.0.1", raw)
    second = door.address("127.0.0.2", [(b"x-forwarded-for", b"2001:db8:1:2::2")])
    assert first == second == "2001:db8:1:2::/64"
    assert door.enter(first) is None
    assert door.enter(second) == POLICY_VIOLATION
    # Not from a proxy: the header is the client's own word and is ignored.
    assert door.address("192.0.2.8", raw) == "192.0.2.8"
