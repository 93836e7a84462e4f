"""What telephony meets when llm or memory cannot do what it asked, as Aura's own errors:
nothing outside the gRPC clients sees gRPC."""

from __future__ import annotations

from aura_telephony.budget import BudgetExhaustedError


class ServiceError(Exception):
    """llm or memory failed a call. `code` is the gRPC status's name (UNAVAILABLE,
    DEADLINE_EXCEEDED, NOT_FOUND, ...), `details` what the service said."""

    def __init__(self, service: str, code: str, details: str) -> None:
        super().__init__(f"{service}: {code}: {details}")
        self.service = service
        self.code = code
        self.details = details


# Everything that means "no answer from downstream this turn".
DownstreamError = (ServiceError, BudgetExhaustedError, TimeoutError)


def describe(error: BaseException) -> str:
    if isinstance(error, ServiceError):
        return f"{error.code}: {error.details}"
    return "turn budget exhausted"


def is_late(error: BaseException) -> bool:
    """Whether a failure was the turn running out of time (the caller hears the holding
    line) rather than a service failing (an apology)."""
    return not isinstance(error, ServiceError) or error.code == "DEADLINE_EXCEEDED"
