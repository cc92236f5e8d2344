"""OpenTelemetry tracing, when ``opentelemetry-api`` is installed (``postroom[otel]``).

``send``, ``send_many`` and ``publish`` run in a PRODUCER span and put its W3C
trace context (``traceparent``, ``tracestate``) in the message headers; the
consumer loop runs each handler in a CONSUMER span that continues the trace of
the message (its parent is the producer span) and marks a retry or a dead
letter; a webhook push carries the context of that span. ``postroom serve``
continues the trace of an HTTP request that carries a ``traceparent`` header
(:func:`continued`), so a send through the HTTP API joins the caller's trace.
Attributes follow the
OpenTelemetry semantic conventions for messaging: ``messaging.system``
(``postroom``), ``messaging.destination.name``, ``messaging.operation.type``
and ``.name``, ``messaging.message.id``, and ``messaging.postroom.attempt``.

Without the package every function here is a no-op: nothing is imported, no span
is made and headers are left as they are. With it but no SDK configured, the
API's no-op tracer would make spans that record nothing and inject nothing: no
producer span is made then, unless a span is current (whose context it passes on).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

try:  # optional: pip install 'postroom[otel]'
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    _NO_OP_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    _PROVIDER_IN_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
except ImportError:  # pragma: no cover - exercised where the package is absent
    trace = None  # type: ignore[assignment]

__all__ = [
    "SYSTEM",
    "consumer_span",
    "continued",
    "enabled",
    "inject",
    "mark_outcome",
    "producer_span",
]

SYSTEM = "postroom"
_TRACER = "postroom"
# Without OpenTelemetry a span is this one reusable no-op context (no generator
# per message).
_NO_SPAN: AbstractContextManager[Any] = nullcontext()
_cached: tuple[Any, Any] | None = None  # (provider, its postroom tracer)


def enabled() -> bool:
    """Whether ``opentelemetry-api`` is installed."""
    return trace is not None


def recording() -> bool:
    """Whether spans can record: an SDK's ``TracerProvider`` is set (the API's
    own providers only make no-op spans, which record and inject nothing)."""
    if trace is None:
        return False
    # The provider set_tracer_provider() stored; the public getter also looks
    # for one named in the environment, which costs a lookup on every call.
    provider = getattr(trace, "_TRACER_PROVIDER", None)
    if provider is None:
        if not _PROVIDER_IN_ENV:
            return False
        provider = trace.get_tracer_provider()
    return not isinstance(provider, _NO_OP_PROVIDERS)


def _tracer() -> Any:
    """The postroom tracer of the current provider, made once per provider."""
    global _cached
    provider = trace.get_tracer_provider()
    if _cached is None or _cached[0] is not provider:
        _cached = (provider, provider.get_tracer(_TRACER))
    return _cached[1]


def _carries_trace(headers: Mapping[str, str]) -> bool:
    """Whether a consumer span has a trace to continue or record: the message
    carries one, a span is current, or an SDK records new ones."""
    return "traceparent" in headers or recording() or _span_is_current()


def _span_is_current() -> bool:
    """Whether a span with a valid context is current (one to pass on)."""
    return bool(trace.get_current_span().get_span_context().is_valid)


def inject(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """``headers`` with the current trace context added (``traceparent`` and
    ``tracestate``); as they are without OpenTelemetry, without a valid current
    span, or when they already carry a ``traceparent``."""
    if trace is None or (headers and "traceparent" in headers):
        return headers
    if not _span_is_current():  # nothing to inject: skip the propagators
        return headers
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" not in carrier:
        return headers
    return {**(headers or {}), **carrier}


def continued(carrier: Mapping[str, str]) -> AbstractContextManager[Any]:
    """Make the trace context of ``carrier`` (an incoming request's headers, with
    lowercase names) the current one, so that the spans started inside continue
    it; nothing without OpenTelemetry, without a ``traceparent``, or when a span
    is current already (a server instrumented with OpenTelemetry made its own,
    which continues the request's trace)."""
    if (
        trace is None
        or "traceparent" not in carrier
        or trace.get_current_span().get_span_context().is_valid
    ):
        return _NO_SPAN
    return _attached(carrier)


@contextmanager
def _attached(carrier: Mapping[str, str]) -> Iterator[None]:
    token = context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(token)


def _attributes(destination: str, operation: str, kind: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": destination,
        "messaging.operation.type": kind,
        "messaging.operation.name": operation,
    }


def producer_span(destination: str, operation: str) -> AbstractContextManager[Any]:
    """A PRODUCER span ``"<operation> <destination>"`` (``send`` or ``publish``)
    around storing messages; ``None`` without OpenTelemetry, or when the span
    could carry nothing: no SDK records it and no span is current."""
    if trace is None or not (_span_is_current() or recording()):
        return _NO_SPAN
    return _producer(destination, operation)


@contextmanager
def _producer(destination: str, operation: str) -> Iterator[Any]:
    attributes = _attributes(destination, operation, "send")
    with _tracer().start_as_current_span(
        f"{operation} {destination}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


def consumer_span(
    destination: str, message_id: str, attempt: int, headers: Mapping[str, str]
) -> AbstractContextManager[Any]:
    """A CONSUMER span ``"process <destination>"`` continuing the trace in the
    message's headers (a new trace when they carry none); ``None`` without
    OpenTelemetry. Exceptions are recorded by :func:`mark_outcome`, not here."""
    if trace is None or not _carries_trace(headers):
        return _NO_SPAN  # such a span could neither record nor pass a trace on
    return _consumer(destination, message_id, attempt, headers)


@contextmanager
def _consumer(
    destination: str, message_id: str, attempt: int, headers: Mapping[str, str]
) -> Iterator[Any]:
    parent = propagate.extract(dict(headers))
    attributes = _attributes(destination, "process", "process")
    attributes["messaging.message.id"] = message_id
    attributes["messaging.postroom.attempt"] = attempt
    with _tracer().start_as_current_span(
        f"process {destination}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def mark_outcome(span: Any, outcome: str, error: BaseException | None) -> None:
    """Mark a consumer span with what became of the message: ``acked``,
    ``retried``, ``rejected`` or ``dead_lettered`` (``postroom.outcome`` and an
    event); a failure records its exception, and a dead letter or rejection sets
    the status to ERROR."""
    if span is None or trace is None:
        return
    span.set_attribute("postroom.outcome", outcome)
    if outcome == "acked":
        return
    span.add_event(outcome)
    if isinstance(error, BaseException):
        span.record_exception(error)
    if outcome in ("dead_lettered", "rejected"):
        detail = f"{type(error).__name__}: {error}" if error is not None else outcome
        span.set_status(Status(StatusCode.ERROR, f"{outcome}: {detail}"))
