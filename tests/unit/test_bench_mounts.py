"""The pure parts of `make bench-mounts` and the example handlers it loads: the speedup table, the findings
stated from the figures, the server's flags, and the handlers' answers to a stub request."""

import os
import sys
from types import SimpleNamespace

import pytest

from bench import mounts

sys.path.insert(0, mounts.EXAMPLES_DIR)
import cpu_bound  # noqa: E402  (conf/examples is on the workers' python_path, not a package)
import io_bound  # noqa: E402

CPU_ANSWER = b"cpu: 200000 iterations, hash bddc46a0, 12.4 ms CPU, worker 32174\n"


def result(rps, failed=0, cores=1.0):
    return mounts.Measured(command="", requests_per_s=rps, bytes_per_s=rps * 100, p99_s=0.01, requests=1,
                           failed=failed, cores_busy=cores)


def table(cpu, io):
    """{workers: {"cpu": [...], "io": [...]}} with one round each, from {workers: req/s} pairs; the /cpu
    workers use a core each up to two, the /io ones a twentieth of a core each."""
    return {workers: {"cpu": [result(cpu[workers], cores=min(workers, 2))],
                      "io": [result(io[workers], cores=workers / 20)]} for workers in cpu}


SCALED_AS_EXPECTED = table(cpu={1: 80, 2: 150, 4: 152}, io={1: 49, 2: 98, 4: 190})


def test_speedup_is_over_the_one_worker_figure():
    assert mounts.speedups({1: 50.0, 2: 100.0, 4: 150.0}) == {1: 1.0, 2: 2.0, 4: 3.0}


def test_speedup_is_missing_where_a_figure_is():
    assert mounts.speedups({1: None, 2: 100.0}) == {1: None, 2: None}


def test_table_row_has_medians_speedups_and_cpu_use():
    rows = {1: {"cpu": [result(70), result(80), result(90)], "io": [result(50, cores=0.04)]},
            2: {"cpu": [result(160, cores=1.9)], "io": [result(100, cores=0.08)]}}
    assert mounts.results_table(rows)[2] == "| 1 | 80 (70-90) | 1.00x | 1.00 | 50 | 1.00x | 0.04 |"
    assert mounts.results_table(rows)[3] == "| 2 | 160 | 2.00x | 1.90 | 100 | 2.00x | 0.08 |"


def test_table_has_a_column_for_every_cell():
    header, rule, row = mounts.results_table(SCALED_AS_EXPECTED)[:3]
    assert header.count("|") == rule.count("|") == row.count("|")


def test_failed_runs_are_counted():
    rows = {1: {"cpu": [result(80, failed=3), None], "io": [result(50)]}}
    assert mounts.failures_line(rows) == "Errors over all runs: 3 failed requests, 1 wrk runs that did not complete."


def test_cpu_levelling_off_past_the_cores_is_stated():
    assert "stayed level" in mounts.cpu_finding(SCALED_AS_EXPECTED, cores=2, cpu_ms=12.4)


def test_cpu_still_rising_past_the_cores_is_not_called_level():
    rising = table(cpu={1: 80, 2: 120, 4: 200}, io={1: 50, 2: 100, 4: 200})
    assert "did not stay level" in mounts.cpu_finding(rising, cores=2, cpu_ms=12.4)


def test_cpu_finding_gives_the_cores_the_workers_used():
    assert "using 2.00 cores" in mounts.cpu_finding(SCALED_AS_EXPECTED, cores=2, cpu_ms=12.4)


def test_cpu_finding_gives_one_workers_ceiling_from_the_request_cost():
    assert "about 80 requests/s" in mounts.cpu_finding(SCALED_AS_EXPECTED, cores=2, cpu_ms=12.5)


def test_io_scaling_with_workers_is_stated():
    assert "scaled with the number of workers, past the 2 cores," in mounts.io_finding(SCALED_AS_EXPECTED, cores=2)


def test_io_finding_gives_the_cores_the_workers_used():
    assert "using 0.20 cores" in mounts.io_finding(SCALED_AS_EXPECTED, cores=2)


def test_io_falling_short_is_stated_with_the_goal():
    short = table(cpu={1: 80, 2: 150, 4: 150}, io={1: 50, 2: 70, 4: 90})
    assert "fell short of 4x" in mounts.io_finding(short, cores=2)


def test_cpu_time_is_read_from_the_cpu_answer():
    assert mounts.parse_cpu_ms(CPU_ANSWER) == 12.4


def test_cpu_answer_without_a_time_is_an_error():
    with pytest.raises(RuntimeError):
        mounts.parse_cpu_ms(b"Not Found\n")


def test_server_mounts_both_examples_from_the_examples_directory():
    flags = mounts.mount_flags()
    assert flags[flags.index("--python-path") + 1] == os.path.join(mounts.servers.REPO, "conf", "examples")
    assert [flags[i + 1] for i, flag in enumerate(flags) if flag == "--mount"] == list(mounts.MOUNTS)


def stub_request(query=""):
    return SimpleNamespace(method="GET", path="/", query=query, headers={}, body=None)


def test_cpu_handler_answers_plain_text():
    status, headers, body = cpu_bound.handle(stub_request("n=1000"))
    assert (status, dict(headers)["Content-Type"]) == (200, "text/plain; charset=utf-8")
    assert body.startswith(b"cpu: 1000 iterations")


def test_cpu_handler_work_is_deterministic():
    assert cpu_bound.burn(1000) == cpu_bound.burn(1000) != cpu_bound.burn(1001)


def test_cpu_handler_refuses_more_than_its_maximum():
    assert cpu_bound.handle(stub_request(f"n={cpu_bound.MAX_ITERATIONS + 1}"))[0] == 400


def test_io_handler_waits_the_time_asked():
    assert io_bound.handle(stub_request("ms=0"))[2].startswith(b"io: waited 0 ms")


@pytest.mark.parametrize("query", ["ms=abc", "ms=-1", f"ms={io_bound.MAX_WAIT_MS + 1}"])
def test_io_handler_refuses_a_bad_wait(query):
    assert io_bound.handle(stub_request(query))[0] == 400


def test_report_names_the_core_count_and_holds_the_table():
    machine = {"date": "today", "cpu": "a CPU", "cores": 2, "kernel": "Linux", "wrk": "wrk 4"}
    run = mounts.Run(SCALED_AS_EXPECTED, machine, (0.1, 0.2), 12.4, 60.0, "commit abc", rounds=1, seconds=3)
    text = mounts.markdown(run)
    assert "**2 cores**" in text
    assert "\n".join(mounts.results_table(SCALED_AS_EXPECTED)) in text
