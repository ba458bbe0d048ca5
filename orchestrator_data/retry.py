"""Bounded retries with exponential backoff for transient connection errors (tenacity)."""

from __future__ import annotations

import logging

from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential_jitter

log = logging.getLogger("orchestrator_data.retry")


def transient_retrying(is_transient, attempts: int = 4, initial: float = 0.2, maximum: float = 3.0) -> Retrying:
    """A tenacity loop retrying only what `is_transient(exc)` accepts, `attempts` times at most."""
    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=initial, max=maximum),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
