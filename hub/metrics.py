"""Prometheus metrics: counters the hub updates, and live values read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.fetch.http import HttpStats
from hub.mailbox import MailboxStats
from hub.queue.core import Slots

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_WAIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
_RATIO_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5)


class Metrics:
    """One registry per hub, so several hubs in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.admitted = Counter(
            "hub_admitted", "Imports admitted to a slot", ["source"], registry=r
        )
        self.wait = Histogram(
            "hub_wait_seconds",
            "Time from joining the line to holding a slot",
            ["source"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "hub_import_duration_seconds",
            "Time an import held its slot",
            ["source", "state"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.eta_error = Histogram(
            "hub_eta_abs_error_seconds",
            "|first estimated wait - real wait|, measured at every admission",
            ["source"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.eta_error_ratio = Histogram(
            "hub_eta_abs_error_ratio",
            "The same error as a fraction of the real wait",
            ["source"],
            buckets=_RATIO_BUCKETS,
            registry=r,
        )

    def watch(
        self,
        slots: Slots,
        sockets: Callable[[], int],
        http: HttpStats,
        mail: MailboxStats,
    ) -> None:
        self.registry.register(_Live(slots, sockets, http, mail))

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(eq=False)  # the registry keys collectors by identity
class _Live(Collector):
    slots: Slots
    sockets: Callable[[], int]
    http: HttpStats
    mail: MailboxStats

    def collect(self) -> Iterator[Metric]:
        s = self.slots
        yield _gauge("hub_queue_length", "Imports waiting for a slot", len(s.line))
        yield _gauge("hub_slots", "Import slots (MAX_CONCURRENT_IMPORTS)", s.slots)
        running = GaugeMetricFamily(
            "hub_running_imports", "Imports holding a slot", labels=["source"]
        )
        for source, count in sorted(s.in_lane.items()):
            running.add_metric([source], count)
        yield running
        yield _gauge("hub_sockets_open", "WebSockets open", self.sockets())
        requests = CounterMetricFamily(
            "hub_upstream_requests", "Upstream responses by status", labels=["upstream", "status"]
        )
        for upstream, statuses in sorted(self.http.requests_by_status.items()):
            for status, count in sorted(statuses.items()):
                requests.add_metric([upstream, status], count)
        yield requests
        retries = CounterMetricFamily(
            "hub_upstream_retries", "Upstream retries", labels=["upstream"]
        )
        for upstream, count in sorted(self.http.retries.items()):
            retries.add_metric([upstream], count)
        yield retries
        breaker = GaugeMetricFamily(
            "hub_breaker_open",
            "1 while the upstream's breaker is open (its imports wait for it)",
            labels=["upstream"],
        )
        openings = CounterMetricFamily(
            "hub_breaker_openings", "Times the upstream's breaker opened", labels=["upstream"]
        )
        for upstream, state in sorted(self.http.breaker_open.items()):
            breaker.add_metric([upstream], state)
            openings.add_metric([upstream], self.http.breaker_openings.get(upstream, 0))
        yield breaker
        yield openings
        pool = CounterMetricFamily(
            "hub_pool_connections", "Pooled upstream connections", labels=["event"]
        )
        pool.add_metric(["created"], self.http.connections_created)
        pool.add_metric(["reused"], self.http.connections_reused)
        yield pool
        yield _counter("hub_messages_sent", "Messages written to sockets", self.mail.sent)
        yield _counter(
            "hub_messages_coalesced",
            "Latest-state messages replaced in a mailbox before they were sent",
            self.mail.coalesced,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)
