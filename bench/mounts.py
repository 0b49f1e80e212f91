"""`make bench-mounts`: how a CPU-bound and an I/O-bound mounted handler scale with the number of workers.

Starts OServer with 1, 2 and 4 workers side by side, each mounting conf/examples/cpu_bound.py at /cpu and
io_bound.py at /io, loads both paths of every server with wrk, interleaved over a few rounds, then prints and
writes bench/mounts.md (median requests/s, speedup over one worker). Loopback only, about a minute; every
server it started is stopped, even on Ctrl-C or an error.
"""

import json
import os
import re
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, replace

from bench import cputime, entry, loadgen, report, servers

WORKER_COUNTS = (1, 2, 4)
CONNECTIONS = 16  # enough for four workers to each hold several requests waiting on I/O
ROUNDS = 3
RUN_SECONDS = 3  # one wrk run
WARMUP_SECONDS = 1
BUDGET_S = 120  # the whole run must stay well under two minutes
IO_WAIT_MS = 20
MS_PER_SECOND = 1000
CPU_PATH = "/cpu"  # cpu_bound's default loop size
IO_PATH = f"/io?ms={IO_WAIT_MS}"
PATHS = {"cpu": CPU_PATH, "io": IO_PATH}
CPU_SAMPLES = 5  # sequential /cpu requests whose self-reported time gives the CPU cost of one request
STATUS_PATH = "/oserver-mounts-status"
STATUS_PROBE_CONNECTIONS = 1  # the status request's own connection may be counted in the figures it reads
EXAMPLES_DIR = os.path.join(servers.REPO, "conf", "examples")
MOUNTS = ("/cpu=cpu_bound:handle", "/io=io_bound:handle")
ROOT = os.path.join(servers.WORK_DIR, "mounts-www")  # empty: only the mounts are served
RESULTS_MD = os.path.join(servers.BENCH_DIR, "mounts.md")
CPU_MS = re.compile(rb" ([\d.]+) ms CPU")
LEVEL_TOLERANCE = 0.15  # speedups within 15% of each other count as level
SCALING_SHARE = 0.8  # a speedup of at least 80% of the worker ratio counts as scaling with the workers


# ------------------------------------------------------------------ servers

def mount_flags():
    flags = ["--python-path", EXAMPLES_DIR, "--status-path", STATUS_PATH]
    for mount in MOUNTS:
        flags += ["--mount", mount]
    return flags


def mounted_server(workers):
    base = servers.oserver(ROOT, servers.WORK_DIR, workers=workers)
    return replace(base, name=f"OServer -w {workers}", argv=base.argv + mount_flags(),
                   log_path=os.path.join(servers.WORK_DIR, f"mounts-{workers}w.log"))


def server_status(server):
    """The server totals of the status page: workers, active and idle connections, ..."""
    with urllib.request.urlopen(server.url(STATUS_PATH), timeout=servers.PROBE_TIMEOUT) as reply:
        return json.load(reply)["server"]


def wait_until(condition, failure, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{failure} within {timeout:.0f}s")
        time.sleep(servers.POLL_INTERVAL)


def wait_for_workers(server, workers):
    """Until every worker accepts (each shows on the status page once it does), so no run starts short-handed."""
    wait_until(lambda: server_status(server)["workers"] >= workers,
               f"{server.name}: not all workers came up (see {server.log_path})", servers.START_TIMEOUT)


def wait_until_idle(server):
    """Until the server holds no client connection but the status request's own: the requests a finished wrk
    run left queued in a worker (up to CONNECTIONS handler calls) must not run into the next measurement."""
    def idle():
        status = server_status(server)
        return status["active"] + status["idle"] <= STATUS_PROBE_CONNECTIONS
    wait_until(idle, f"{server.name}: the requests of the last run did not finish", servers.STOP_TIMEOUT)


def start_servers(fleet):
    """{workers: a ready server with that many workers}."""
    started = {}
    for workers in WORKER_COUNTS:
        server = fleet.start(mounted_server(workers), IO_PATH)
        wait_for_workers(server, workers)
        started[workers] = server
    return started


# ------------------------------------------------------------------ measuring

@dataclass
class Measured(loadgen.Result):
    """A wrk run's Result and the CPU its server's workers used meanwhile, in cores (CPU seconds per second)."""

    cores_busy: float


def cpu_request_ms(server):
    """The median CPU time one /cpu request costs, as the handler reports it in its answer."""
    wait_until_idle(server)
    times = []
    for _ in range(CPU_SAMPLES):
        with urllib.request.urlopen(server.url(CPU_PATH), timeout=servers.PROBE_TIMEOUT) as reply:
            times.append(parse_cpu_ms(reply.read()))
    return statistics.median(times)


def parse_cpu_ms(body):
    match = CPU_MS.search(body)
    if match is None:
        raise RuntimeError(f"no CPU time in the /cpu answer: {body[:80]!r}")
    return float(match.group(1))


def workers_cpu_seconds(server):
    """User + system CPU seconds used so far by the master's children, its workers."""
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as f:
        return sum(cputime.process_seconds(int(pid)) for pid in f.read().split())


def run_wrk(url, seconds):
    """One keep-alive wrk run (a server with mounts shares the connections one for one between its workers)."""
    argv = loadgen.wrk_command(url, CONNECTIONS, seconds)
    return loadgen.run_tool(argv, loadgen.parse_wrk, seconds + loadgen.TOOL_GRACE)


def warm_up(started):
    for server in started.values():
        for path in PATHS.values():
            run_wrk(server.url(path), WARMUP_SECONDS)


def measure_rounds(started, rounds, seconds):
    """{workers: {"cpu"|"io": [Measured or None per round]}}; each round visits every server and path in turn."""
    table = {workers: {kind: [] for kind in PATHS} for workers in started}
    for round_no in range(1, rounds + 1):
        for workers, server in started.items():
            for kind, path in PATHS.items():
                table[workers][kind].append(measure_once(server, path, seconds, f"round {round_no}/{rounds}"))
    return table


def measure_once(server, path, seconds, label):
    wait_until_idle(server)
    cpu_before, started = workers_cpu_seconds(server), time.monotonic()
    try:
        result = run_wrk(server.url(path), seconds)
    except loadgen.ToolFailed as e:
        print(f"  {label} {server.name:12} {path:10} FAILED: {e}", flush=True)
        return None  # keeps the rounds aligned
    cores = (workers_cpu_seconds(server) - cpu_before) / (time.monotonic() - started)
    print(f"  {label} {server.name:12} {path:10} {result.requests_per_s:8.1f} req/s  workers' CPU {cores:.2f} "
          f"cores  failed {result.failed}", flush=True)
    return Measured(**vars(result), cores_busy=cores)


# ------------------------------------------------------------------ the report (pure)

def medians(table, kind, metric="requests_per_s"):
    """{workers: the median of a metric over the rounds of that path}, None where no round measured it."""
    return {workers: report.median(row[kind], metric) for workers, row in table.items()}


def speedups(values):
    """{workers: value / the one-worker value}, None where either is missing."""
    base = values.get(min(values))
    return {workers: value / base if value and base else None for workers, value in values.items()}


def format_speedup(value):
    return "n/a" if value is None else f"{value:.2f}x"


def format_cores(value):
    return "n/a" if value is None else f"{value:.2f}"


def results_table(table):
    gains = {kind: speedups(medians(table, kind)) for kind in PATHS}
    busy = {kind: medians(table, kind, "cores_busy") for kind in PATHS}
    header = "".join(f" `{path}` req/s | speedup | workers' CPU, cores |" for path in PATHS.values())
    lines = [f"| workers |{header}", "|---:" * (1 + 3 * len(PATHS)) + "|"]
    for workers, row in table.items():
        cells = "".join(f" {report.format_cell(row[kind], 'requests_per_s')} | {format_speedup(gains[kind][workers])} "
                        f"| {format_cores(busy[kind][workers])} |" for kind in PATHS)
        lines.append(f"| {workers} |{cells}")
    return lines


def cpu_finding(table, cores, cpu_ms):
    """What the /cpu figures show about the core count, in words, with the figures."""
    gains, busy, most = speedups(medians(table, "cpu")), medians(table, "cpu", "cores_busy"), max(table)
    at_cores, top = gains.get(cores), gains[most]
    text = (f"A `{CPU_PATH}` request costs {cpu_ms:.1f} ms of CPU, so one worker answers at most about "
            f"{MS_PER_SECOND / cpu_ms:.0f} requests/s and each further worker needs a core of its own. Measured: "
            f"{format_speedup(at_cores)} with {cores} workers (the core count), the workers using "
            f"{format_cores(busy.get(cores))} cores; {format_speedup(top)} with {most}, using "
            f"{format_cores(busy[most])}. ")
    if at_cores is None or top is None or most <= cores:
        return text
    if abs(top - at_cores) <= LEVEL_TOLERANCE * at_cores:
        return text + (f"Past {cores} workers the throughput stayed level: the cores were all busy, and further "
                       "workers only queued for them.")
    return text + (f"It did not stay level past {cores} workers on this run: other work on the machine changes "
                   "what the cores can give; rerun it on a quiet machine.")


def io_finding(table, cores):
    """What the /io figures show about adding workers, in words, with the figures."""
    gains, busy, most = speedups(medians(table, "io")), medians(table, "io", "cores_busy"), max(table)
    text = (f"A `{IO_PATH}` request sleeps {IO_WAIT_MS} ms, as if waiting for a database; a sleeping worker uses no "
            f"CPU but serves nobody else meanwhile, so each worker adds up to {MS_PER_SECOND / IO_WAIT_MS:.0f} "
            f"requests/s. Measured: {format_speedup(gains[most])} with {most} workers, the workers using "
            f"{format_cores(busy[most])} cores. ")
    if gains[most] is None:
        return text
    if gains[most] >= SCALING_SHARE * most / min(table):
        beyond = f", past the {cores} cores," if most > cores else ""
        return text + f"It scaled with the number of workers{beyond} because waiting is not computing."
    return text + f"It fell short of {most / min(table):.0f}x on this run."


def failures_line(table):
    failed = sum(report.failures(results) for row in table.values() for results in row.values())
    missing = sum(results.count(None) for row in table.values() for results in row.values())
    return f"Errors over all runs: {failed} failed requests, {missing} wrk runs that did not complete."


@dataclass(frozen=True)
class Run:
    """One run's measurements and the circumstances they were taken in."""

    table: dict  # {workers: {"cpu"|"io": [Measured or None per round]}}
    machine: dict  # report.machine_info()
    load: tuple  # 1-minute load average at the start and at the end
    cpu_ms: float  # CPU time of one /cpu request, as the handler reports it
    elapsed_s: float
    revision: str  # the OServer commit measured
    rounds: int
    seconds: int  # per wrk run


def markdown(run):
    table, machine, load, seconds = run.table, run.machine, run.load, run.seconds
    return "\n".join([
        "# Mounted handlers: CPU-bound vs I/O-bound, 1 to 4 workers", "",
        f"Generated by `make bench-mounts` on {machine['date']} ({run.elapsed_s:.0f} s in all).", "",
        f"- Machine: {machine['cpu']}, **{machine['cores']} cores**, {machine['kernel']}; load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end; {machine['wrk']}",
        f"- OServer ({run.revision}): `httpd.py -w N --python-path conf/examples --mount {MOUNTS[0]} "
        f"--mount {MOUNTS[1]}`, N = {', '.join(map(str, table))}, all {len(table)} running side by side on loopback.",
        f"- Load: `wrk -t{loadgen.WRK_THREADS} -c{CONNECTIONS} -d{seconds}s` (keep-alive connections, which a server "
        f"with mounts shares one for one between its workers), {run.rounds} rounds, each round "
        f"visiting every server and path in turn after a {WARMUP_SECONDS} s warm-up. Each req/s cell is the median "
        "over the rounds, (min-max) beside it; speedup is that median over the one-worker median; workers' CPU is "
        "the CPU seconds all the server's workers used per second of a run (from /proc), median over the rounds.",
        "",
        *results_table(table), "",
        cpu_finding(table, machine["cores"], run.cpu_ms), "",
        io_finding(table, machine["cores"]), "",
        failures_line(table), ""])


# ------------------------------------------------------------------ main

def run_bench(rounds, seconds):
    started_at = time.monotonic()
    load_at_start = os.getloadavg()[0]
    os.makedirs(ROOT, exist_ok=True)
    with servers.Fleet() as fleet:
        started = start_servers(fleet)
        warm_up(started)
        cpu_ms = cpu_request_ms(started[min(started)])
        table = measure_rounds(started, rounds, seconds)
    elapsed = time.monotonic() - started_at
    text = markdown(Run(table, report.machine_info(), (load_at_start, os.getloadavg()[0]), cpu_ms, elapsed,
                        servers.oserver_revision(), rounds, seconds))
    entry.write_report(RESULTS_MD, text, elapsed, BUDGET_S)


def main(argv=None):
    return entry.main("bench-mounts", __doc__, run_bench, ROUNDS, RUN_SECONDS, argv)


if __name__ == "__main__":
    sys.exit(main())
