"""Rate limits per API key (per client IP without one), with the IETF ``RateLimit`` headers on every response.

Counters live where ``FERRY_RATE_LIMIT_STORAGE`` says (``memory://`` for one
API process, ``redis://...`` so several share one budget), through the
well-kept ``limits`` library. A route that starts a run (an export, an
import, a rollback, a job run, natively or through an adapter) declares
``dependencies=[STARTS_RUN]`` and so also counts against the lower
``FERRY_API_RUN_RATE_LIMIT``.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from fastapi import Depends, Request
from limits import RateLimitItem, parse, storage, strategies

from api.auth import presented_key
from ferry.errors import RateLimitedError
from ferry.settings import get_settings


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    policy: str
    limit: int
    window: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window}',
            "RateLimit": f'"{self.policy}";r={self.remaining};t={self.reset}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset))
        return headers


class RateLimiter:
    def __init__(self) -> None:
        settings = get_settings()
        self._limiter = strategies.MovingWindowRateLimiter(storage.storage_from_string(settings.rate_limit_storage))
        self._default = parse(settings.api_rate_limit)
        self._runs = parse(settings.api_run_rate_limit)

    def _check(self, item: RateLimitItem, policy: str, who: str) -> Verdict:
        allowed = self._limiter.hit(item, policy, who)
        stats = self._limiter.get_window_stats(item, policy, who)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, policy, item.amount, item.get_expiry(), max(0, stats.remaining), reset)

    def check(self, who: str) -> Verdict:
        """The default budget's verdict for one request (the middleware asks for every request)."""
        return self._check(self._default, "default", who)

    def check_runs(self, who: str) -> Verdict:
        """The run budget's verdict for a request that starts a run."""
        return self._check(self._runs, "runs", who)


def run_budget(request: Request) -> None:
    """A route dependency: the request starts a run, so it spends the run budget too (429 when it is spent)."""
    limiter: RateLimiter = request.app.state.limiter
    verdict = limiter.check_runs(caller_identity(presented_key(request), request.client.host if request.client else None))
    if not verdict.allowed:
        error = RateLimitedError(f"Rate limit 'runs' reached; try again in {verdict.reset} s.", "Start fewer runs, or wait.")
        error.headers = verdict.headers()
        raise error


STARTS_RUN = Depends(run_budget)


def caller_identity(presented_key: str | None, client_ip: str | None) -> str:
    """Whose budget a request spends: the key's digest (never the key), else the client's address."""
    if presented_key:
        return "key:" + hashlib.sha256(presented_key.encode()).hexdigest()[:32]
    return f"ip:{client_ip or 'unknown'}"
