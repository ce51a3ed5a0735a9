"""Traces (OpenTelemetry), on only when the standard `OTEL_*` variables ask for them.

On when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, or
`OTEL_TRACES_EXPORTER` names `otlp` or `console`; `OTEL_SDK_DISABLED=true` wins. Off, nothing
of tracing is built: no provider, no interceptor, no span; what would carry it holds None.

On, each process has a provider of its own (no global one: tests run several services in
one process, each with its `service.name`), with a batch processor and the OTLP/gRPC
exporter, which read the rest of the standard variables themselves (`OTEL_TRACES_SAMPLER`,
`OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_INSECURE`, `_HEADERS`, `_CERTIFICATE`, ...). The gRPC
spans are the official instrumentation's (`opentelemetry-instrumentation-grpc`); this adds
what it lacks: which calls are traced (the applications' unary methods, calls made within
a trace), the unit of work's span in its database thread, and trace ids as exemplars on the
server's latency histogram.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from prometheus_client import Histogram

from shop_common.process import ConfigError, optional

T = TypeVar("T")
C = TypeVar("C")

if TYPE_CHECKING:  # grpc-stubs make it generic; at run time it is not
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.aio.ServerInterceptor

# The SDK, the exporter and the instrumentation are imported when tracing starts: off, the
# process does not load them (a tenth of a second of its start).

EXPORTERS = frozenset({"otlp", "console"})
"""What `OTEL_TRACES_EXPORTER` may name (besides `none`): the OTLP/gRPC exporter is the
one installed; `console` prints spans, for a look without a collector."""

INSTRUMENTATION = "shop"
"""The instrumentation scope of the spans this code starts itself (HTTP, units of work,
the feed); the gRPC spans carry the official instrumentation's."""


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Whether and where spans go, read once from the environment at start."""

    exporters: tuple[str, ...] = ()
    """Empty: tracing off."""
    service_name: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)

    @classmethod
    def from_env(cls, env: Mapping[str, str], process: str) -> TracingSettings:
        """Tracing as the `OTEL_*` variables ask; `service.name` is `OTEL_SERVICE_NAME` or
        the process's name (`user_svc`, `order_svc`, `gateway`)."""
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls()
        named = optional(env, "OTEL_TRACES_EXPORTER")
        if named is None:
            endpoint = optional(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or optional(
                env, "OTEL_EXPORTER_OTLP_ENDPOINT"
            )
            exporters: tuple[str, ...] = () if endpoint is None else ("otlp",)
        else:
            exporters = tuple(dict.fromkeys(n.strip().lower() for n in named.split(",")))
            unknown = set(exporters) - EXPORTERS - {"none", ""}
            if unknown:
                raise ConfigError(
                    f"OTEL_TRACES_EXPORTER={named!r}: only otlp, console or none are supported"
                )
            exporters = tuple(n for n in exporters if n in EXPORTERS)
        if "otlp" in exporters:
            for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
                protocol = optional(env, name)
                if protocol is not None and protocol != "grpc":
                    raise ConfigError(f"{name}={protocol!r}: only grpc is supported")
                if protocol is not None:
                    break
        return cls(exporters, optional(env, "OTEL_SERVICE_NAME") or process)


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, TLS, headers, timeout: from OTEL_EXPORTER_OTLP_*


def with_exemplars(histogram: Histogram) -> Callable[[float], None]:
    """`histogram.observe`, each observation made within a sampled trace carrying its trace
    id as an exemplar (`{trace_id="…"}`, shown in the OpenMetrics format): a dashboard's
    latency panel links to a trace of that latency. Only when tracing is on."""
    observe = histogram.observe

    def observed(seconds: float) -> None:
        context = trace.get_current_span().get_span_context()
        if context.trace_flags.sampled:
            observe(seconds, {"trace_id": format(context.trace_id, "032x")})
        else:
            observe(seconds)

    return observed


def _in_a_trace(_details: object) -> bool:
    """Client calls made within a trace are traced; others (a health probe) start none."""
    return trace.get_current_span().get_span_context().is_valid


class Tracing:
    """One process's tracer provider and what it instruments."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer(INSTRUMENTATION)

    def client_interceptors(self) -> list[Any]:
        """For a channel: a CLIENT span per unary call made within a trace, its context sent
        in `traceparent`. Streams (watches, which may last hours) are not traced."""
        from opentelemetry.instrumentation.grpc import aio_client_interceptors

        interceptors = aio_client_interceptors(  # type: ignore[no-untyped-call]  # untyped
            tracer_provider=self.provider, filter_=_in_a_trace
        )
        return [i for i in interceptors if isinstance(i, grpc.aio.UnaryUnaryClientInterceptor)]

    def server_interceptor(self, methods: frozenset[str]) -> ServerInterceptor:
        """For a server: a SERVER span per call to `methods` (`/package.Service/Method`),
        child of the caller's `traceparent`. Only unary methods: the instrumentation runs a
        streaming handler as an async generator, and ours write with `context.write`."""
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        return aio_server_interceptor(  # type: ignore[no-untyped-call,no-any-return]
            tracer_provider=self.provider,
            filter_=lambda details: details.method in methods,
        )

    def unit_of_work(
        self,
        work: Callable[[C], T],
        name: str,
        attributes: Mapping[str, str],
        errors: tuple[type[BaseException], ...],
    ) -> Callable[[C], T]:
        """`work`, to be run on another thread, as a CLIENT span in the trace current here
        (at submit), whose context is current there while it runs; `work` itself when no
        trace is current (housekeeping, the feed's polling: no trace of their own). An
        exception among `errors` (the database's) sets the span's status; others (a domain
        refusal rolling the unit back) do not."""
        captured = otel_context.get_current()
        if not trace.get_current_span(captured).get_span_context().is_valid:
            return work
        tracer = self.tracer

        def traced(arg: C) -> T:
            span = tracer.start_span(name, captured, SpanKind.CLIENT, attributes)
            token = otel_context.attach(trace.set_span_in_context(span, captured))
            try:
                return work(arg)
            except errors as error:
                span.record_exception(error)
                span.set_attribute("error.type", type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
                raise
            finally:
                otel_context.detach(token)
                span.end()

        return traced

    @contextlib.contextmanager
    def root_span(self, name: str, attributes: Mapping[str, str | int]) -> Iterator[None]:
        """A span starting a trace of its own (the feed's work: no request asked for it)."""
        with self.tracer.start_as_current_span(
            name, context=otel_context.Context(), attributes=attributes
        ):
            yield

    async def shutdown(self) -> None:
        """Exports what is left and stops; off the loop (an export may wait on the network)."""
        await asyncio.to_thread(self.provider.shutdown)


def start_tracing(settings: TracingSettings) -> Tracing | None:
    """The process's tracing, or None when it is off."""
    if not settings.enabled:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(  # the sampler: OTEL_TRACES_SAMPLER, read by the SDK
        resource=Resource.create({SERVICE_NAME: settings.service_name}),
        shutdown_on_exit=False,  # the process shuts it down when it stops
    )
    for name in settings.exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    return Tracing(provider)
