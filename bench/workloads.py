"""What `make bench` measures: the workloads of issues 7 and 13, the TLS ones of issue 15, their goals, and the
durations that fit the budget.

A Workload knows its URL path, its tool and the metric its throughput goal is about (if it has one); every
workload also has a CPU goal (issue 13's, or issue 15's for TLS). Settings say how long each run lasts (full or BENCH_QUICK=1, every
knob overridable from the environment). Nothing here starts a process.
"""

import os
from dataclasses import dataclass, replace

from bench import loadgen

CONCURRENCY = 100
SMALL_PAGE = "/httptest/dir2/page.html"  # 38 bytes
SMALL_INDEX = "/httptest/dir2/"  # 34 bytes, through the index file
LARGE_PAGE = "/httptest/wikipedia_russia.html"  # ~1 MB
MISSING_PAGE = "/httptest/dir2/no-such-page.html"  # answered 404
ISSUE_AB_REQUESTS = 50000  # the issue's `ab -n 50000 -c 100 -r`
AB_TIMEOUT_FLOOR = 120.0  # seconds an ab run may take at least before it is killed
AB_SLOWEST_RATE = 200.0  # requests/s below which an ab run is considered stuck (sets its timeout)
CPU_GOAL = 1.0  # OServer's CPU time per request may be at most this times nginx's, on every workload (issue 13)
TLS_HANDSHAKE_CONCURRENCY = 20  # issue 15's `ab -f TLS1.3 -c 20`
TLS_AB_PROTOCOL = "TLS1.3"


@dataclass(frozen=True)
class Settings:
    rounds: int
    wrk_seconds: int
    warmup_seconds: int
    ab_small_requests: int
    ab_large_requests: int
    tls_handshakes: int
    quick: bool

    @classmethod
    def from_environment(cls, env=os.environ):
        quick = env.get("BENCH_QUICK", "") not in ("", "0")
        defaults = QUICK_DEFAULTS if quick else FULL_DEFAULTS
        knobs = {name: int(env.get("BENCH_" + name.upper(), default)) for name, default in defaults.items()}
        return cls(quick=quick, **knobs)


# About 5 minutes on a 2-core machine, leaving room under the 10-minute budget for a slower or busier one.
FULL_DEFAULTS = {"rounds": 3, "wrk_seconds": 5, "warmup_seconds": 2, "ab_small_requests": ISSUE_AB_REQUESTS,
                 "ab_large_requests": 10000, "tls_handshakes": 5000}
QUICK_DEFAULTS = {"rounds": 1, "wrk_seconds": 2, "warmup_seconds": 1, "ab_small_requests": 3000,
                  "ab_large_requests": 500, "tls_handshakes": 1000}


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    tool: str  # "wrk" (keep-alive) or "ab" (a new connection per request)
    path: str
    metric: str  # the Result field the throughput goal is about: requests_per_s or bytes_per_s
    goal: float | None  # the least OServer/nginx ratio of that metric; None: no throughput goal
    answers_404: bool = False  # a 404 is the right answer, and a 2xx/3xx one a failure
    cpu_goal: float = CPU_GOAL
    tls: bool = False  # measured on the servers' TLS ports (https://), ab with -f TLS1.3
    concurrency: int = CONCURRENCY

    def command(self, url, settings):
        if self.tool == "wrk":
            return loadgen.wrk_command(url, self.concurrency, settings.wrk_seconds)
        return loadgen.ab_command(url, self.ab_requests(settings), self.concurrency, self.ab_protocol)

    @property
    def ab_protocol(self):
        return TLS_AB_PROTOCOL if self.tls else None

    def ab_requests(self, settings):
        if self.tls:
            return settings.tls_handshakes
        return settings.ab_large_requests if self.path == LARGE_PAGE else settings.ab_small_requests

    def measure(self, url, settings):
        if self.tool == "wrk":
            result = loadgen.run_wrk(url, self.concurrency, settings.wrk_seconds)
        else:
            requests = self.ab_requests(settings)
            result = loadgen.run_ab(url, requests, self.concurrency, ab_timeout(requests), self.ab_protocol)
        return expecting_error_statuses(result) if self.answers_404 else result

    def measure_issue_command(self, url):
        """The issue's exact ab command, whatever the settings (make bench-ab-full)."""
        return loadgen.run_ab(url, ISSUE_AB_REQUESTS, CONCURRENCY, ab_timeout(ISSUE_AB_REQUESTS))


def ab_timeout(requests):
    return max(AB_TIMEOUT_FLOOR, requests / AB_SLOWEST_RATE)


def expecting_error_statuses(result):
    """The Result of a run whose right answer is an error status (a 404): its failures are the connection
    errors and the answers that were not an error status (wrk and ab tell 2xx/3xx from the rest, not 404)."""
    connection_errors = result.failed - result.error_statuses
    return replace(result, failed=connection_errors + result.requests - result.error_statuses)


SMALL_KEEPALIVE = Workload("small-ka", "38-byte page, keep-alive (wrk)", "wrk", SMALL_PAGE, "requests_per_s", 0.6)
MISSING_KEEPALIVE = Workload("404-ka", "404 (missing page), keep-alive (wrk)", "wrk", MISSING_PAGE, "requests_per_s",
                             None, answers_404=True)
SMALL_CLOSE = Workload("small-close", "34-byte index, no keep-alive (ab)", "ab", SMALL_INDEX, "requests_per_s", 0.6)
LARGE_CLOSE = Workload("large-close", "~1 MB page, no keep-alive (ab)", "ab", LARGE_PAGE, "requests_per_s", 0.9)
LARGE_KEEPALIVE = Workload("large-ka", "~1 MB page, keep-alive (wrk)", "wrk", LARGE_PAGE, "bytes_per_s", 0.9)
WORKLOADS = (SMALL_KEEPALIVE, MISSING_KEEPALIVE, SMALL_CLOSE, LARGE_CLOSE, LARGE_KEEPALIVE)
AB_WORKLOADS = (SMALL_CLOSE, LARGE_CLOSE)
P99_GOAL = 2.0  # OServer's p99 latency of the small keep-alive run may be at most this times nginx's
# Issue 15: the same certificate (ECDSA P-256) on both, 2 workers each; >= 0.8 of nginx's throughput and at most
# 1.25x its CPU time per request on each.
TLS_GOAL = 0.8
TLS_CPU_GOAL = 1.25
TLS_SMALL_KEEPALIVE = Workload("tls-small-ka", "38-byte page over TLS, keep-alive (wrk)", "wrk", SMALL_PAGE,
                               "requests_per_s", TLS_GOAL, cpu_goal=TLS_CPU_GOAL, tls=True)
TLS_LARGE_KEEPALIVE = Workload("tls-large-ka", "~1 MB page over TLS, keep-alive (wrk)", "wrk", LARGE_PAGE,
                               "bytes_per_s", TLS_GOAL, cpu_goal=TLS_CPU_GOAL, tls=True)
TLS_HANDSHAKES = Workload("tls-handshakes", "new TLS 1.3 connection per request, 34-byte index (ab -f TLS1.3)",
                          "ab", SMALL_INDEX, "requests_per_s", TLS_GOAL, cpu_goal=TLS_CPU_GOAL, tls=True,
                          concurrency=TLS_HANDSHAKE_CONCURRENCY)
TLS_WORKLOADS = (TLS_SMALL_KEEPALIVE, TLS_LARGE_KEEPALIVE, TLS_HANDSHAKES)
BASELINE_LOSS = 0.03  # against an older checkout, no workload may lose more than this share (issue 13)
