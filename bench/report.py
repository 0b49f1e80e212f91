"""Turns the measured rounds into bench/results.md (medians, ratios, goals) and bench/results.png.

A table is {workload key: {server name: [Result per round]}}. Beside each throughput figure stands the
server's CPU time per request (microseconds), with issue 13's goal: OServer's <= nginx's on every workload.
With an OServer (baseline) in the rounds, a table compares the OServer under test with it, workload by
workload. Everything here is a pure function of the tables and the run's Context except machine_info (reads
/proc, asks the tools their versions) and the writers.
"""

import datetime
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass

from bench.servers import BASELINE, OSERVER
from bench.workloads import (AB_WORKLOADS, BASELINE_LOSS, CONCURRENCY, ISSUE_AB_REQUESTS, P99_GOAL, SMALL_KEEPALIVE,
                             TLS_HANDSHAKE_CONCURRENCY, TLS_WORKLOADS, WORKLOADS, Settings)

PORT_PLACEHOLDER = "http://127.0.0.1:PORT"
TLS_PORT_PLACEHOLDER = "https://127.0.0.1:PORT"
SERVER_COLOURS = {OSERVER: "#1f77b4", BASELINE: "#aec7e8", "nginx": "#2ca02c", "http.server": "#ff7f0e",
                  "gunicorn": "#9467bd"}
METRIC_UNITS = {"requests_per_s": "requests/s", "bytes_per_s": "MB/s"}
CPU_METRIC = "cpu_per_request_s"
BYTES_PER_MB = 1e6
MICROSECONDS = 1e6
NO_GOAL = "-"  # the goal (and verdict) cell of a workload without a throughput goal
CHART_SIZE = (14, 5.5)
CHART_DPI = 110
CHART_HEADROOM = 2.5  # factor between the extreme bars and the ends of the log axis


@dataclass(frozen=True)
class Context:
    settings: Settings
    machine: dict
    elapsed_s: float
    oserver: str  # which httpd.py, at which commit, run by which python
    baseline: str | None  # the same for OServer (baseline), when one ran
    load: tuple  # 1-minute load average at the start and at the end: how busy the machine was


# ------------------------------------------------------------------ the machine

def machine_info():
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "kernel": f"{platform.system()} {platform.release()}",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nginx": tool_version(["nginx", "-v"]), "wrk": tool_version(["wrk", "-v"]),
            "ab": tool_version(["ab", "-V"])}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tool_version(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout + done.stderr).strip().splitlines()
    if not lines:
        return "unknown"
    return lines[0].split(" Copyright")[0].replace("This is ", "").replace(" <$Revision$>", "").strip()


# ------------------------------------------------------------------ numbers

def round_value(result, metric):
    """One round's metric, or None when that round's run failed (None) or did not report it."""
    return getattr(result, metric) if result is not None else None


def metric_values(results, metric):
    return [value for value in (round_value(r, metric) for r in results) if value is not None]


def median(results, metric):
    values = metric_values(results, metric)
    return statistics.median(values) if values else None


def ratio(table, workload_key, metric, mine=OSERVER, theirs="nginx"):
    """mine / theirs: the median of the per-round ratios, each round having measured both back to back."""
    row = table[workload_key]
    ratios = []
    for my_result, their_result in zip(row.get(mine, []), row.get(theirs, [])):
        my_value, their_value = round_value(my_result, metric), round_value(their_result, metric)
        if my_value is not None and their_value:
            ratios.append(my_value / their_value)
    return statistics.median(ratios) if ratios else None


def failures(results):
    return sum(r.failed for r in results if r is not None)


def at_most(value, limit):
    """value <= limit, or None (no verdict) without a value."""
    return None if value is None else value <= limit


def at_least(value, limit):
    """value >= limit, or None (no verdict) without a value."""
    return None if value is None else value >= limit


@dataclass(frozen=True)
class GoalRow:
    """One line of a goals table: a metric of one workload, OServer / nginx, the goal and whether it is met;
    a workload's line also has the CPU time per request, OServer / nginx, and whether issue 13's CPU goal is met."""

    label: str
    unit: str
    metric: str
    key: str  # the workload's
    ratio: float | None
    goal: str
    met: bool | None  # None: not measured, or no goal
    cpu_ratio: float | None = None
    cpu_met: bool | None = None
    has_cpu: bool = False


def goal_rows(table, workloads=WORKLOADS):
    """A GoalRow per workload (its throughput goal, its CPU goal), then, for the plain HTTP workloads, the p99
    latency goal."""
    rows = [workload_row(table, w) for w in workloads]
    return rows + [p99_row(table)] if SMALL_KEEPALIVE in workloads else rows


def workload_row(table, w):
    r, cpu = ratio(table, w.key, w.metric), ratio(table, w.key, CPU_METRIC)
    goal, met = NO_GOAL, None
    if w.goal is not None:
        goal, met = f">= {w.goal}", at_least(r, w.goal)
    if w.key == "large-close":
        goal, met = goal + ", 0 failed", met and failures(table[w.key].get(OSERVER, [])) == 0
    return GoalRow(w.title, METRIC_UNITS[w.metric], w.metric, w.key, r, goal, met, cpu, at_most(cpu, w.cpu_goal),
                   has_cpu=True)


def p99_row(table):
    r = ratio(table, SMALL_KEEPALIVE.key, "p99_s")
    return GoalRow("p99 latency of the keep-alive small-page run", "ms", "p99_s", SMALL_KEEPALIVE.key, r,
                   f"<= {P99_GOAL}x", at_most(r, P99_GOAL))


# ------------------------------------------------------------------ Markdown

def format_value(value, metric):
    if value is None:
        return "n/a"
    if metric == "p99_s":
        return f"{value * 1000:.2f}"
    if metric == CPU_METRIC:
        return f"{value * MICROSECONDS:,.1f}"
    if metric == "bytes_per_s":
        return f"{value / BYTES_PER_MB:,.0f}"
    return f"{value:,.0f}"


def format_cell(results, metric):
    values = metric_values(results, metric)
    if not values:
        return "n/a"
    cell = format_value(statistics.median(values), metric)
    if len(values) > 1:
        cell += f" ({format_value(min(values), metric)}-{format_value(max(values), metric)})"
    return cell


def format_ratio(value):
    return "n/a" if value is None else f"{value:.2f}"


def verdict(met):
    return "n/a" if met is None else ("**yes**" if met else "no")


def table_line(cells):
    return "| " + " | ".join(cells) + " |"


def goals_table(table, workloads=WORKLOADS):
    lines = ["| workload | unit | OServer | nginx | OServer / nginx | goal | met | CPU µs/request OServer | "
             f"CPU µs/request nginx | CPU OServer / nginx | CPU goal (<= {workloads[0].cpu_goal}x) met | "
             "errors OServer / nginx |",
             "|---|---|---:|---:|---:|---|---|---:|---:|---:|---|---|"]
    for g in goal_rows(table, workloads):
        mine, theirs = table[g.key].get(OSERVER, []), table[g.key].get("nginx", [])
        met = NO_GOAL if g.goal == NO_GOAL else verdict(g.met)
        cpu = [format_cell(mine, CPU_METRIC), format_cell(theirs, CPU_METRIC), format_ratio(g.cpu_ratio),
               verdict(g.cpu_met)] if g.has_cpu else [""] * 4
        lines.append(table_line([g.label, g.unit, format_cell(mine, g.metric), format_cell(theirs, g.metric),
                                 format_ratio(g.ratio), g.goal, met, *cpu, f"{failures(mine)} / {failures(theirs)}"]))
    return lines


def cpu_goal_summary(table, workloads=WORKLOADS, issue="issue 13"):
    """One sentence: on how many workloads OServer's CPU per request is within the goal, and where it is not."""
    rows = [g for g in goal_rows(table, workloads) if g.has_cpu]
    missed = [f"{g.label} ({format_ratio(g.cpu_ratio)}x)" for g in rows if g.cpu_met is False]
    unmeasured = sum(g.cpu_met is None for g in rows)
    sentence = (f"CPU goal ({issue}: OServer's CPU time per request at most {workloads[0].cpu_goal}x nginx's): met on "
                f"{sum(g.cpu_met is True for g in rows)} of {len(rows)} workloads")
    sentence += f"; missed on {'; '.join(missed)}" if missed else ""
    sentence += f"; {unmeasured} not measured" if unmeasured else ""
    return sentence + "."


def baseline_table(table, workloads=WORKLOADS):
    """OServer under test / OServer (baseline) per workload: throughput and CPU per request, each against the
    issue's "no workload loses more than 3%"."""
    loss = f"{BASELINE_LOSS:.0%}"
    lines = ["| workload | unit | OServer | baseline | OServer / baseline | CPU µs/request OServer | "
             f"CPU µs/request baseline | CPU OServer / baseline | throughput within {loss} | CPU within {loss} |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for w in workloads:
        mine, theirs = table[w.key].get(OSERVER, []), table[w.key].get(BASELINE, [])
        r, cpu = ratio(table, w.key, w.metric, theirs=BASELINE), ratio(table, w.key, CPU_METRIC, theirs=BASELINE)
        lines.append(table_line([w.title, METRIC_UNITS[w.metric], format_cell(mine, w.metric),
                                 format_cell(theirs, w.metric), format_ratio(r), format_cell(mine, CPU_METRIC),
                                 format_cell(theirs, CPU_METRIC), format_ratio(cpu),
                                 verdict(at_least(r, 1 - BASELINE_LOSS)),
                                 verdict(at_most(cpu, 1 + BASELINE_LOSS))]))
    return lines


def has_baseline(table):
    return any(BASELINE in row for row in table.values())


def results_section(title, table, workloads=WORKLOADS, issue="issue 13"):
    """A goals table, the CPU goal's summary, and the comparison with the baseline when one ran."""
    lines = [f"## {title}", "", *goals_table(table, workloads), "", cpu_goal_summary(table, workloads, issue), ""]
    if has_baseline(table):
        lines += ["The OServer under test against OServer (baseline), measured in the same rounds:", "",
                  *baseline_table(table, workloads), ""]
    return lines


def python_servers_table(table):
    row = table[SMALL_KEEPALIVE.key]
    reference = median(row.get(OSERVER, []), "requests_per_s")
    lines = ["| server | requests/s | CPU µs/request | p99 latency (ms) | OServer / this server | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, results in row.items():
        rps = median(results, "requests_per_s")
        speedup = f"{reference / rps:.1f}x" if rps and reference else "n/a"
        lines.append(table_line([name, format_cell(results, "requests_per_s"), format_cell(results, CPU_METRIC),
                                 format_cell(results, "p99_s"), speedup, str(failures(results))]))
    return lines


def commands_table(settings, workloads=WORKLOADS):
    lines = ["| workload | command (PORT is each server's own) |", "|---|---|"]
    for w in workloads:
        url = (TLS_PORT_PLACEHOLDER if w.tls else PORT_PLACEHOLDER) + w.path
        lines.append(f"| {w.title} | `{' '.join(w.command(url, settings))}` |")
    return lines


def scaled_ab_note(settings):
    scaled = [(w, w.ab_requests(settings)) for w in AB_WORKLOADS if w.ab_requests(settings) != ISSUE_AB_REQUESTS]
    if not scaled:
        return []
    runs = " and ".join(f"`-n {n}` for the {w.title}" for w, n in scaled)
    return [f"The issue's ab command is `ab -n {ISSUE_AB_REQUESTS} -c {CONCURRENCY} -r`; each round here uses {runs} "
            f"so that the whole bench fits in ten minutes ({ISSUE_AB_REQUESTS} x 1 MB is 50 GB through loopback, "
            "about 25 s per run at nginx's pace). `make bench-ab-full` runs the exact issue commands once per server.",
            ""]


def tls_section(settings, tls):
    """The TLS table (issue 15), its commands and how the servers were set up; nothing without a TLS run."""
    if tls is None:
        return []
    return [*results_section("TLS (HTTPS), access logs off", tls, TLS_WORKLOADS, "issue 15"),
            "Both servers serve the same certificate (ECDSA P-256, from a local CA: `bench/certs.py`) with TLS 1.2 "
            "and 1.3, the Mozilla intermediate ECDHE suites and session tickets (nginx: `listen ... ssl`, "
            "`ssl_protocols TLSv1.2 TLSv1.3`, the same `ssl_ciphers`; OServer: `--tls-port PORT --tls-certificate "
            "cert.pem --tls-certificate-key key.pem`). wrk makes its 100 TLS connections once and keeps them; "
            f"`ab -f TLS1.3 -c {TLS_HANDSHAKE_CONCURRENCY}` makes a full TLS 1.3 handshake for every request "
            "(ab resumes no session).", "", *commands_table(settings, TLS_WORKLOADS), ""]


def tls_markdown(context, tls):
    """bench/tls.md, written by `make bench-tls`: the TLS table alone, with the run's machine and load."""
    s, m = context.settings, context.machine
    mode = "quick mode, BENCH_QUICK=1: one short round, for development only" if s.quick else "full run"
    return "\n".join([
        "# OServer vs nginx over TLS: benchmark results", "",
        f"Generated by `make bench-tls` on {m['date']} ({mode}; {context.elapsed_s / 60:.1f} minutes in all); "
        "`make bench` puts the same table in results.md.", "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['kernel']}; load average {context.load[0]:.1f} at the "
        f"start, {context.load[1]:.1f} at the end (other work on the machine makes rounds differ)",
        f"- Tools: {m['nginx']}; {m['wrk']}; {m['ab']}",
        f"- OServer: `{context.oserver}`, 2 workers; nginx: 2 workers; {s.rounds} round(s), servers interleaved, "
        "each cell the median over the rounds, (min-max) beside it.", "",
        *tls_section(s, tls)])


def markdown(context, logs_off, logs_on, tls=None):
    s, m = context.settings, context.machine
    mode = "quick mode, BENCH_QUICK=1: one short round, for development only" if s.quick else "full run"
    lines = [
        "# OServer vs nginx: benchmark results", "",
        f"Generated by `make bench` on {m['date']} ({mode}; {context.elapsed_s / 60:.1f} minutes in all).", "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['kernel']}; load average {context.load[0]:.1f} at the "
        f"start, {context.load[1]:.1f} at the end (other work on the machine makes rounds differ)",
        f"- Tools: {m['nginx']}; {m['wrk']}; {m['ab']}",
        f"- OServer: `httpd.py -r ROOT -b 127.0.0.1 -p PORT -w 2` (`{context.oserver}`); nginx: 2 workers, "
        "`sendfile on`, keep-alive (timeout 15 s, `keepalive_requests 1000000`), `log_not_found off` (OServer "
        "logs no 404 either), the same document root (a copy of `httptest/`); both on loopback, sharing the 2 "
        "cores with the load tool.",
        *baseline_note(context),
        f"- {s.rounds} round(s), servers interleaved (A B, then B A, ...) after a {s.warmup_seconds} s wrk warm-up "
        "of each; each cell is the median over the rounds, (min-max) beside it; OServer / nginx is the median of "
        "the per-round ratios (both servers measured back to back).",
        "- CPU µs/request: the user + system CPU time of all the server's processes (master and workers, from "
        "`/proc/PID/stat`) over a run, divided by the requests the run served, in microseconds. It leaves out "
        "the load tool that shares the cores, so it varies less from round to round than requests/s.", "",
        "## Commands", "", *commands_table(s), "", *scaled_ab_note(s),
        *results_section("Access logs off", logs_off),
        *results_section("Access logs on (OServer `--access-log FILE`, nginx `access_log FILE`)", logs_on),
        *tls_section(s, tls),
        "## The Python servers a user might pick instead (38-byte page, keep-alive, logs off)", "",
        *python_servers_table(logs_off), "",
        "`python -m http.server` (stdlib, HTTP/1.0: a connection per request, one log line per request to a file); "
        "gunicorn: `--worker-class gthread --workers 2 --threads 4` with `bench/wsgi_static.py`.", "",
        "![requests/s per workload per server](results.png)", ""]
    return "\n".join(lines)


def baseline_note(context):
    if context.baseline is None:
        return []
    return [f"- OServer (baseline): the same command from another checkout (`{context.baseline}`, "
            "`BENCH_OSERVER_BASELINE_DIR`), in the same rounds as the others."]


def write_markdown(path, context, logs_off, logs_on, tls=None):
    with open(path, "w") as f:
        f.write(markdown(context, logs_off, logs_on, tls))


# ------------------------------------------------------------------ chart

def write_chart(path, context, logs_off, logs_on):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=CHART_SIZE, sharey=True)
    drawn = []
    for ax, (title, table) in zip(axes, (("access logs off", logs_off), ("access logs on", logs_on))):
        drawn += draw_panel(ax, title, table)
    if drawn:  # the panels share this axis: room below the shortest bar, and above the tallest for its value
        axes[0].set_ylim(min(drawn) / CHART_HEADROOM, max(drawn) * CHART_HEADROOM)
    axes[0].set_ylabel("requests/s (median, log scale)")
    m = context.machine
    fig.suptitle(f"OServer vs nginx and Python servers - {m['cpu']}, {m['cores']} cores, {m['kernel']}, {m['date']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=CHART_DPI)
    plt.close(fig)


def draw_panel(ax, title, table):
    names = [name for name in SERVER_COLOURS if any(name in table[w.key] for w in WORKLOADS)]
    width = 0.8 / len(names)
    drawn = []
    for i, name in enumerate(names):
        points = [(x, median(table[w.key].get(name, []), "requests_per_s")) for x, w in enumerate(WORKLOADS)]
        points = [(x + (i - (len(names) - 1) / 2) * width, value) for x, value in points if value is not None]
        if not points:
            continue
        xs, values = zip(*points)
        drawn += values
        bars = ax.bar(xs, values, width, color=SERVER_COLOURS[name], label=name)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7, rotation=90, padding=2)
    ax.set_yscale("log")
    ax.set_xticks(range(len(WORKLOADS)), [w.title.replace(", ", ",\n", 1) for w in WORKLOADS], fontsize=8)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return drawn
