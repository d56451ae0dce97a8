"""Prometheus metrics: request counts and latencies by route, requests and index gauges by
collection, job gauges."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.admission import Admission

# Latency buckets around what a query costs here: ~10-100 ms, with ingestion-sized tails.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Gauges = Callable[[], Mapping[str, Mapping[str, float]]]


class Metrics:
    """One registry per app, so that several apps (tests) never share counters."""

    def __init__(self, gauges: Gauges) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rag_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds",
            "Time from request to the end of the response body, by route",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_GaugeCollector(gauges))
        # Admission control's refusals (503 + Retry-After), apart from other 503s such as
        # "still loading"; reason is queue_full or queue_timeout.
        self.shed = Counter(
            "rag_shed_requests",
            "Query requests refused at capacity, by route and reason",
            ["route", "reason"],
            registry=self.registry,
        )
        # Query and document requests by the collection they used (only existing collections
        # a key may use get this far, so the series stay bounded).
        self.collection_requests = Counter(
            "rag_collection_requests",
            "Requests served from a collection, by collection and route",
            ["collection", "route"],
            registry=self.registry,
        )
        # Resident memory, CPU seconds and open files of the process: whether memory stays
        # bounded under load shows here (process_resident_memory_bytes).
        ProcessCollector(registry=self.registry)

    def track_admission(self, admission: Admission) -> None:
        """Gauges of the query slots and queue, in use and their bounds, read at scrape."""
        for name, doc, read in (
            ("rag_queries_inflight", "Query requests holding a slot", lambda: admission.inflight),
            ("rag_queries_waiting", "Query requests waiting for a slot", lambda: admission.waiting),
            ("rag_queries_inflight_limit", "Query slots", lambda: admission.max_inflight),
            ("rag_queries_waiting_limit", "Places in the queue", lambda: admission.max_queue),
        ):
            Gauge(name, doc, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _GaugeCollector(Collector):
    """Reads gauges at scrape time: {metric name: {label value: number}}."""

    HELP: ClassVar[dict[str, str]] = {
        "rag_index_documents": "Documents in the index, by open collection",
        "rag_index_passages": "Passages in the index (after deduplication), by open collection",
        "rag_ingest_jobs": "Ingestion jobs remembered, by status",
        "rag_ready": "1 once the index and the model are loaded",
    }

    LABELS: ClassVar[dict[str, str]] = {
        "rag_index_documents": "collection",
        "rag_index_passages": "collection",
        "rag_ingest_jobs": "status",
    }

    def __init__(self, gauges: Gauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for name, values in self._gauges().items():
            label = self.LABELS.get(name)
            if label is not None:
                family = GaugeMetricFamily(name, self.HELP[name], labels=[label])
                for status, value in values.items():
                    family.add_metric([status], value)
            else:
                family = GaugeMetricFamily(name, self.HELP[name], value=values[""])
            yield family


class MetricsMiddleware:
    """Counts and times every request by its route template (not its raw path).

    Timing runs to the last body chunk, so a streamed answer is measured whole.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = scope.get("route")
            # Unmatched paths share one label, so scanners cannot blow up the series count.
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
