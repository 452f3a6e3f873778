"""Rate limits per API key (per client IP without one), with the IETF ``RateLimit`` headers on every response.

Counters live where ``FERRY_RATE_LIMIT_STORAGE`` says (``memory://`` for one
API process, ``redis://...`` so several share one budget), through the
well-kept ``limits`` library. Starting a run (an export or an import) also
counts against the lower ``FERRY_API_RUN_RATE_LIMIT``.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse, storage, strategies

from ferry.settings import get_settings

#: (method, path) that start runs: counted against the run budget too.
RUN_STARTS = {("POST", "/v1/exports"), ("POST", "/v1/imports")}
#: Paths under which a POST starts a run too (``/v1/runs/{id}/rollback``, ``/v1/export-jobs/{id}/run-now``).
RUN_SUFFIXES = ("/rollback", "/run-now")


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

    def check(self, who: str, method: str, path: str) -> Verdict:
        """The verdict for one request: the run budget first when it starts a run, then the default budget."""
        path = path.rstrip("/")
        if (method, path) in RUN_STARTS or (method == "POST" and path.endswith(RUN_SUFFIXES)):
            runs = self._check(self._runs, "runs", who)
            if not runs.allowed:
                return runs
        return self._check(self._default, "default", who)


def caller_identity(presented_key: str | None, client_ip: str | None) -> str:
    """Whose budget a request spends: the key's digest (never the key), else the client's address."""
    if presented_key:
        return "key:" + hashlib.sha256(presented_key.encode()).hexdigest()[:32]
    return f"ip:{client_ip or 'unknown'}"
