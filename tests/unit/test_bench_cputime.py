"""The bench's CPU time readings: /proc/<pid>/stat lines parsed, a server's process group summed, and the CPU
time per request of a run. The stat lines have the layout of proc(5), with the fields the bench reads set."""

import os

import pytest

from bench import cputime

TICK = 1 / cputime.CLOCK_TICKS


def stat_line(pid=4242, comm="python3", pgrp=4242, utime=0, stime=0, cutime=0, cstime=0):
    """A /proc/<pid>/stat line: pid (comm) state ppid pgrp session ... utime stime cutime cstime ..."""
    return (f"{pid} ({comm}) S 1 {pgrp} {pgrp} 0 -1 4194560 2048 0 0 0 {utime} {stime} {cutime} {cstime} "
            "20 0 1 0 30580 3133440 388 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")


def test_stat_line_gives_its_process_group_and_cpu_ticks():
    stat = cputime.parse_stat(stat_line(pgrp=77, utime=120, stime=30, cutime=5, cstime=2))
    assert stat == cputime.ProcStat(pgrp=77, own_ticks=150, children_ticks=7)


def test_command_name_with_spaces_and_parentheses_is_skipped_whole():
    stat = cputime.parse_stat(stat_line(comm="oserver: worker (1) ) x", pgrp=9, utime=3, stime=4))
    assert (stat.pgrp, stat.own_ticks) == (9, 7)


def test_this_process_reads_as_a_member_of_its_own_group():
    assert cputime.read_stat(os.getpid()).pgrp == os.getpgrp()


def test_a_process_that_is_gone_reads_as_none():
    assert cputime.read_stat(2 ** 22 + 1) is None  # above the kernel's largest pid


def test_group_time_sums_its_processes_and_their_reaped_children_only():
    stats = [cputime.parse_stat(stat_line(pgrp=10, utime=100, stime=50, cutime=20, cstime=10)),  # master
             cputime.parse_stat(stat_line(pgrp=10, utime=300, stime=200)),  # a worker
             cputime.parse_stat(stat_line(pgrp=11, utime=999, stime=999))]  # another server
    assert cputime.group_seconds(stats, 10) == pytest.approx(680 * TICK)


def test_cpu_per_request_is_the_cpu_a_run_used_over_its_requests():
    assert cputime.per_request(cpu_before=2.0, cpu_after=3.5, requests=300000) == pytest.approx(5e-6)


def test_a_run_without_requests_has_no_cpu_per_request():
    assert cputime.per_request(cpu_before=2.0, cpu_after=2.0, requests=0) is None
