"""The pure parts of `make bench-apps` and the apps it serves: the wrk timeouts, the goals against their limits,
the medians, ratios and CPU per request in the tables, the report, the servers' command lines, and the WSGI app's
answers."""

import os
import signal

import pytest

from bench import apps, cputime, mounts, report, wsgi_apps
from tests.unit.test_bench_reports import WRK_REPORT, WRK_REPORT_WITH_ERRORS

MACHINE = {"date": "2026-11-29 12:00 UTC", "cpu": "a CPU", "cores": 2, "kernel": "Linux 6", "wrk": "wrk 4.1"}
VERSIONS = {"granian": "granian 2.8.9", "gunicorn": "gunicorn (version 27.0.1)", "flask": "Flask 3.1.3"}


def measured(rps, p99_s=0.01, requests=1000, cpu_s=None, failed=0, timeouts=0):
    return apps.Measured(command="", requests_per_s=rps, bytes_per_s=rps * 100, p99_s=p99_s, requests=requests,
                         failed=failed, cpu_per_request_s=cpu_s, timeouts=timeouts)


def wsgi_table(threaded_hello=(30000,), granian_hello=(40000,), threaded_io=(2400,), granian_io=(2421,)):
    """{"hello"|"io": {server: [Measured per round]}} with OServer --threads 32 and granian."""
    return {"hello": {apps.THREADED: [measured(v) for v in threaded_hello],
                      apps.GRANIAN: [measured(v) for v in granian_hello]},
            "io": {apps.THREADED: [measured(v) for v in threaded_io],
                   apps.GRANIAN: [measured(v) for v in granian_io]}}


def static_table(alone_p99=(0.002,), loaded_p99=(0.003,)):
    return {apps.STATIC_KEY: {apps.ALONE: [measured(20000, p99_s=v) for v in alone_p99],
                              apps.UNDER_LOAD: [measured(15000, p99_s=v) for v in loaded_p99],
                              apps.IO: [measured(2300) for _ in alone_p99]}}


def goal(table_goals, fragment):
    return next(g for g in table_goals if fragment in g.label)


# ------------------------------------------------------------------ wrk's report

def test_wrk_timeouts_are_read_beside_the_other_figures():
    result = apps.parse_wrk(WRK_REPORT_WITH_ERRORS, "wrk ...")
    assert (result.requests_per_s, result.timeouts, result.failed) == (83538.97, 4, 1 + 2 + 3 + 4 + 83824)


def test_wrk_report_without_socket_errors_has_no_timeouts():
    assert apps.parse_wrk(WRK_REPORT).timeouts == 0


def test_errors_cell_splits_timeouts_from_other_failures_over_the_rounds():
    rounds = [measured(100, failed=10, timeouts=7), None, measured(100, failed=3, timeouts=1)]
    assert apps.error_counts(rounds) == "8 / 5"


# ------------------------------------------------------------------ goals

def test_io_goal_is_met_at_095_of_granian():
    io = goal(apps.goals(wsgi_table(threaded_io=(2300,), granian_io=(2421,)), static_table()), "`/io`")
    assert (round(io.ratio, 3), io.met) == (0.95, True)


def test_io_goal_is_missed_below_095_of_granian():
    io = goal(apps.goals(wsgi_table(threaded_io=(2000,), granian_io=(2421,)), static_table()), "`/io`")
    assert io.met is False


def test_hello_moonshot_needs_granians_figure_at_least():
    assert goal(apps.goals(wsgi_table(threaded_hello=(40000,)), static_table()), "moonshot").met is True
    assert goal(apps.goals(wsgi_table(threaded_hello=(39999,)), static_table()), "moonshot").met is False


def test_static_p99_goal_is_an_upper_limit():
    assert goal(apps.goals(wsgi_table(), static_table(loaded_p99=(0.004,))), "p99").met is True
    assert goal(apps.goals(wsgi_table(), static_table(loaded_p99=(0.0041,))), "p99").met is False


def test_ratio_is_the_median_of_the_per_round_ratios():
    table = wsgi_table(threaded_io=(1000, 2000, 3000), granian_io=(2000, 2000, 2000))
    assert goal(apps.goals(table, static_table()), "`/io`").ratio == 1.0


def test_goal_without_measurements_has_no_verdict():
    table = wsgi_table()
    table["io"][apps.THREADED] = [None]
    io = goal(apps.goals(table, static_table()), "`/io`")
    assert (io.ratio, io.met) == (None, None)


def test_goals_table_gives_ratio_and_verdict():
    lines = apps.goals_table([apps.Goal("a goal", 0.5, 1.0), apps.Goal("an upper limit", 1.5, 2.0, at_least=False)])
    assert lines[2:] == ["| a goal | 0.50x | no |", "| an upper limit | 1.50x | **yes** |"]


# ------------------------------------------------------------------ tables

def test_server_row_has_median_range_p99_cpu_ratio_and_errors_per_path():
    table = {"hello": {apps.THREADED: [measured(v, cpu_s=c) for v, c in ((30000, 50e-6), (32000, 40e-6),
                                                                          (31000, 45e-6))],
                       apps.GRANIAN: [measured(v, cpu_s=30e-6) for v in (40000, 40000, 40000)]}}
    row = apps.server_table(table, {"hello": "/hello"})[2]
    assert row == ("| OServer --threads 32 | 31,000 (30,000-32,000) | 10.00 (10.00-10.00) | 45.0 (40.0-50.0) | 0.78x "
                   "| 0 / 0 |")


def test_server_table_has_a_column_for_every_cell():
    header, rule, row = apps.server_table(wsgi_table(), apps.WSGI_PATHS)[:3]
    assert header.count("|") == rule.count("|") == row.count("|")


def test_cpu_per_request_is_the_cpu_a_run_used_over_its_requests():
    assert cputime.per_request(1.0, 1.5, 10000) == pytest.approx(50e-6)
    assert report.format_value(50e-6, report.CPU_METRIC) == "50.0"


def test_static_table_gives_p99_in_milliseconds():
    lines = apps.static_table(static_table(alone_p99=(0.002, 0.003, 0.004), loaded_p99=(0.005, 0.006, 0.009)))
    assert lines[2].split(" | ")[1] == "3.00 (2.00-4.00)"
    assert lines[3].split(" | ")[1] == "6.00 (5.00-9.00)"


def test_failures_line_counts_failed_requests_and_missing_runs():
    table = {"io": {apps.GRANIAN: [measured(1, failed=4, timeouts=3), None]}}
    assert apps.failures_line(table, static_table()) == (
        "Errors over all runs: 4 failed requests (timeouts included), 1 wrk runs that did not complete.")


def test_report_names_the_machine_the_load_and_holds_every_table():
    wsgi, static = wsgi_table(), static_table()
    flask = {"flask": {apps.THREADED: [measured(3000)], apps.GRANIAN: [measured(4600)]}}
    run = apps.Run(wsgi, flask, static, MACHINE, VERSIONS, (0.5, 1.25), 200.0, "commit abc", rounds=3, seconds=4)
    text = apps.markdown(run)
    assert "**2 cores**" in text and "load average 0.50 at the start, 1.25 at the end" in text
    assert "`wrk -t1 -c50 -d4s --latency http://127.0.0.1:PORT/PATH`" in text
    for lines in (apps.server_table(wsgi, apps.WSGI_PATHS), apps.server_table(flask, apps.FLASK_PATHS),
                  apps.static_table(static), apps.goals_table(apps.goals(wsgi, static))):
        assert "\n".join(lines) in text


# ------------------------------------------------------------------ servers

def test_oserver_runs_the_apps_of_bench_on_its_thread_pool():
    argv = apps.oserver_app(apps.THREADED, 32, apps.OSERVER_WSGI_MOUNTS, "wsgi").argv
    assert argv[argv.index("--threads") + 1] == "32" and argv[argv.index("-w") + 1] == "2"
    assert argv[argv.index("--python-path") + 1] == apps.servers.BENCH_DIR
    assert [argv[i + 1] for i, flag in enumerate(argv) if flag == "--mount"] == ["/hello=wsgi_apps:app",
                                                                                 "/io=wsgi_apps:app"]
    assert apps.has_status_page(apps.oserver_app(apps.INLINE, 1, apps.OSERVER_WSGI_MOUNTS, "wsgi"))


def test_granian_serves_the_same_app_with_two_workers_and_its_default_threads():
    server = apps.granian("/venv/bin", apps.WSGI_APP, "wsgi")
    assert server.argv[:5] == ["/venv/bin/granian", "--interface", "wsgi", "--workers", "2"]
    assert server.argv[-1] == "wsgi_apps:app" and "--blocking-threads" not in server.argv
    assert not apps.has_status_page(server)


def test_gunicorn_gthread_has_eight_threads_and_sync_none():
    gthread = apps.gunicorn("/venv/bin", apps.GTHREAD, "gthread", apps.WSGI_APP, "wsgi")
    sync = apps.gunicorn("/venv/bin", apps.SYNC, "sync", apps.WSGI_APP, "wsgi")
    assert gthread.argv[gthread.argv.index("--threads") + 1] == "8" and "--threads" not in sync.argv
    assert sync.stop_signal == signal.SIGINT


def test_each_server_of_a_phase_logs_to_a_file_of_its_own():
    logs = [s.log_path for s in apps.wsgi_servers("/venv/bin") + apps.flask_servers("/venv/bin")]
    assert len(set(logs)) == len(logs) and all(os.path.dirname(p) == apps.servers.WORK_DIR for p in logs)


def test_the_static_page_is_not_taken_by_a_mount():
    prefixes = [m.split("=")[0] for m in apps.OSERVER_WSGI_MOUNTS]
    assert not any(apps.STATIC_PAGE == p or apps.STATIC_PAGE.startswith(p + "/") for p in prefixes)
    assert mounts.STATUS_PATH not in prefixes


# ------------------------------------------------------------------ the WSGI app

def call(script_name, path_info):
    answer = {}

    def start_response(status, headers):
        answer.update(status=status, headers=dict(headers))
    body = b"".join(wsgi_apps.app({"SCRIPT_NAME": script_name, "PATH_INFO": path_info}, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.parametrize("script_name, path_info", [("", "/hello"), ("/hello", "")])
def test_hello_answers_mounted_at_the_root_or_at_its_prefix(script_name, path_info):
    status, headers, body = call(script_name, path_info)
    assert (status, body, headers["Content-Length"]) == ("200 OK", b"Hello, World!", "13")


def test_io_waits_then_answers(monkeypatch):
    waits = []
    monkeypatch.setattr(wsgi_apps.time, "sleep", waits.append)
    assert call("/io", "")[2] == b"Hello, World!" and waits == [0.020]


def test_another_path_is_not_found():
    assert call("", "/nothing")[0] == "404 Not Found"


# ------------------------------------------------------------------ the command line

@pytest.fixture
def signals_untouched(monkeypatch):
    """entry.main turns SIGTERM into an exception for the bench; the test process keeps its own handlers."""
    monkeypatch.setattr(apps.entry.servers, "unwind_on_signals", lambda: None)


def test_a_failing_bench_exits_1_and_says_why(capsys, signals_untouched):
    def fails(rounds, seconds):
        raise RuntimeError("granian did not answer")
    assert apps.entry.main("bench-x", "doc", fails, 3, 4, []) == apps.entry.EXIT_FAILED
    assert "bench-x: granian did not answer" in capsys.readouterr().err


def test_rounds_and_seconds_reach_the_bench(signals_untouched):
    seen = []
    assert apps.entry.main("bench-x", "doc", lambda r, s: seen.append((r, s)), 3, 4, ["--rounds", "1"]) == 0
    assert seen == [(1, 4)]
