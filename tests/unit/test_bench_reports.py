"""The bench harness's pure parts: reading wrk and ab reports, settings from the environment, goal verdicts,
summarizing py-spy samples, and the jail of the WSGI app gunicorn is benchmarked with. The wrk and ab reports
are captured from real runs."""

import os

import pytest

from bench import loadgen, report, sampling, workloads, wsgi_static
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


def result(rps, p99_s=0.001, failed=0):
    return loadgen.Result(command="", requests_per_s=rps, bytes_per_s=rps * 1000, p99_s=p99_s, requests=1,
                          failed=failed)


def table(oserver, nginx, p99=(0.001, 0.001), large_close_failed=0):
    """Every workload with one round per server: OServer at `oserver` req/s, nginx at `nginx`."""
    rows = {w.key: {"OServer": [result(oserver, p99[0])], "nginx": [result(nginx, p99[1])]}
            for w in workloads.WORKLOADS}
    rows["large-close"]["OServer"] = [result(oserver, failed=large_close_failed)]
    return rows


def verdicts(rows):
    return [met for *_, met in report.goal_rows(rows)]


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
    assert verdicts(table(oserver=1000, nginx=1000)) == [True] * 5


def test_throughput_goals_are_missed_below_their_ratio():
    assert verdicts(table(oserver=500, nginx=1000))[:4] == [False] * 4


def test_large_page_goal_is_missed_when_a_request_failed():
    assert verdicts(table(oserver=1000, nginx=1000, large_close_failed=1))[2] is False


def test_p99_goal_is_missed_above_twice_nginx():
    assert verdicts(table(oserver=1000, nginx=1000, p99=(0.0021, 0.001)))[4] is False


def test_goal_without_measurements_has_no_verdict():
    rows = table(oserver=1000, nginx=1000)
    rows["small-close"]["OServer"] = []
    assert verdicts(rows)[1] is None


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
