"""Retry policy: exponential backoff with jitter that honours the server's hint."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import grpc

from ._errors import AgentDBError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How calls are retried.

    ``max_attempts`` counts the first try (1 = no retries). The wait before attempt
    ``n`` (n >= 2) is ``initial_backoff * multiplier ** (n - 2)`` capped at
    ``max_backoff``, with +/- ``jitter`` (a fraction) of randomness; when the server sent
    a ``retry-after-ms`` hint the wait is at least that (capped at ``max_retry_after``,
    beyond which the error is raised at once so the caller can decide).

    Reads are retried on UNAVAILABLE, ABORTED and RESOURCE_EXHAUSTED from a rate limit or
    overload. Writes are retried only when the server refused them before doing
    anything: RESOURCE_EXHAUSTED with a ``retry-after-ms`` hint or an "overloaded"
    message (rate limit, admission queue full) and UNAVAILABLE (not connected, shutting
    down). A storage-quota RESOURCE_EXHAUSTED (no hint) is never retried.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.05
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_retry_after: float = 30.0

    @classmethod
    def none(cls) -> "RetryPolicy":
        return cls(max_attempts=1)

    def backoff(self, attempt: int) -> float:
        """The jittered exponential wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, attempt - 1))
        spread = base * self.jitter
        return max(0.0, base + random.uniform(-spread, spread))

    def delay(self, err: AgentDBError, attempt: int, idempotent: bool) -> Optional[float]:
        """Seconds to wait before the next attempt, or ``None`` to give up and raise."""
        if attempt >= self.max_attempts or not is_retryable(err, idempotent):
            return None
        wait = self.backoff(attempt)
        if err.retry_after is not None:
            if err.retry_after > self.max_retry_after:
                return None
            # At least the hint, plus a little jitter so clients do not stampede together.
            wait = max(wait, err.retry_after * (1.0 + random.uniform(0.0, self.jitter)))
        return wait


def _refused_before_processing(err: AgentDBError) -> bool:
    if err.code == grpc.StatusCode.UNAVAILABLE:
        return True
    if err.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return err.retry_after is not None or "overloaded" in (err.details or "")
    return False


def is_retryable(err: AgentDBError, idempotent: bool) -> bool:
    if _refused_before_processing(err):
        return True
    return idempotent and err.code == grpc.StatusCode.ABORTED
