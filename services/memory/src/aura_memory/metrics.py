"""The memory service's own metrics (gRPC RED metrics come from aura_common)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
LIVE_CALLS = Gauge(
    "aura_active_calls",
    "Live calls, as the conversation store knows them (opened or written within the TTL "
    "and not ended). Every replica on a shared store reports the same count: take the max.",
)
CALLS_EXPIRED = Counter(
    "aura_memory_calls_expired",
    "Calls that never got a final status callback, archived as ended with status unknown "
    "when their conversation expired.",
)
TRANSCRIPTS_EVICTED = Counter(
    "aura_memory_transcripts_evicted",
    "Ended transcripts the in-memory store dropped, oldest first, to stay within "
    "MAX_TRANSCRIPTS (durable transcripts need Redis).",
)
