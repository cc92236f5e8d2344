"""OpenTelemetry: one trace from a request through ``send`` to the handler and on,
through ``publish``, to a subscriber and a webhook (the SDK's in-memory exporter);
an HTTP request to ``postroom serve`` with a ``traceparent`` starts that trace."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import postroom
from postroom.model import tracing
from postroom.testing.workers import NO_BACKOFF, running, wait_until

otel = pytest.importorskip("opentelemetry.sdk.trace")
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from opentelemetry import propagate, trace  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from postroom.server import create_app  # noqa: E402


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Every span finished during the test. The SDK provider is installed for
    this test only (OpenTelemetry sets a global provider once per process; the
    tests after this one must not find every message carrying a traceparent)."""
    exporter = InMemorySpanExporter()
    provider = otel.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    yield exporter
    provider.shutdown()


def _by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {s.name: s for s in exporter.get_finished_spans()}


def test_one_trace_from_send_to_handler_to_subscriber(
    spans: InMemorySpanExporter,
) -> None:
    url = "memory://tracing-one-trace"
    app = postroom.App(url)
    seen: list[dict[str, str]] = []

    @app.handler("jobs")
    async def handle(msg: postroom.Message) -> None:
        async with postroom.connect_async(url) as client:
            await client.publish("jobs.done", msg.json())

    @app.subscriber("jobs.done", subscription="audit")
    def audit(msg: postroom.Message) -> None:  # a def handler: runs in a thread
        seen.append(dict(msg.headers))

    tracer = trace.get_tracer("test")
    with postroom.connect(url) as client, running(app, url):
        with tracer.start_as_current_span("POST /upload") as request:
            client.send("jobs", {"image": "cat.png"})
        wait_until(lambda: len(seen) == 1)
        wait_until(lambda: "process jobs.done:audit" in _by_name(spans))
    found = _by_name(spans)
    trace_id = request.get_span_context().trace_id
    names = [
        "send jobs",
        "process jobs",
        "publish jobs.done",
        "process jobs.done:audit",
    ]
    assert all(found[n].context.trace_id == trace_id for n in names), sorted(found)
    send, process = found["send jobs"], found["process jobs"]
    publish, audit_span = found["publish jobs.done"], found["process jobs.done:audit"]
    assert send.parent.span_id == request.get_span_context().span_id
    assert process.parent.span_id == send.context.span_id
    assert publish.parent.span_id == process.context.span_id
    assert audit_span.parent.span_id == publish.context.span_id
    assert (send.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    attrs = process.attributes
    assert attrs["messaging.system"] == "postroom"
    assert attrs["messaging.destination.name"] == "jobs"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.postroom.attempt"] == 1
    assert attrs["postroom.outcome"] == "acked"
    assert attrs["messaging.message.id"] == send.attributes["messaging.message.id"]
    assert seen[0]["traceparent"].split("-")[1] == f"{trace_id:032x}"


@contextmanager
def _serving(app: Any) -> Iterator[httpx.Client]:
    """``app`` served by uvicorn on a free loopback port, in a thread of this
    process (the exporter sees the server's spans); an httpx client of it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(30)


def _request_chain(
    url: str, post: Callable[[dict[str, str]], None], spans: InMemorySpanExporter
) -> dict[str, Any]:
    """Run a worker whose ``jobs`` handler publishes to ``jobs.done`` (with an
    ``audit`` subscriber); ``post`` sends the job through the HTTP API with the
    given request headers. The finished spans by name."""
    app = postroom.App(url)
    seen: list[str] = []

    @app.handler("jobs")
    async def handle(msg: postroom.Message) -> None:
        async with postroom.connect_async(url) as client:
            await client.publish("jobs.done", msg.json())

    @app.subscriber("jobs.done", subscription="audit")
    def audit(msg: postroom.Message) -> None:
        seen.append(msg.id)

    tracer = trace.get_tracer("test")
    with running(app, url):
        # What an instrumented HTTP client does: a CLIENT span, its context in
        # the request's traceparent header.
        with tracer.start_as_current_span("HTTP POST", kind=SpanKind.CLIENT):
            headers: dict[str, str] = {}
            propagate.inject(headers)
            post(headers)
        wait_until(lambda: len(seen) == 1)
        wait_until(lambda: "process jobs.done:audit" in _by_name(spans))
    return _by_name(spans)


def test_one_trace_from_an_http_request_through_the_api_to_a_subscriber(
    spans: InMemorySpanExporter,
) -> None:
    url = "memory://tracing-http-request"
    with _serving(create_app(url, push=False)) as http:

        def post(headers: dict[str, str]) -> None:
            body = {"body": {"image": "cat.png"}}
            resp = http.post("/v1/queues/jobs/messages", json=body, headers=headers)
            assert resp.status_code == 201, resp.text

        found = _request_chain(url, post, spans)
    request = found["HTTP POST"]
    chain = [
        request,
        found["send jobs"],
        found["process jobs"],
        found["publish jobs.done"],
        found["process jobs.done:audit"],
    ]
    assert {s.context.trace_id for s in chain} == {request.context.trace_id}
    for parent, child in itertools.pairwise(chain):
        assert child.parent.span_id == parent.context.span_id, child.name
    assert found["send jobs"].kind == SpanKind.PRODUCER


class _ServerSpan:
    """An ASGI middleware as OpenTelemetry's instrumentation is: a SERVER span
    that continues the request's traceparent around the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode(): v.decode() for k, v in scope["headers"]}
        with trace.get_tracer("asgi").start_as_current_span(
            f"{scope['method']} {scope['path']}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
        ):
            await self.app(scope, receive, send)


def test_an_instrumented_server_span_is_the_parent_of_the_send(
    spans: InMemorySpanExporter,
) -> None:
    url = "memory://tracing-instrumented-server"
    app = create_app(url, push=False)
    with _serving(_ServerSpan(app)) as http:

        def post(headers: dict[str, str]) -> None:
            body = {"body": {"image": "cat.png"}}
            resp = http.post("/v1/queues/jobs/messages", json=body, headers=headers)
            assert resp.status_code == 201, resp.text

        found = _request_chain(url, post, spans)
    request_span = found["POST /v1/queues/jobs/messages"]
    assert request_span.kind == SpanKind.SERVER
    client_span = found["HTTP POST"]
    assert request_span.parent.span_id == client_span.context.span_id
    assert found["send jobs"].parent.span_id == request_span.context.span_id


def test_retry_and_dead_letter_mark_the_span(spans: InMemorySpanExporter) -> None:
    url = "memory://tracing-dead-letter"
    app = postroom.App(url)

    @app.handler("jobs")
    def handle(body: dict[str, str]) -> None:
        raise ValueError("disk full")

    with postroom.connect(url) as client:
        client.declare_queue("jobs", max_attempts=2, backoff=NO_BACKOFF)
        client.send("jobs", {"n": "1"})
        with running(app, url):
            wait_until(lambda: client.stats("jobs").dead == 1)
    processed = [s for s in spans.get_finished_spans() if s.name == "process jobs"]
    first, last = sorted(
        processed, key=lambda s: s.attributes["messaging.postroom.attempt"]
    )
    assert first.attributes["postroom.outcome"] == "retried"
    assert [e.name for e in first.events] == ["retried", "exception"]
    assert first.status.status_code != StatusCode.ERROR
    assert last.attributes["postroom.outcome"] == "dead_lettered"
    assert last.status.status_code == StatusCode.ERROR
    assert "ValueError: disk full" in (last.status.description or "")
    assert first.context.trace_id == last.context.trace_id  # both continue the send


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _Hook.received.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhook_push_carries_the_push_span_traceparent(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTROOM_PUSH_ALLOW", "127.0.0.1")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received.clear()
    url = "memory://tracing-push"
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/hook"
        with postroom.connect(url) as client:
            client.create_subscription("events", "hook", push_endpoint=endpoint)
            app = postroom.App(url)
            with running(app, url, push=True):
                client.publish("events", {"n": 1})
                wait_until(lambda: len(_Hook.received) == 1)
                wait_until(lambda: "process events:hook" in _by_name(spans))
    finally:
        server.shutdown()
        server.server_close()
    push = _by_name(spans)["process events:hook"]
    _, trace_hex, span_hex, _ = _Hook.received[0]["traceparent"].split("-")
    assert trace_hex == f"{push.context.trace_id:032x}"
    assert span_hex == f"{push.context.span_id:016x}"  # the push span, not the send


def test_without_a_recording_span_headers_are_left_alone() -> None:
    assert tracing.enabled()
    assert tracing.inject(None) is None
    given = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    assert tracing.inject(given) is given


def test_without_an_sdk_a_send_makes_a_span_only_under_a_current_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No provider set: a send outside any span makes no (no-op) span; inside a
    continued remote context it still carries that context's traceparent."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    made: list[str] = []
    producer = tracing._producer
    monkeypatch.setattr(
        tracing, "_producer", lambda *a: made.append(a[1]) or producer(*a)
    )
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    with postroom.connect("memory://tracing-no-sdk") as client:
        client.send("jobs", {"n": 1})
        assert made == []
        with tracing.continued({"traceparent": parent}):
            client.send("jobs", {"n": 2})
        assert made and set(made) == {"send"}
        first, second = client.receive("jobs", max_messages=2)
    assert "traceparent" not in first.message.headers
    assert second.message.headers["traceparent"].split("-")[1] == "a" * 32


ABSENT = """
import sys
sys.modules["opentelemetry"] = None  # as if postroom[otel] were not installed
import postroom
from postroom.model import tracing

assert not tracing.enabled()
with postroom.connect("memory://no-otel") as client:
    client.send("jobs", {"n": 1}, headers={"x": "1"})
    [delivery] = client.receive("jobs")
    assert "traceparent" not in delivery.message.headers, delivery.message.headers
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry."))
assert not loaded, loaded
print("ok")
"""


def test_without_opentelemetry_nothing_is_imported_or_added() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ABSENT], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_without_an_sdk_a_handler_still_passes_the_trace_on() -> None:
    """No SDK: the consumer loop skips spans for messages without a trace, but a
    message that carries a ``traceparent`` is handled inside its trace, so what
    the handler sends carries the same trace on."""
    url = "memory://tracing-no-sdk"
    app = postroom.App(url)
    seen: list[dict[str, str]] = []

    @app.handler("jobs")
    async def handle(msg: postroom.Message) -> None:
        async with postroom.connect_async(url) as client:
            await client.send("next", msg.json())

    @app.handler("next")
    async def after(msg: postroom.Message) -> None:
        seen.append(dict(msg.headers))

    assert not tracing.recording()
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    with postroom.connect(url) as client, running(app, url):
        client.send("jobs", {"n": 1}, headers={"traceparent": parent})
        client.send("jobs", {"n": 2})
        wait_until(lambda: len(seen) == 2)
    carried = sorted(h.get("traceparent", "") for h in seen)
    assert carried[0] == ""  # no trace in, none made up
    assert carried[1].split("-")[1] == "a" * 32
