"""`make bench`: OServer side by side with nginx (and the Python servers) on the workloads of issues 7 and 13,
and over TLS on those of issue 15.

Builds a document root, starts every server as a process group of its own, warms them up, runs each
workload for each server interleaved over several rounds (logs off, then access logs on, then TLS with the
same certificate on both), reading each server's CPU time before and after every run, writes
bench/results.md and bench/results.png, and stops everything it started, even on Ctrl-C or an error.
BENCH_OSERVER_BASELINE_DIR=DIR adds a second OServer, run from that checkout, to the same rounds.
"""

import argparse
import os
import sys
import time
from dataclasses import replace

from bench import certs, cputime, loadgen, report, servers
from bench.workloads import (AB_WORKLOADS, CONCURRENCY, LARGE_PAGE, SMALL_KEEPALIVE, SMALL_PAGE, TLS_WORKLOADS,
                             WORKLOADS, Settings)

WORK_DIR, DOCROOT = servers.WORK_DIR, servers.DOCROOT
LOG_DIR = os.path.join(WORK_DIR, "logs")
CERT_DIR = os.path.join(WORK_DIR, "tls")
RESULTS_MD = os.path.join(servers.BENCH_DIR, "results.md")
RESULTS_PNG = os.path.join(servers.BENCH_DIR, "results.png")
TLS_MD = os.path.join(servers.BENCH_DIR, "tls.md")
BUDGET_S = 600  # the whole bench must fit in ten minutes
SECOND_IN = {"ms": 1e3, "us": 1e6}
SETTLE_S = 0.2  # seconds a server gets to close the connections a run leaves before its CPU time is read


def start_main_servers(fleet, with_access_logs, tls=None):
    """OServer and nginx, and OServer (baseline) when BENCH_OSERVER_BASELINE_DIR names another checkout; with
    `tls` (a bench.certs.Certificate), their TLS ports (the baseline only if it has TLS listeners)."""
    def log(name):
        return fresh_access_log(name) if with_access_logs else None
    main = [servers.oserver(DOCROOT, WORK_DIR, log(servers.OSERVER), tls=tls),
            servers.nginx(DOCROOT, WORK_DIR, log("nginx"), tls=tls)]
    baseline = servers.baseline_httpd()
    if baseline and (tls is None or servers.serves_tls(baseline)):
        main.append(servers.oserver(DOCROOT, WORK_DIR, log(servers.BASELINE), httpd=baseline, name=servers.BASELINE,
                                    tls=tls))
    return [fleet.start(server, SMALL_PAGE) for server in main]


def fresh_access_log(server_name):
    os.makedirs(LOG_DIR, exist_ok=True)
    path = os.path.join(LOG_DIR, f"{servers.file_name(server_name)}-access.log")
    if os.path.exists(path):
        os.unlink(path)
    return path


def start_python_servers(fleet):
    started = [fleet.start(servers.http_server(sys.executable, DOCROOT, WORK_DIR), SMALL_PAGE)]
    venv_bin = os.path.dirname(sys.executable)
    if os.path.exists(os.path.join(venv_bin, "gunicorn")):
        started.append(fleet.start(servers.gunicorn(venv_bin, DOCROOT, WORK_DIR), SMALL_PAGE))
    else:
        print("  gunicorn is not installed in this venv: skipped (run through `make bench`)", flush=True)
    return started


def warm_up(contenders, settings, paths=(SMALL_PAGE, LARGE_PAGE)):
    for server in contenders:
        for path in paths:
            loadgen.run_wrk(server.url(path), CONCURRENCY, settings.warmup_seconds)


def measure_rounds(main, extra, settings, workloads=WORKLOADS):
    """{workload key: {server name: [Result per round]}}, servers interleaved, their order flipped each round."""
    table = {w.key: {s.name: [] for s in main + (extra if w is SMALL_KEEPALIVE else [])} for w in workloads}
    for round_no in range(settings.rounds):
        order = main if round_no % 2 == 0 else main[::-1]
        for workload in workloads:
            for server in order + (extra if workload is SMALL_KEEPALIVE else []):
                result = measure_once(workload, server, settings, f"round {round_no + 1}/{settings.rounds}")
                table[workload.key][server.name].append(result)  # None for a failed run keeps rounds aligned
    return table


def measure_once(workload, server, settings, label):
    """One run's Result with the server's CPU time per request, or None when the load tool failed."""
    cpu_before = server.cpu_seconds()
    try:
        result = workload.measure(server.url(workload.path), settings)
    except loadgen.ToolFailed as e:
        print(f"  {label} {workload.key:12} {server.name:18} FAILED: {e}", flush=True)
        return None
    time.sleep(SETTLE_S)
    result = replace(result, cpu_per_request_s=cputime.per_request(cpu_before, server.cpu_seconds(), result.requests))
    print(f"  {label} {workload.key:12} {server.name:18} {result.requests_per_s:10.0f} req/s "
          f"{result.bytes_per_s / 1e6:9.1f} MB/s  CPU {format_seconds(result.cpu_per_request_s, 'us')}/req  "
          f"p99 {format_seconds(result.p99_s, 'ms')}  failed {result.failed}", flush=True)
    return result


def format_seconds(value, unit):
    return "n/a" if value is None else f"{value * SECOND_IN[unit]:.2f}{unit}"


def run_table(title, fleet, settings, with_access_logs, with_python_servers):
    print(f"{title}:", flush=True)
    main = start_main_servers(fleet, with_access_logs)
    extra = start_python_servers(fleet) if with_python_servers else []
    warm_up(main, settings)
    warm_up(extra, settings, paths=(SMALL_PAGE,))
    table = measure_rounds(main, extra, settings)
    fleet.stop_all()
    return table


def run_tls_table(fleet, settings):
    """Issue 15's TLS workloads, OServer and nginx on their TLS ports with the same certificate, logs off."""
    print("TLS:", flush=True)
    main = start_main_servers(fleet, with_access_logs=False, tls=certs.make_certificate(CERT_DIR))
    warm_up(main, settings)
    table = measure_rounds(main, [], settings, TLS_WORKLOADS)
    fleet.stop_all()
    return table


def run_bench(settings):
    started = time.monotonic()
    load_at_start = os.getloadavg()[0]
    servers.make_docroot(DOCROOT)
    with servers.Fleet() as fleet:
        logs_off = run_table("access logs off", fleet, settings, with_access_logs=False, with_python_servers=True)
        logs_on = run_table("access logs on", fleet, settings, with_access_logs=True, with_python_servers=False)
        tls = run_tls_table(fleet, settings)
    elapsed = time.monotonic() - started
    baseline = servers.baseline_httpd()
    context = report.Context(settings=settings, machine=report.machine_info(), elapsed_s=elapsed,
                             oserver=servers.describe_oserver(servers.oserver_httpd()),
                             baseline=servers.describe_oserver(baseline) if baseline else None,
                             load=(load_at_start, os.getloadavg()[0]))
    report.write_markdown(RESULTS_MD, context, logs_off, logs_on, tls)
    report.write_chart(RESULTS_PNG, context, logs_off, logs_on)
    print(f"wrote {RESULTS_MD} and {RESULTS_PNG} ({elapsed:.0f}s)")
    if elapsed > BUDGET_S:
        print(f"warning: the bench took {elapsed:.0f}s, over its {BUDGET_S}s budget", file=sys.stderr)


def run_ab_full(settings):
    """The issue's exact `ab -n 50000 -c 100 -r` commands, once per server (logs off); prints, writes nothing."""
    servers.make_docroot(DOCROOT)
    with servers.Fleet() as fleet:
        main = start_main_servers(fleet, with_access_logs=False)
        warm_up(main, settings)
        for workload in AB_WORKLOADS:
            for server in main:
                started = time.monotonic()
                try:
                    result = workload.measure_issue_command(server.url(workload.path))
                except loadgen.ToolFailed as e:
                    print(f"{server.name}: FAILED: {e}", flush=True)
                    continue
                print(f"{server.name:8} {result.command}\n         {result.requests_per_s:.0f} req/s, "
                      f"{result.failed} failed, {time.monotonic() - started:.0f}s", flush=True)


def run_tls_only(settings):
    """The TLS table alone (make bench-tls): writes bench/tls.md."""
    started = time.monotonic()
    load_at_start = os.getloadavg()[0]
    servers.make_docroot(DOCROOT)
    with servers.Fleet() as fleet:
        table = run_tls_table(fleet, settings)
    context = report.Context(settings=settings, machine=report.machine_info(), elapsed_s=time.monotonic() - started,
                             oserver=servers.describe_oserver(servers.oserver_httpd()), baseline=None,
                             load=(load_at_start, os.getloadavg()[0]))
    text = report.tls_markdown(context, table)
    with open(TLS_MD, "w") as f:
        f.write(text)
    print(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ab-full", action="store_true", help="run the issue's exact ab -n 50000 commands once")
    parser.add_argument("--tls-only", action="store_true", help="run the TLS table alone; writes bench/tls.md")
    args = parser.parse_args(argv)
    servers.unwind_on_signals()
    settings = Settings.from_environment()
    os.makedirs(WORK_DIR, exist_ok=True)
    try:
        if args.ab_full:
            run_ab_full(settings)
        elif args.tls_only:
            run_tls_only(settings)
        else:
            run_bench(settings)
    except (KeyboardInterrupt, servers.Interrupted):
        print("bench interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    except RuntimeError as e:  # a server that would not start
        print(f"bench: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
