"""OpenTelemetry tracing, configured by the standard OTEL_* variables.

Tracing is on only when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); otherwise the API's no-op tracer stays in place and
spans cost next to nothing. OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER(_ARG),
OTEL_RESOURCE_ATTRIBUTES and the exporter's own variables are read by the SDK itself."""

from __future__ import annotations

import logging
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_enabled() -> bool:
    return any(os.environ.get(name) for name in _ENDPOINT_VARIABLES) and (
        os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true"
    )


def setup_tracing(service: str, version: str) -> TracerProvider | None:
    """Install an OTLP-exporting tracer provider when an endpoint is configured."""
    if not tracing_enabled():
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    name = os.environ.get("OTEL_SERVICE_NAME") or service
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create({SERVICE_NAME: name, SERVICE_VERSION: version})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info(
        "tracing to %s as %s",
        next(os.environ[v] for v in _ENDPOINT_VARIABLES if os.environ.get(v)),
        name,
    )
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Flush the spans still queued; called on graceful shutdown."""
    if provider is not None:
        provider.shutdown()
