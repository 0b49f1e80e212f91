"""The bench harness's pure parts: reading wrk and ab reports, settings from the environment, goal verdicts
(throughput, p99, CPU time per request), the comparison with a baseline checkout, the Markdown report,
summarizing py-spy samples, and the jail of the WSGI app gunicorn is benchmarked with. The wrk and ab reports
are captured from real runs."""

import os

import pytest

from bench import loadgen, report, sampling, servers, workloads, wsgi_static
from bench.certs import Certificate
from bench.wsgi_static import file_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

WRK_REPORT = """Running 1s test @ http://127.0.0.1:39669/httptest/dir2/page.html
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    90.27us   74.13us   2.10ms   97.11%
    Req/Sec   111.48k    13.90k  119.91k    81.82%
  Latency Distribution
     50%   83.00us
     75%   93.00us
     90%  115.00us
     99%  214.00us
  121803 requests in 1.10s, 31.83MB read
Requests/sec: 110762.22
Transfer/sec:     28.94MB
"""

WRK_REPORT_WITH_ERRORS = """Running 1s test @ http://127.0.0.1:39669/nope
  1 threads and 10 connections
  Latency Distribution
     50%  108.00us
     75%  122.00us
     90%  155.00us
     99%    2.76ms
  83824 requests in 1.00s, 24.62MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 83824
Requests/sec:  83538.97
Transfer/sec:     24.54MB
"""

AB_REPORT = """Server Software:        nginx/1.22.1
Document Path:          /httptest/dir2/
Document Length:        34 bytes

Concurrency Level:      10
Time taken for tests:   0.007 seconds
Complete requests:      200
Failed requests:        0
Total transferred:      53000 bytes
HTML transferred:       6800 bytes
Requests per second:    29023.36 [#/sec] (mean)
Time per request:       0.345 [ms] (mean)
Transfer rate:          7510.93 [Kbytes/sec] received

Percentage of the requests served within a certain time (ms)
  50%      0
  98%      1
  99%      3
 100%      4 (longest request)
"""

AB_REPORT_WITH_FAILURES = AB_REPORT.replace("Failed requests:        0",
                                            "Failed requests:        7\n   (Connect: 0, Receive: 7, Length: 0, "
                                            "Exceptions: 0)\nNon-2xx responses:      5")


def result(rps, p99_s=0.001, failed=0, cpu_s=None):
    return loadgen.Result(command="", requests_per_s=rps, bytes_per_s=rps * 1000, p99_s=p99_s, requests=1,
                          failed=failed, cpu_per_request_s=cpu_s)


def table(oserver, nginx, p99=(0.001, 0.001), large_close_failed=0, cpu=(5e-6, 5e-6)):
    """Every workload with one round per server: OServer at `oserver` req/s and cpu[0] s/request, nginx at
    `nginx` and cpu[1]."""
    rows = {w.key: {"OServer": [result(oserver, p99[0], cpu_s=cpu[0])], "nginx": [result(nginx, p99[1], cpu_s=cpu[1])]}
            for w in workloads.WORKLOADS}
    rows["large-close"]["OServer"] = [result(oserver, failed=large_close_failed, cpu_s=cpu[0])]
    return rows


def with_baseline(rows, rps, cpu_s):
    """rows with an OServer (baseline) at `rps` and `cpu_s` on every workload."""
    for row in rows.values():
        row[servers.BASELINE] = [result(rps, cpu_s=cpu_s)]
    return rows


def cpu_verdicts(rows):
    return {g.key: g.cpu_met for g in report.goal_rows(rows) if g.has_cpu}


def context(baseline=None):
    machine = {"cpu": "a CPU", "cores": 2, "kernel": "Linux 6", "date": "2026-11-21 02:24 UTC", "nginx": "nginx/1",
               "wrk": "wrk 4", "ab": "ab 2.3"}
    return report.Context(settings=workloads.Settings.from_environment({}), machine=machine, elapsed_s=60.0,
                          oserver="httpd.py, commit 1234567", baseline=baseline, load=(0.5, 1.5))


def line_of(lines, title):
    return next(line for line in lines if line.startswith(f"| {title} |"))


def verdicts(rows):
    """{workload key (or "p99"): met} of the goals of issue 7."""
    return {("p99" if g.metric == "p99_s" else g.key): g.met for g in report.goal_rows(rows)}


def test_wrk_requests_per_second_is_read():
    assert loadgen.parse_wrk(WRK_REPORT).requests_per_s == 110762.22


def test_wrk_transfer_rate_is_in_bytes_per_second():
    assert loadgen.parse_wrk(WRK_REPORT).bytes_per_s == pytest.approx(28.94 * 1024 ** 2)


def test_wrk_p99_latency_is_in_seconds_whatever_its_unit():
    assert loadgen.parse_wrk(WRK_REPORT).p99_s == pytest.approx(214e-6)
    assert loadgen.parse_wrk(WRK_REPORT_WITH_ERRORS).p99_s == pytest.approx(2.76e-3)


def test_wrk_counts_socket_errors_and_bad_statuses_as_failures():
    assert loadgen.parse_wrk(WRK_REPORT_WITH_ERRORS).failed == 1 + 2 + 3 + 4 + 83824


def test_wrk_clean_run_has_no_failures():
    assert loadgen.parse_wrk(WRK_REPORT).failed == 0


def test_wrk_total_requests_is_read():
    assert loadgen.parse_wrk(WRK_REPORT).requests == 121803


def test_unreadable_wrk_report_is_a_tool_failure():
    with pytest.raises(loadgen.ToolFailed):
        loadgen.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_ab_requests_per_second_is_read():
    assert loadgen.parse_ab(AB_REPORT).requests_per_s == 29023.36


def test_ab_transfer_rate_is_in_bytes_per_second():
    assert loadgen.parse_ab(AB_REPORT).bytes_per_s == pytest.approx(7510.93 * 1024)


def test_ab_p99_is_in_seconds():
    assert loadgen.parse_ab(AB_REPORT).p99_s == pytest.approx(0.003)


def test_ab_counts_failed_requests_and_bad_statuses():
    assert loadgen.parse_ab(AB_REPORT_WITH_FAILURES).failed == 7 + 5


def test_unreadable_ab_report_is_a_tool_failure():
    with pytest.raises(loadgen.ToolFailed):
        loadgen.parse_ab("apr_socket_connect(): Connection refused (111)\n")


def test_issue_commands_are_built_exactly():
    assert loadgen.wrk_command("http://h/p", 100, 10) == ["wrk", "-t1", "-c100", "-d10s", "--latency", "http://h/p"]
    assert loadgen.ab_command("http://h/p", 50000, 100) == ["ab", "-n", "50000", "-c", "100", "-r", "http://h/p"]


def test_quick_mode_is_one_round():
    assert workloads.Settings.from_environment({"BENCH_QUICK": "1"}).rounds == 1


def test_full_mode_has_at_least_three_rounds():
    assert workloads.Settings.from_environment({}).rounds >= 3


def test_environment_overrides_a_setting():
    assert workloads.Settings.from_environment({"BENCH_AB_LARGE_REQUESTS": "123"}).ab_large_requests == 123


def test_large_page_ab_uses_its_own_request_count():
    settings = workloads.Settings.from_environment({"BENCH_AB_LARGE_REQUESTS": "7", "BENCH_AB_SMALL_REQUESTS": "9"})
    assert "7" in workloads.LARGE_CLOSE.command("http://h/p", settings)
    assert "9" in workloads.SMALL_CLOSE.command("http://h/p", settings)


def test_goals_are_met_when_oserver_matches_nginx():
    assert verdicts(table(oserver=1000, nginx=1000)) == {"small-ka": True, "404-ka": None, "small-close": True,
                                                          "large-close": True, "large-ka": True, "p99": True}


def test_throughput_goals_are_missed_below_their_ratio():
    met = verdicts(table(oserver=500, nginx=1000))
    assert [met[key] for key in ("small-ka", "small-close", "large-close", "large-ka")] == [False] * 4


def test_404_workload_has_no_throughput_goal():
    assert verdicts(table(oserver=1, nginx=1000))["404-ka"] is None


def test_large_page_goal_is_missed_when_a_request_failed():
    assert verdicts(table(oserver=1000, nginx=1000, large_close_failed=1))["large-close"] is False


def test_p99_goal_is_missed_above_twice_nginx():
    assert verdicts(table(oserver=1000, nginx=1000, p99=(0.0021, 0.001)))["p99"] is False


def test_goal_without_measurements_has_no_verdict():
    rows = table(oserver=1000, nginx=1000)
    rows["small-close"]["OServer"] = []
    assert verdicts(rows)["small-close"] is None


def test_ratio_is_the_median_of_per_round_ratios():
    rows = {"small-ka": {"OServer": [result(100), result(300), result(50)],
                         "nginx": [result(200), result(300), result(25)]}}
    assert report.ratio(rows, "small-ka", "requests_per_s") == 1.0  # rounds: 0.5, 1.0, 2.0


def test_ratio_skips_a_round_whose_run_failed():
    rows = {"small-ka": {"OServer": [None, result(300)], "nginx": [result(200), result(100)]}}
    assert report.ratio(rows, "small-ka", "requests_per_s") == 3.0


def test_median_ignores_rounds_without_the_metric():
    assert report.median([result(1, p99_s=None), result(3, p99_s=0.5)], "p99_s") == 0.5


@pytest.fixture
def repo_as_wsgi_root(monkeypatch):
    monkeypatch.setattr(wsgi_static, "ROOT", REPO)


def test_wsgi_app_serves_a_file_inside_its_root(repo_as_wsgi_root):
    assert file_for("/httptest/dir2/page.html") == os.path.join(REPO, "httptest", "dir2", "page.html")


def test_wsgi_app_maps_a_directory_to_its_index(repo_as_wsgi_root):
    assert file_for("/httptest/dir2/") == os.path.join(REPO, "httptest", "dir2", "index.html")


def test_wsgi_app_refuses_paths_above_its_root(repo_as_wsgi_root):
    assert file_for("/../../../../etc/passwd") is None


COLLAPSED_STACKS = [
    "<module> (httpd.py:9);Worker.run (oserver/worker.py:89);Connection.flush (oserver/connection.py:175) 6",
    "<module> (httpd.py:9);Worker.run (oserver/worker.py:89);Connection.flush (oserver/connection.py:205) 1",
    "<module> (httpd.py:9);Worker.run (oserver/worker.py:80) 3",
]


def test_sampled_self_time_is_by_source_line():
    _, hot_lines, _ = sampling.summarize(COLLAPSED_STACKS, top=10)
    assert hot_lines[0] == (0.6, "Connection.flush (oserver/connection.py:175)")


def test_sampled_cumulative_time_is_by_function_from_the_worker_loop_down():
    _, _, functions = sampling.summarize(COLLAPSED_STACKS, top=10)
    assert functions == [(1.0, "Worker.run (oserver/worker.py)"), (0.7, "Connection.flush (oserver/connection.py)")]


def test_sampled_totals_count_every_sample():
    assert sampling.summarize(COLLAPSED_STACKS, top=10)[0] == 10


def test_no_samples_summarize_to_nothing():
    assert sampling.summarize([], top=10) == (0, [], [])


def test_wrk_counts_its_error_statuses_apart():
    assert loadgen.parse_wrk(WRK_REPORT_WITH_ERRORS).error_statuses == 83824
    assert loadgen.parse_wrk(WRK_REPORT).error_statuses == 0


def test_ab_counts_its_error_statuses_apart():
    assert loadgen.parse_ab(AB_REPORT_WITH_FAILURES).error_statuses == 5


def test_a_404_run_fails_only_on_connection_errors_when_every_answer_was_an_error_status():
    assert workloads.expecting_error_statuses(loadgen.parse_wrk(WRK_REPORT_WITH_ERRORS)).failed == 1 + 2 + 3 + 4


def test_a_404_run_answered_200_fails_every_request():
    assert workloads.expecting_error_statuses(loadgen.parse_wrk(WRK_REPORT)).failed == 121803


def test_404_workload_asks_for_a_missing_page_on_keep_alive_at_the_small_page_concurrency():
    settings = workloads.Settings.from_environment({})
    command = workloads.MISSING_KEEPALIVE.command("http://h" + workloads.MISSING_PAGE, settings)
    assert command == workloads.SMALL_KEEPALIVE.command("http://h" + workloads.MISSING_PAGE, settings)
    assert not os.path.exists(os.path.join(REPO, workloads.MISSING_PAGE.lstrip("/")))


def test_cpu_ratio_is_the_median_of_per_round_ratios():
    rows = {"small-ka": {"OServer": [result(1, cpu_s=4e-6), result(1, cpu_s=9e-6), result(1, cpu_s=3e-6)],
                         "nginx": [result(1, cpu_s=8e-6), result(1, cpu_s=9e-6), result(1, cpu_s=1.5e-6)]}}
    assert report.ratio(rows, "small-ka", report.CPU_METRIC) == pytest.approx(1.0)  # rounds: 0.5, 1.0, 2.0


def test_cpu_goal_is_met_on_every_workload_when_oserver_uses_no_more_than_nginx():
    assert set(cpu_verdicts(table(1000, 1000, cpu=(5e-6, 5e-6))).values()) == {True}


def test_cpu_goal_is_missed_on_every_workload_when_oserver_uses_more():
    verdicts_by_key = cpu_verdicts(table(1000, 1000, cpu=(6e-6, 5e-6)))
    assert verdicts_by_key == dict.fromkeys((w.key for w in workloads.WORKLOADS), False)


def test_cpu_goal_without_cpu_readings_has_no_verdict():
    assert set(cpu_verdicts(table(1000, 1000, cpu=(None, None))).values()) == {None}


def test_goals_table_shows_cpu_microseconds_per_request_and_their_ratio():
    lines = report.goals_table(table(1000, 1000, cpu=(4.5e-6, 3e-6)))
    assert "| 4.5 | 3.0 | 1.50 | no |" in line_of(lines, workloads.MISSING_KEEPALIVE.title)


def test_goals_table_has_no_throughput_goal_for_the_404_workload():
    assert "| 1.00 | - | - |" in line_of(report.goals_table(table(1000, 1000)), workloads.MISSING_KEEPALIVE.title)


def test_goals_table_has_a_cell_for_every_column():
    header, rule, *rows = report.goals_table(table(1000, 1000))
    assert {line.count("|") for line in rows} == {header.count("|")} == {rule.count("|")}


def test_cpu_goal_summary_names_the_workloads_that_miss_it():
    rows = table(1000, 1000)
    rows["404-ka"]["OServer"] = [result(1000, cpu_s=8.5e-6)]
    summary = report.cpu_goal_summary(rows)
    assert "met on 4 of 5 workloads" in summary
    assert f"missed on {workloads.MISSING_KEEPALIVE.title} (1.70x)" in summary


def test_baseline_table_shows_new_over_baseline_throughput_and_cpu():
    lines = report.baseline_table(with_baseline(table(960, 1000, cpu=(4e-6, 3e-6)), rps=1000, cpu_s=5e-6))
    assert line_of(lines, workloads.SMALL_KEEPALIVE.title) == (
        f"| {workloads.SMALL_KEEPALIVE.title} | requests/s | 960 | 1,000 | 0.96 | 4.0 | 5.0 | 0.80 | no | **yes** |")


def test_baseline_within_three_percent_is_no_loss():
    lines = report.baseline_table(with_baseline(table(975, 1000, cpu=(5.1e-6, 3e-6)), rps=1000, cpu_s=5e-6))
    assert line_of(lines, workloads.SMALL_CLOSE.title).endswith("| 0.97 | 5.1 | 5.0 | 1.02 | **yes** | **yes** |")


def test_report_compares_with_the_baseline_only_when_one_ran():
    assert "OServer (baseline)" not in report.markdown(context(), table(1000, 1000), table(1000, 1000))
    both = with_baseline(table(1000, 1000), rps=1000, cpu_s=5e-6)
    text = report.markdown(context("other/httpd.py, commit 89abcde"), both, both)
    assert text.count("| OServer / baseline |") == 2
    assert "`other/httpd.py, commit 89abcde`" in text


def test_python_servers_table_shows_their_cpu_per_request():
    rows = table(1000, 1000, cpu=(5e-6, 4e-6))
    rows["small-ka"]["gunicorn"] = [result(50, cpu_s=250e-6)]
    assert line_of(report.python_servers_table(rows), "gunicorn").startswith("| gunicorn | 50 | 250.0 |")


def test_server_names_become_file_names():
    assert servers.file_name(servers.BASELINE) == "oserver-baseline"


def test_baseline_is_off_unless_its_checkout_is_named(monkeypatch):
    monkeypatch.delenv(servers.BASELINE_DIR_VARIABLE, raising=False)
    assert servers.baseline_httpd() is None


def test_baseline_runs_the_httpd_of_its_checkout(monkeypatch):
    monkeypatch.setenv(servers.BASELINE_DIR_VARIABLE, REPO)
    assert servers.baseline_httpd() == os.path.join(REPO, "httpd.py")


def test_a_checkout_without_httpd_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_OSERVER_DIR", str(tmp_path))
    with pytest.raises(RuntimeError):
        servers.oserver_httpd()


def test_nginx_logs_no_error_for_a_missing_file():
    assert "log_not_found off;" in servers.nginx_config("/www", 8080, "/prefix")


# ---------------------------------------------------------------- TLS (issue 15)

def tls_table(oserver, nginx, cpu=(5e-6, 5e-6)):
    return {w.key: {"OServer": [result(oserver, cpu_s=cpu[0])], "nginx": [result(nginx, cpu_s=cpu[1])]}
            for w in workloads.TLS_WORKLOADS}


def test_tls_commands_use_https_and_ab_makes_tls_1_3_handshakes_20_at_a_time():
    settings = workloads.Settings.from_environment({"BENCH_TLS_HANDSHAKES": "123"})
    assert workloads.TLS_HANDSHAKES.command("https://h/p", settings) == [
        "ab", "-n", "123", "-c", "20", "-r", "-f", "TLS1.3", "https://h/p"]
    assert workloads.TLS_SMALL_KEEPALIVE.command("https://h/p", settings)[:3] == ["wrk", "-t1", "-c100"]


def test_tls_goals_are_0_8_of_nginx_and_at_most_1_25_times_its_cpu():
    rows = report.goal_rows(tls_table(800, 1000, cpu=(6.25e-6, 5e-6)), workloads.TLS_WORKLOADS)
    assert [(g.met, g.cpu_met) for g in rows] == [(True, True)] * 3
    rows = report.goal_rows(tls_table(790, 1000, cpu=(6.5e-6, 5e-6)), workloads.TLS_WORKLOADS)
    assert [(g.met, g.cpu_met) for g in rows] == [(False, False)] * 3


def test_the_tls_table_has_no_p99_row_and_names_its_cpu_goal():
    lines = report.goals_table(tls_table(1000, 1000), workloads.TLS_WORKLOADS)
    assert "CPU goal (<= 1.25x) met" in lines[0] and len(lines) == 2 + len(workloads.TLS_WORKLOADS)


def test_the_markdown_has_a_tls_section_only_after_a_tls_run():
    without = report.markdown(context(), table(1000, 1000), table(1000, 1000))
    with_tls = report.markdown(context(), table(1000, 1000), table(1000, 1000), tls_table(900, 1000))
    assert "## TLS (HTTPS)" not in without and "## TLS (HTTPS), access logs off" in with_tls
    assert "`ab -n 5000 -c 20 -r -f TLS1.3 https://127.0.0.1:PORT/httptest/dir2/`" in with_tls
    assert "issue 15: OServer's CPU time per request at most 1.25x nginx's): met on 3 of 3" in with_tls


def test_nginx_over_tls_serves_oservers_certificate_versions_and_ciphers():
    config = servers.nginx_config("/www", 8443, "/prefix", tls=Certificate("/ca.pem", "/cert.pem", "/key.pem"))
    assert "listen 127.0.0.1:8443 ssl;" in config and "ssl_certificate /cert.pem;" in config
    assert "ssl_certificate_key /key.pem;" in config and "ssl_protocols TLSv1.2 TLSv1.3;" in config
    assert f"ssl_ciphers {servers.MOZILLA_INTERMEDIATE_CIPHERS};" in config


def test_the_bench_gives_nginx_oservers_default_ciphers():
    from oserver.config import MOZILLA_INTERMEDIATE_CIPHERS
    assert servers.MOZILLA_INTERMEDIATE_CIPHERS == MOZILLA_INTERMEDIATE_CIPHERS


def test_the_tls_report_alone_has_the_machine_and_the_tls_table():
    text = report.tls_markdown(context(), tls_table(900, 1000))
    assert "Generated by `make bench-tls`" in text and "a CPU, 2 cores" in text
    assert "| 38-byte page over TLS, keep-alive (wrk) | requests/s | 900 | 1,000 | 0.90 | >= 0.8 | **yes** |" in text
