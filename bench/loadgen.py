"""The load tools: builds wrk and ab command lines, runs them bounded in time, parses their reports.

Parsing is pure (text in, a Result out) so it is unit-tested on captured outputs; running is a subprocess
with a timeout. A Result holds requests/s, bytes/s, p99 latency (seconds), failures and the command used,
and, once the bench has read the server's CPU time around the run, the CPU time per request.
"""

import re
import subprocess
from dataclasses import dataclass, field

TOOL_GRACE = 60.0  # seconds a tool may run past its nominal duration before it is killed
WRK_THREADS = 1
UNIT_BYTES = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}
UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ToolFailed(Exception):
    """A load tool exited badly or printed a report we cannot read."""


@dataclass
class Result:
    command: str
    requests_per_s: float
    bytes_per_s: float
    p99_s: float | None
    requests: int
    failed: int  # ab: failed requests; wrk: socket errors + non-2xx/3xx responses
    error_statuses: int = field(default=0, kw_only=True)  # the non-2xx/3xx responses counted in `failed`
    cpu_per_request_s: float | None = field(default=None, kw_only=True)  # the server's, set by bench.run


# ------------------------------------------------------------------ command lines

def wrk_command(url, connections, duration_s):
    return ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration_s}s", "--latency", url]


def ab_command(url, requests, concurrency, protocol=None):
    """ab's command line; `protocol` (e.g. "TLS1.3") is the TLS version of its https:// connections (-f)."""
    return ["ab", "-n", str(requests), "-c", str(concurrency), "-r", *(["-f", protocol] if protocol else []), url]


# ------------------------------------------------------------------ parsing

def parse_wrk(text, command=""):
    """wrk's report (with --latency) -> Result."""
    rps = search_float(r"^Requests/sec:\s+([\d.]+)", text)
    transfer = re.search(r"^Transfer/sec:\s+([\d.]+)([KMGT]?B)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if rps is None or transfer is None or total is None:
        raise ToolFailed(f"unreadable wrk report:\n{text}")
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    error_statuses = int(non_2xx.group(1)) if non_2xx else 0
    failed = (sum(map(int, errors.groups())) if errors else 0) + error_statuses
    return Result(command=command, requests_per_s=rps,
                  bytes_per_s=float(transfer.group(1)) * UNIT_BYTES[transfer.group(2)],
                  p99_s=float(p99.group(1)) * UNIT_SECONDS[p99.group(2)] if p99 else None,
                  requests=int(total.group(1)), failed=failed, error_statuses=error_statuses)


def parse_ab(text, command=""):
    """ab's report -> Result (transfer rate is in kilobytes of 1024 bytes per second)."""
    rps = search_float(r"^Requests per second:\s+([\d.]+)", text)
    rate = search_float(r"^Transfer rate:\s+([\d.]+) \[Kbytes/sec\]", text)
    complete = search_float(r"^Complete requests:\s+(\d+)", text)
    if rps is None or rate is None or complete is None:
        raise ToolFailed(f"unreadable ab report:\n{text}")
    failed = search_float(r"^Failed requests:\s+(\d+)", text) or 0
    non_2xx = search_float(r"^Non-2xx responses:\s+(\d+)", text) or 0
    p99_ms = search_float(r"^\s+99%\s+(\d+)", text)
    return Result(command=command, requests_per_s=rps, bytes_per_s=rate * 1024,
                  p99_s=p99_ms / 1000 if p99_ms is not None else None,
                  requests=int(complete), failed=int(failed + non_2xx), error_statuses=int(non_2xx))


def search_float(pattern, text):
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else None


# ------------------------------------------------------------------ running

def run_tool(argv, parse, timeout_s):
    """Run one load tool to completion (killed after timeout_s) and parse its report."""
    command = " ".join(argv)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{command}: still running after {timeout_s:.0f}s, killed") from None
    if done.returncode != 0:
        raise ToolFailed(f"{command}: exit status {done.returncode}\n{done.stdout}{done.stderr}")
    return parse(done.stdout, command)


def run_wrk(url, connections, duration_s):
    return run_tool(wrk_command(url, connections, duration_s), parse_wrk, duration_s + TOOL_GRACE)


def run_ab(url, requests, concurrency, timeout_s, protocol=None):
    return run_tool(ab_command(url, requests, concurrency, protocol), parse_ab, timeout_s)
