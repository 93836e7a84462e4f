"""The memory service's own metrics (gRPC RED metrics come from aura_common)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from aura_common.metrics import LATENCY_BUCKETS

STORE_OPERATIONS = Counter(
    "aura_memory_store_operations",
    "Store operations, by store, operation and outcome (ok, unavailable, error).",
    ["store", "operation", "outcome"],
)
STORE_SECONDS = Histogram(
    "aura_memory_store_operation_seconds",
    "Time one store operation took.",
    ["store", "operation"],
    buckets=LATENCY_BUCKETS,
)
