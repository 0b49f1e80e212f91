"""`make bench-apps`: mounted WSGI apps in OServer (inline and on a thread pool) beside granian and gunicorn.

Every server runs the same code, bench/wsgi_apps.py (/hello answers at once, /io waits 20 ms first), with 2
workers; wrk loads each server and path in turn, interleaved over a few rounds, reading each server's CPU time
around every run. Each round also takes the static page's p99 on OServer --threads 32 alone and while wrk holds
/io busy. A second phase does the same with a Flask app's hello route (bench/flask_hello.py). Writes and prints
bench/apps.md. Loopback only, under five minutes; every process it started is stopped, even on Ctrl-C or an error.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace

from bench import cputime, entry, loadgen, mounts, report, servers

WORKERS = servers.WORKERS  # 2 for every server
OSERVER_THREADS = 32
GUNICORN_THREADS = 8
CONNECTIONS = 50
STATIC_CONNECTIONS = 4
ROUNDS = 3
RUN_SECONDS = 4  # one wrk run
WARMUP_SECONDS = 1
LOAD_LEAD_S = 1  # the /io load starts this long before the static run and ends this long after it
BUDGET_S = 300  # the whole run must stay under five minutes
IO_GOAL = 0.95  # OServer --threads 32 /io req/s at least this times granian's
HELLO_GOAL = 1.0  # the moonshot: OServer --threads 32 /hello req/s at least granian's
STATIC_P99_GOAL = 2.0  # the static page's p99 under /io load at most this times its p99 alone

HELLO, IO = "/hello", "/io"
STATIC_PAGE = "/page.html"
WSGI_PATHS = {"hello": HELLO, "io": IO}
FLASK_PATHS = {"flask": HELLO}
WSGI_APP = "wsgi_apps:app"
FLASK_APP = "flask_hello:app"
OSERVER_WSGI_MOUNTS = (f"{HELLO}={WSGI_APP}", f"{IO}={WSGI_APP}")  # the root serves the static page beside them
OSERVER_FLASK_MOUNTS = (f"/={FLASK_APP}",)
STATIC_SOURCE = os.path.join(servers.FIXTURES, "dir2", "page.html")  # 38 bytes
ROOT = os.path.join(servers.WORK_DIR, "apps-www")
RESULTS_MD = os.path.join(servers.BENCH_DIR, "apps.md")
WRK_TIMEOUTS = re.compile(r"Socket errors: connect \d+, read \d+, write \d+, timeout (\d+)")

INLINE = "OServer inline"
THREADED = f"OServer --threads {OSERVER_THREADS}"
GRANIAN = "granian"
GTHREAD = "gunicorn gthread"
SYNC = "gunicorn sync"
STATIC_KEY = "static"
ALONE = "static page alone"
UNDER_LOAD = "static page during the /io load"


# ------------------------------------------------------------------ servers

def oserver_app(name, threads, mounted, log_suffix):
    """OServer with 2 workers, `threads` per worker, the modules of bench/ mounted, and a status page to wait on."""
    base = servers.oserver(ROOT, servers.WORK_DIR, workers=WORKERS, name=name)
    flags = ["--threads", str(threads), "--python-path", servers.BENCH_DIR, "--status-path", mounts.STATUS_PATH]
    for mount in mounted:
        flags += ["--mount", mount]
    return replace(base, argv=base.argv + flags, log_path=log_file(name, log_suffix))


def granian(venv_bin, app, log_suffix):
    """granian's WSGI interface with 2 workers and its defaults otherwise (blocking and runtime threads)."""
    port = servers.free_port()
    argv = [os.path.join(venv_bin, "granian"), "--interface", "wsgi", "--workers", str(WORKERS),
            "--host", servers.HOST, "--port", str(port), "--working-dir", servers.BENCH_DIR, app]
    return servers.ServerProcess(GRANIAN, argv, port, log_file(GRANIAN, log_suffix))


def gunicorn(venv_bin, name, worker_class, app, log_suffix):
    port = servers.free_port()
    argv = [os.path.join(venv_bin, "gunicorn"), "--worker-class", worker_class, "--workers", str(WORKERS)]
    if worker_class == "gthread":
        argv += ["--threads", str(GUNICORN_THREADS)]
    argv += ["--bind", f"{servers.HOST}:{port}", "--chdir", servers.BENCH_DIR, app]
    # SIGINT is gunicorn's quick shutdown; SIGTERM would wait its graceful_timeout
    return servers.ServerProcess(name, argv, port, log_file(name, log_suffix), stop_signal=signal.SIGINT)


def log_file(name, suffix):
    return os.path.join(servers.WORK_DIR, f"apps-{suffix}-{servers.file_name(name)}.log")


def wsgi_servers(venv_bin):
    return [oserver_app(INLINE, 1, OSERVER_WSGI_MOUNTS, "wsgi"),
            oserver_app(THREADED, OSERVER_THREADS, OSERVER_WSGI_MOUNTS, "wsgi"),
            granian(venv_bin, WSGI_APP, "wsgi"),
            gunicorn(venv_bin, GTHREAD, "gthread", WSGI_APP, "wsgi"),
            gunicorn(venv_bin, SYNC, "sync", WSGI_APP, "wsgi")]


def flask_servers(venv_bin):
    return [oserver_app(INLINE, 1, OSERVER_FLASK_MOUNTS, "flask"),
            oserver_app(THREADED, OSERVER_THREADS, OSERVER_FLASK_MOUNTS, "flask"),
            granian(venv_bin, FLASK_APP, "flask"),
            gunicorn(venv_bin, GTHREAD, "gthread", FLASK_APP, "flask")]


def bench_venv_bin():
    """The bin directory of the bench venv running us, which must hold granian and gunicorn."""
    venv_bin = os.path.dirname(sys.executable)
    missing = [tool for tool in ("granian", "gunicorn") if not os.path.exists(os.path.join(venv_bin, tool))]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not in {venv_bin}: run it through `make bench-apps`")
    return venv_bin


def has_status_page(server):
    return mounts.STATUS_PATH in server.argv


def start_all(fleet, contenders):
    for server in contenders:
        fleet.start(server, HELLO)
        if has_status_page(server):
            mounts.wait_for_workers(server, WORKERS)
    return contenders


def drain(server):
    """Until the requests a finished run left queued are done, so they cost the next run nothing: OServer says
    so on its status page; another server has answered a probe that queued behind them."""
    if has_status_page(server):
        mounts.wait_until_idle(server)
    else:
        mounts.wait_until(lambda: servers.answers_ok(server.url(HELLO)),
                          f"{server.name}: the requests of the last run did not finish", servers.STOP_TIMEOUT)


def make_root():
    """A document root holding only the static page (OServer's mounts take /hello and /io beside it)."""
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(ROOT)
    shutil.copyfile(STATIC_SOURCE, os.path.join(ROOT, STATIC_PAGE.lstrip("/")))


# ------------------------------------------------------------------ measuring

@dataclass
class Measured(loadgen.Result):
    """A wrk Result and, of the failures it counts, the requests wrk gave up on after its 2 s timeout."""

    timeouts: int = field(default=0, kw_only=True)


def parse_wrk(text, command=""):
    result = loadgen.parse_wrk(text, command)
    match = WRK_TIMEOUTS.search(text)
    return Measured(**vars(result), timeouts=int(match.group(1)) if match else 0)


def run_wrk(url, connections, seconds):
    return loadgen.run_tool(loadgen.wrk_command(url, connections, seconds), parse_wrk, seconds + loadgen.TOOL_GRACE)


def warm_up(contenders, paths):
    for server in contenders:
        for path in paths.values():
            run_wrk(server.url(path), CONNECTIONS, WARMUP_SECONDS)
            drain(server)


def measure_once(server, path, seconds, label):
    """One run's Measured with the server's CPU time per request, or None when wrk failed."""
    cpu_before = server.cpu_seconds()
    try:
        result = run_wrk(server.url(path), CONNECTIONS, seconds)
    except loadgen.ToolFailed as e:
        print(f"  {label} {server.name:22} {path:7} FAILED: {e}", flush=True)
        return None  # keeps the rounds aligned
    finally:
        drain(server)
    result = replace(result, cpu_per_request_s=cputime.per_request(cpu_before, server.cpu_seconds(), result.requests))
    print(f"  {label} {server.name:22} {path:7} {result.requests_per_s:9.0f} req/s  CPU "
          f"{report.format_value(result.cpu_per_request_s, report.CPU_METRIC)} us/req  timeouts {result.timeouts}  "
          f"failed {result.failed}", flush=True)
    return result


@contextlib.contextmanager
def background(argv):
    """A load tool running beside a measurement; killed on the way out if it still runs, whatever happened."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def static_alone(server, seconds):
    return run_wrk(server.url(STATIC_PAGE), STATIC_CONNECTIONS, seconds)


def static_under_io_load(server, seconds):
    """The static page's run while wrk holds CONNECTIONS requests on /io, from LOAD_LEAD_S before it to
    LOAD_LEAD_S after it; returns both Results."""
    io_argv = loadgen.wrk_command(server.url(IO), CONNECTIONS, seconds + 2 * LOAD_LEAD_S)
    with background(io_argv) as io_run:
        time.sleep(LOAD_LEAD_S)
        static = static_alone(server, seconds)
        io_text, _ = io_run.communicate(timeout=seconds + 2 * LOAD_LEAD_S + loadgen.TOOL_GRACE)
    if io_run.returncode != 0:
        raise loadgen.ToolFailed(f"{' '.join(io_argv)}: exit status {io_run.returncode}\n{io_text}")
    return static, parse_wrk(io_text, " ".join(io_argv))


def measure_static(server, seconds, reverse, label):
    """{ALONE: Measured, UNDER_LOAD: Measured, IO: the /io load's Measured}, each None when its wrk failed."""
    runs = {}
    for kind in ((UNDER_LOAD, ALONE) if reverse else (ALONE, UNDER_LOAD)):
        try:
            if kind == ALONE:
                runs[ALONE] = static_alone(server, seconds)
            else:
                runs[UNDER_LOAD], runs[IO] = static_under_io_load(server, seconds)
        except loadgen.ToolFailed as e:
            print(f"  {label} {kind}: FAILED: {e}", flush=True)
        finally:
            drain(server)
    for kind in (ALONE, UNDER_LOAD):
        p99 = runs.get(kind) and runs[kind].p99_s
        print(f"  {label} {server.name:22} {kind:32} p99 {report.format_value(p99, 'p99_s')} ms", flush=True)
    return {kind: runs.get(kind) for kind in (ALONE, UNDER_LOAD, IO)}


def measure_rounds(contenders, paths, rounds, seconds, static_server=None):
    """({key: {server name: [Measured or None per round]}}, the static table {STATIC_KEY: {ALONE|UNDER_LOAD|IO:
    [...]}}): each round visits every path on every server, their order reversed each round, then the static runs."""
    table = {key: {server.name: [] for server in contenders} for key in paths}
    static = {STATIC_KEY: {kind: [] for kind in (ALONE, UNDER_LOAD, IO)}}
    for round_no in range(rounds):
        label, reverse = f"round {round_no + 1}/{rounds}", round_no % 2 == 1
        order = contenders[::-1] if reverse else contenders
        for key, path in paths.items():
            for server in order:
                table[key][server.name].append(measure_once(server, path, seconds, label))
        if static_server is not None:
            for kind, result in measure_static(static_server, seconds, reverse, label).items():
                static[STATIC_KEY][kind].append(result)
    return table, static


# ------------------------------------------------------------------ the report (pure)

@dataclass(frozen=True, slots=True)
class Goal:
    """One of the issue's goals: a measured ratio against its limit, from above (at least) or below (at most)."""

    label: str
    ratio: float | None
    limit: float
    at_least: bool = True

    @property
    def met(self):
        return (report.at_least if self.at_least else report.at_most)(self.ratio, self.limit)


def goals(wsgi, static):
    return [Goal(f"{THREADED} `{IO}` req/s >= {IO_GOAL}x granian's",
                 report.ratio(wsgi, "io", "requests_per_s", mine=THREADED, theirs=GRANIAN), IO_GOAL),
            Goal(f"{THREADED} `{HELLO}` req/s >= {HELLO_GOAL}x granian's (moonshot)",
                 report.ratio(wsgi, "hello", "requests_per_s", mine=THREADED, theirs=GRANIAN), HELLO_GOAL),
            Goal(f"static page p99 during the `{IO}` load <= {STATIC_P99_GOAL}x its p99 alone ({THREADED})",
                 report.ratio(static, STATIC_KEY, "p99_s", mine=UNDER_LOAD, theirs=ALONE), STATIC_P99_GOAL,
                 at_least=False)]


def goals_table(goal_list):
    lines = ["| goal | measured | met |", "|---|---:|---|"]
    lines += [report.table_line([g.label, format_times(g.ratio), report.verdict(g.met)]) for g in goal_list]
    return lines


def format_times(value):
    return "n/a" if value is None else f"{value:.2f}x"


def error_counts(results):
    """"timeouts / other failures" over all rounds (wrk's timeouts, then socket errors and non-2xx answers)."""
    measured = [r for r in results if r is not None]
    timeouts = sum(r.timeouts for r in measured)
    return f"{timeouts} / {sum(r.failed for r in measured) - timeouts}"


def server_table(table, paths):
    """A row per server: for each path its median req/s (min-max), p99 latency, CPU µs per request, the ratio to
    granian's req/s and its errors."""
    header = "".join(f" `{path}` req/s | p99 ms | CPU µs/req | x granian | timeouts / errors |"
                     for path in paths.values())
    lines = [f"| server |{header}", "|---" + "|---:|---:|---:|---:|---:" * len(paths) + "|"]
    for name in next(iter(table.values())):
        cells = []
        for key in paths:
            results = table[key][name]
            cells += [report.format_cell(results, "requests_per_s"), report.format_cell(results, "p99_s"),
                      report.format_cell(results, report.CPU_METRIC),
                      format_times(report.ratio(table, key, "requests_per_s", mine=name, theirs=GRANIAN)),
                      error_counts(results)]
        lines.append(report.table_line([name, *cells]))
    return lines


def static_table(static):
    row = static[STATIC_KEY]
    lines = ["| run | p99 (ms) | req/s | timeouts / errors |", "|---|---:|---:|---:|"]
    for kind, label in ((ALONE, f"static page alone, `-c{STATIC_CONNECTIONS}`"),
                        (UNDER_LOAD, f"static page during the `{IO}` load, `-c{STATIC_CONNECTIONS}`"),
                        (IO, f"the `{IO}` load meanwhile, `-c{CONNECTIONS}`")):
        lines.append(report.table_line([label, report.format_cell(row[kind], "p99_s"),
                                        report.format_cell(row[kind], "requests_per_s"), error_counts(row[kind])]))
    return lines


def failures_line(*tables):
    rows = [results for table in tables for row in table.values() for results in row.values()]
    failed = sum(report.failures(results) for results in rows)
    missing = sum(results.count(None) for results in rows)
    return f"Errors over all runs: {failed} failed requests (timeouts included), {missing} wrk runs that did not complete."


@dataclass(frozen=True, slots=True)
class Run:
    """One run's measurements and the circumstances they were taken in."""

    wsgi: dict  # {"hello"|"io": {server name: [Measured or None per round]}}
    flask: dict  # {"flask": {...}}
    static: dict  # {STATIC_KEY: {ALONE|UNDER_LOAD|IO: [...]}}
    machine: dict  # report.machine_info()
    versions: dict  # {"granian": ..., "gunicorn": ..., "flask": ...}
    load: tuple  # 1-minute load average at the start and at the end
    elapsed_s: float
    revision: str  # the OServer commit measured
    rounds: int
    seconds: int  # per wrk run


def commands(run):
    mounts_flags = " ".join(f"--mount {m}" for m in OSERVER_WSGI_MOUNTS)
    oserver = (f"httpd.py -r ROOT -b 127.0.0.1 -p PORT -w {WORKERS} --threads N --python-path bench "
               f"{mounts_flags} --status-path {mounts.STATUS_PATH}")
    wrk = f"wrk -t{loadgen.WRK_THREADS} -c{CONNECTIONS} -d{run.seconds}s --latency http://127.0.0.1:PORT/PATH"
    return [
        f"- OServer ({run.revision}): `{oserver}`, N = 1 (inline: the app runs in the worker's event loop) and "
        f"N = {OSERVER_THREADS}; ROOT holds only the 38-byte static page `{STATIC_PAGE}`. The Flask table mounts "
        f"`--mount /={FLASK_APP}` instead. The status page is only read between runs, to wait for the workers "
        "and for the requests a run left queued.",
        f"- {run.versions['granian']}: `granian --interface wsgi --workers {WORKERS} --host 127.0.0.1 --port PORT "
        f"--working-dir bench {WSGI_APP}`, its defaults otherwise: `--blocking-threads` unset (for WSGI granian "
        "then allows up to backpressure / 2 = 256 threads per worker, as its start-up warning says), "
        "`--runtime-threads 1`, access log off.",
        f"- {run.versions['gunicorn']}: gthread `gunicorn --worker-class gthread --workers {WORKERS} --threads "
        f"{GUNICORN_THREADS} --bind 127.0.0.1:PORT --chdir bench {WSGI_APP}`; sync the same with "
        f"`--worker-class sync` and no `--threads`.",
        f"- Load: `{wrk}` (keep-alive), {run.rounds} rounds after a {WARMUP_SECONDS} s warm-up of each server and "
        "path; each round visits every path on every server, their order reversed each round. Each cell is the "
        "median over the rounds, (min-max) beside it; x granian is the median of the per-round ratios; p99 is wrk's 99th percentile latency (`--latency`). "
        "CPU µs/req: "
        "the user + system CPU time of all the server's processes (from `/proc/PID/stat`) over a run and the "
        "draining of the requests it left queued, divided by the requests wrk counted. Timeouts: requests wrk "
        "gave up on after its 2 s timeout; errors: other socket errors and non-2xx answers, over all rounds.",
    ]


def markdown(run):
    machine, load = run.machine, run.load
    return "\n".join([
        "# Mounted WSGI apps: OServer inline and on a thread pool, granian, gunicorn", "",
        f"Generated by `make bench-apps` on {machine['date']} ({run.elapsed_s:.0f} s in all).", "",
        f"- Machine: {machine['cpu']}, **{machine['cores']} cores**, {machine['kernel']}; load average "
        f"{load[0]:.2f} at the start, {load[1]:.2f} at the end (other work on the machine makes rounds differ); "
        f"{machine['wrk']}. Servers and wrk share the cores, on loopback.",
        f"- The apps: `bench/wsgi_apps.py` (`{HELLO}` answers \"Hello, World!\", `{IO}` sleeps 20 ms first, a "
        f"database call stand-in) and `bench/flask_hello.py` ({run.versions['flask']}), the same code in every "
        f"server, {WORKERS} workers each.",
        *commands(run), "",
        "## WSGI apps", "", *server_table(run.wsgi, WSGI_PATHS), "",
        "## Goals (issue 16; reported, not enforced)", "", *goals_table(goals(run.wsgi, run.static)), "",
        f"## Static page p99 during a `{IO}` load ({THREADED})", "",
        f"Each round: wrk on the static page alone; and wrk on it while another wrk holds {CONNECTIONS} "
        f"connections on `{IO}` (started {LOAD_LEAD_S} s before it, ending {LOAD_LEAD_S} s after), in the "
        f"other order on alternate rounds. The {CONNECTIONS} `{IO}` requests in flight keep that many of the "
        f"{WORKERS} x {OSERVER_THREADS} threads sleeping at any moment.", "",
        *static_table(run.static), "",
        f"## Flask hello route (`bench/flask_hello.py`, `{HELLO}`)", "", *server_table(run.flask, FLASK_PATHS), "",
        failures_line(run.wsgi, run.flask, run.static), ""])


# ------------------------------------------------------------------ main

def versions(venv_bin):
    return {"granian": report.tool_version([os.path.join(venv_bin, "granian"), "--version"]),
            "gunicorn": report.tool_version([os.path.join(venv_bin, "gunicorn"), "--version"]),
            "flask": flask_versions(os.path.join(venv_bin, "python"), servers.oserver_python())}


def flask_versions(*pythons):
    """"Flask X" when every python has the same, else each python's."""
    found = {python: report.tool_version([python, "-c", "import importlib.metadata as m; print(m.version('flask'))"])
             for python in pythons}
    if len(set(found.values())) == 1:
        return f"Flask {found[pythons[0]]}"
    return "Flask " + ", ".join(f"{version} ({python})" for python, version in found.items())


def run_phase(title, fleet, contenders, paths, rounds, seconds, static_server=None):
    print(f"{title}:", flush=True)
    start_all(fleet, contenders)
    warm_up(contenders, paths)
    tables = measure_rounds(contenders, paths, rounds, seconds, static_server)
    fleet.stop_all()
    return tables


def run_bench(rounds, seconds):
    started_at = time.monotonic()
    load_at_start = os.getloadavg()[0]
    revision = servers.oserver_revision()  # the code the servers load as they start
    venv_bin = bench_venv_bin()
    make_root()
    with servers.Fleet() as fleet:
        contenders = wsgi_servers(venv_bin)
        threaded = next(s for s in contenders if s.name == THREADED)
        wsgi, static = run_phase("WSGI apps", fleet, contenders, WSGI_PATHS, rounds, seconds, threaded)
        flask, _ = run_phase("Flask", fleet, flask_servers(venv_bin), FLASK_PATHS, rounds, seconds)
    elapsed = time.monotonic() - started_at
    text = markdown(Run(wsgi, flask, static, report.machine_info(), versions(venv_bin),
                        (load_at_start, os.getloadavg()[0]), elapsed, revision, rounds, seconds))
    entry.write_report(RESULTS_MD, text, elapsed, BUDGET_S)


def main(argv=None):
    return entry.main("bench-apps", __doc__, run_bench, ROUNDS, RUN_SECONDS, argv)


if __name__ == "__main__":
    sys.exit(main())
