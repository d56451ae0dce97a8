"""Load test of the service: mixed query traffic from concurrent clients, then overload.

    rag bench-load [--clients 8] [--seconds 20] [--overload-clients 64] [--url URL] [--out F]

Starts `rag serve` on a free port of 127.0.0.1 over the demo corpus (or `--index`), or
loads a running service (`--url`). Each phase runs N clients, each an async httpx client
with its own keep-alive connection, asking in a closed loop (the next request when the last
one is answered) a weighted mix of ask, search, stream and chat, for a fixed time and at
most `max_requests` requests. A shed request (503 or 429) is retried after its Retry-After,
as a well-behaved client does. Phases and what each must show:

- target: N clients at the concurrency the service is sized for: no errors, nothing shed;
- overload: many more clients than query slots: the excess is shed with 503 at once, with
  no timeouts, no connection errors and no other 5xx;
- recovery: right after the overload, a few clients: every request answered 200.

Latency percentiles count answered requests only (a shed 503 takes a millisecond); for a
stream, `first_event_ms` is the time to its first event and `ms` to its end. The server's
resident memory (`process_resident_memory_bytes` on /metrics) is read before and after
each phase, so its growth over the run is reported, and its peak too when this command
started it.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench.http import DEMO, QUESTIONS, percentiles
from bench.service import RAG, peak_rss_mb, service_process

SHED = frozenset({429, 503})  # the service's "not now, retry after" answers
# Admission gauges of /metrics, by the names the report gives them.
GAUGES = {
    "rag_queries_inflight": "inflight",
    "rag_queries_inflight_limit": "max_inflight",
    "rag_queries_waiting_limit": "max_queue",
}


@dataclass(frozen=True)
class Route:
    path: str
    body: Callable[[str], dict[str, Any]]
    # A stream is complete when this line has been read (an error event never is).
    last_line: str | None = None


ROUTES: dict[str, Route] = {
    "ask": Route("/v1/ask", lambda q: {"question": q}),
    "search": Route("/v1/search", lambda q: {"query": q}),
    "stream": Route("/v1/ask/stream", lambda q: {"question": q}, last_line="event: answer"),
    "chat": Route(
        "/v1/chat/completions",
        lambda q: {"model": "rag", "messages": [{"role": "user", "content": q}]},
    ),
}
DEFAULT_MIX = {"ask": 4.0, "search": 3.0, "stream": 2.0, "chat": 1.0}


@dataclass(frozen=True)
class Phase:
    name: str  # target, overload or recovery
    clients: int
    seconds: float


@dataclass(frozen=True)
class LoadOptions:
    clients: int = 8
    seconds: float = 20
    overload_clients: int = 0  # 0: no overload and no recovery phase
    overload_seconds: float | None = None  # default: `seconds`
    recovery_clients: int = 2
    recovery_seconds: float = 5
    max_requests: int = 20_000  # per phase
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    questions: Sequence[str] = QUESTIONS
    timeout_s: float = 30
    key: str | None = None
    seed: int = 0

    def phases(self) -> list[Phase]:
        phases = [Phase("target", self.clients, self.seconds)]
        if self.overload_clients:
            seconds = self.overload_seconds or self.seconds
            phases.append(Phase("overload", self.overload_clients, seconds))
            phases.append(Phase("recovery", self.recovery_clients, self.recovery_seconds))
        return phases


@dataclass(frozen=True)
class Sample:
    route: str
    # "ok", "shed", or the error: "http_500", "timeout", "connect", "stream_incomplete", ...
    outcome: str
    ms: float
    first_event_ms: float | None = None
    retry_after_s: float = 0
    # The pipeline's own time, as the service reports it (`timings_ms.total` of ask and
    # search): the rest of `ms` is waiting for a slot, HTTP and the client.
    service_ms: float | None = None


def parse_mix(text: str) -> dict[str, float]:
    """Weights from text such as "ask=4,search=3"; a ValueError names the valid routes."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in ROUTES or not weight:
            raise ValueError(f"{part!r}: expected ROUTE=WEIGHT with ROUTE one of {list(ROUTES)}")
        mix[name] = float(weight)
    if not mix or sum(mix.values()) <= 0 or min(mix.values()) < 0:
        raise ValueError(f"{text!r}: weights must be >= 0 and not all 0")
    return mix


def _outcome(status: int) -> str:
    return "ok" if status == 200 else "shed" if status in SHED else f"http_{status}"


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", 1))
    except ValueError:
        return 1


def _service_ms(response: httpx.Response) -> float | None:
    try:
        total = response.json().get("timings_ms", {}).get("total")
    except (ValueError, AttributeError):  # not the JSON object of an answer
        return None
    return None if total is None else float(total)


async def request(http: httpx.AsyncClient, name: str, question: str) -> Sample:
    """One request of route `name`, timed; failures are outcomes, never exceptions."""
    route = ROUTES[name]
    started = time.perf_counter()
    first: float | None = None

    def ms(since: float = started) -> float:
        return round((time.perf_counter() - since) * 1000, 2)

    try:
        async with http.stream("POST", route.path, json=route.body(question)) as response:
            if response.status_code != 200 or route.last_line is None:
                await response.aread()
                outcome = _outcome(response.status_code)
                return Sample(
                    name,
                    outcome,
                    ms(),
                    retry_after_s=_retry_after(response),
                    service_ms=_service_ms(response) if outcome == "ok" else None,
                )
            complete = False
            async for line in response.aiter_lines():
                if first is None and line:
                    first = ms()
                complete = complete or line == route.last_line
            return Sample(name, "ok" if complete else "stream_incomplete", ms(), first)
    except httpx.TimeoutException:
        return Sample(name, "timeout", ms(), first)
    except httpx.ConnectError:
        return Sample(name, "connect", ms(), first)
    except httpx.TransportError as err:
        return Sample(name, type(err).__name__, ms(), first)


async def run_phase(url: str, phase: Phase, options: LoadOptions) -> tuple[list[Sample], float]:
    """`phase.clients` closed-loop clients until the time or the request budget runs out."""
    names = list(options.mix)
    weights = [options.mix[n] for n in names]
    headers = {"Authorization": f"Bearer {options.key}"} if options.key else {}
    samples: list[Sample] = []
    sent = 0
    started = time.monotonic()
    deadline = started + phase.seconds

    async def client(number: int) -> None:
        nonlocal sent
        rng = random.Random(f"{options.seed}-{phase.name}-{number}")
        async with httpx.AsyncClient(
            base_url=url, timeout=options.timeout_s, headers=headers
        ) as http:
            while time.monotonic() < deadline and sent < options.max_requests:
                sent += 1
                [name] = rng.choices(names, weights)
                sample = await request(http, name, rng.choice(options.questions))
                samples.append(sample)
                if sample.outcome == "shed":
                    wait = min(sample.retry_after_s, deadline - time.monotonic())
                    await asyncio.sleep(max(0.0, wait))

    async with asyncio.TaskGroup() as group:
        for number in range(phase.clients):
            group.create_task(client(number))
    return samples, time.monotonic() - started


def summarise(samples: Sequence[Sample], wall_s: float) -> dict[str, Any]:
    """Counts, rates, latency percentiles, sheds and errors of some samples."""
    ok = [s for s in samples if s.outcome == "ok"]
    firsts = [s.first_event_ms for s in ok if s.first_event_ms is not None]
    pipeline = [s.service_ms for s in ok if s.service_ms is not None]
    errors = Counter(s.outcome for s in samples if s.outcome not in {"ok", "shed"})
    return {
        "requests": len(samples),
        "ok": len(ok),
        "req_per_s": round(len(samples) / wall_s, 1),
        "ok_per_s": round(len(ok) / wall_s, 1),
        "latency_ms": percentiles([s.ms for s in ok]) if len(ok) > 1 else None,
        "first_event_ms": percentiles(firsts) if len(firsts) > 1 else None,
        "service_ms": percentiles(pipeline) if len(pipeline) > 1 else None,
        "shed": sum(s.outcome == "shed" for s in samples),
        "errors": dict(errors.most_common()),
    }


def verdict(phase: str, total: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether a phase showed what it must (see the module docstring), and what it showed."""
    errors = sum(total["errors"].values())
    if phase == "target":
        return errors == 0 and total["shed"] == 0, f"{errors} errors, {total['shed']} shed"
    if phase == "overload":
        return errors == 0, f"{total['shed']} shed with 503/429, {errors} errors"
    all_ok = total["requests"] > 0 and total["ok"] == total["requests"]
    return all_ok, f"{total['ok']} of {total['requests']} answered 200"


async def server_figures(url: str, key: str | None) -> dict[str, float | None]:
    """Resident memory, sheds so far, slots in use and the admission bounds, from /metrics
    (None where unreadable)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    unknown: dict[str, float | None] = dict.fromkeys(("rss_mb", "shed", *GAUGES.values()))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as http:
            response = await http.get("/metrics")
    except httpx.TransportError:
        return unknown
    if response.status_code != 200:
        return unknown
    figures: dict[str, float | None] = {**unknown, "shed": 0.0}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "process_resident_memory_bytes":
                figures["rss_mb"] = round(sample.value / 2**20, 1)
            elif sample.name == "rag_shed_requests_total":
                figures["shed"] = (figures["shed"] or 0) + sample.value
            elif sample.name in GAUGES:
                figures[GAUGES[sample.name]] = sample.value
    return figures


async def run_load(url: str, options: LoadOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """Every phase against the service at `url`; the report as plain data."""
    phases: list[dict[str, Any]] = []
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    start = await server_figures(url, options.key)
    before = start
    for phase in options.phases():
        log(f"{phase.name}: {phase.clients} clients for {phase.seconds:g} s")
        samples, wall_s = await run_phase(url, phase, options)
        after = await server_figures(url, options.key)
        routes = {
            name: summarise([s for s in samples if s.route == name], wall_s)
            for name, weight in options.mix.items()
            if weight > 0
        }
        routes["total"] = summarise(samples, wall_s)
        passed, shown = verdict(phase.name, routes["total"])
        phases.append(
            {
                **asdict(phase),
                "wall_s": round(wall_s, 2),
                "routes": routes,
                "server": {
                    "shed": _change(before["shed"], after["shed"]),
                    "rss_mb_before": before["rss_mb"],
                    "rss_mb_after": after["rss_mb"],
                    "slots_in_use_after": after["inflight"],
                },
                "passed": passed,
                "verdict": shown,
            }
        )
        before = after
    recovery = next((p for p in phases if p["name"] == "recovery"), None)
    return {
        "url": url,
        "started_at": started_at,
        "limits": {
            name: None if start[name] is None else int(start[name] or 0)
            for name in ("max_inflight", "max_queue")
        },
        "mix": dict(options.mix),
        "questions": len(options.questions),
        "phases": phases,
        "recovered": recovery["passed"] if recovery else None,
        "memory": {
            "rss_mb_start": start["rss_mb"],
            "rss_mb_end": before["rss_mb"],
            "growth_mb": _change(start["rss_mb"], before["rss_mb"]),
        },
        "passed": all(p["passed"] for p in phases),
    }


def _change(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 1)


@contextmanager
def demo_index() -> Iterator[Path]:
    """The demo corpus ingested by `rag ingest` into a temporary index (a child process,
    so that this one never loads the model)."""
    with tempfile.TemporaryDirectory(prefix="rag-load-") as tmp:
        index = Path(tmp) / "index"
        subprocess.run(
            [str(RAG), "ingest", str(DEMO), "--index", str(index)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        yield index


def run(
    options: LoadOptions,
    url: str | None = None,
    index: Path | None = None,
    env: dict[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Load `url`, or a `rag serve` started here on `index` (default: the demo corpus)."""
    if url is not None:
        return asyncio.run(run_load(url, options, log))
    with demo_index() if index is None else nullcontext(index) as directory:
        log(f"starting rag serve on {directory}")
        with service_process(directory, env) as (served, process):
            report = asyncio.run(run_load(served, options, log))
            report["memory"]["peak_rss_mb"] = peak_rss_mb(process)
    return report


def print_report(report: Mapping[str, Any], console: Console) -> None:
    """A table per phase, then the verdicts, recovery and memory in words."""
    limits = report["limits"]
    console.print(
        f"{report['url']}: {limits['max_inflight']} query slots, {limits['max_queue']} places "
        f"in the queue; mix {report['mix']}. Latencies in ms, of answered requests; pipeline: "
        "the time the service reports (ask, search); 1st event: a stream's, p50 / p95"
    )
    for phase in report["phases"]:
        table = Table(
            title=f"{phase['name']}: {phase['clients']} clients, {phase['wall_s']} s",
            title_justify="left",
        )
        columns = ("route", "requests", "ok/s", "p50", "p95", "p99", "pipeline p50", "1st event")
        for column in columns:
            table.add_column(column, justify="left" if column == "route" else "right")
        table.add_column("shed", justify="right")
        table.add_column("errors")
        for name, row in phase["routes"].items():
            latency = row["latency_ms"] or {}
            first = row["first_event_ms"]
            pipeline = row["service_ms"] or {}
            table.add_row(
                name,
                str(row["requests"]),
                str(row["ok_per_s"]),
                *(_ms(latency.get(p)) for p in ("p50", "p95", "p99")),
                _ms(pipeline.get("p50")),
                f"{_ms(first['p50'])} / {_ms(first['p95'])}" if first else "",
                str(row["shed"]),
                ", ".join(f"{k} {v}" for k, v in row["errors"].items()) or "0",
            )
        console.print(table)
        mark = "[green]pass[/green]" if phase["passed"] else "[red]FAIL[/red]"
        console.print(f"{phase['name']}: {mark} ({phase['verdict']})")
    memory = report["memory"]
    if report["recovered"] is not None:
        console.print(f"recovered: {'yes' if report['recovered'] else 'NO'}")
    console.print(
        f"server RSS: {memory['rss_mb_start']} MB at start, {memory['rss_mb_end']} MB at end "
        f"(growth {memory['growth_mb']} MB); peak {memory.get('peak_rss_mb', 'unknown')} MB"
    )


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"
