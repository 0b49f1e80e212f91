"""CPU time of processes, from /proc/<pid>/stat: one process's, or a whole server's (its process group).

A server started in a session of its own (bench.servers) is one process group: the master and every worker.
Its CPU time is the sum over the group's processes of user + system time, plus the time of the children
they have reaped (so a worker that exits between two readings is not lost). The CPU a run cost is the
difference of two readings; divided by the requests the run served, it is the CPU time per request.
Parsing a stat line is pure and unit-tested; reading walks /proc.
"""

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Fields of /proc/<pid>/stat after the ")" closing the command name (see proc(5)), counted from 0.
PGRP_FIELD = 2
UTIME_FIELD, STIME_FIELD, CUTIME_FIELD, CSTIME_FIELD = 11, 12, 13, 14


@dataclass(frozen=True)
class ProcStat:
    """What the bench needs of one /proc/<pid>/stat line: its process group and its CPU ticks."""

    pgrp: int
    own_ticks: int  # user + system time of the process itself (all its threads)
    children_ticks: int  # user + system time of the children it has waited for


def parse_stat(text):
    """One /proc/<pid>/stat line -> ProcStat. The command name may hold spaces and ")": split after the last one."""
    fields = text.rsplit(")", 1)[1].split()
    return ProcStat(pgrp=int(fields[PGRP_FIELD]),
                    own_ticks=int(fields[UTIME_FIELD]) + int(fields[STIME_FIELD]),
                    children_ticks=int(fields[CUTIME_FIELD]) + int(fields[CSTIME_FIELD]))


def group_seconds(stats, pgid):
    """CPU seconds of the processes of group pgid among stats, their reaped children included."""
    return sum(s.own_ticks + s.children_ticks for s in stats if s.pgrp == pgid) / CLOCK_TICKS


def per_request(cpu_before, cpu_after, requests):
    """CPU seconds per request of a run that served `requests` between two readings; None without requests."""
    return (cpu_after - cpu_before) / requests if requests > 0 else None


# ------------------------------------------------------------------ reading /proc

def read_stat(pid):
    """The ProcStat of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_stat(f.read())
    except (OSError, IndexError):
        return None


def process_seconds(pid):
    """User + system CPU seconds a process has used itself (0 once it is gone)."""
    stat = read_stat(pid)
    return stat.own_ticks / CLOCK_TICKS if stat else 0.0


def server_seconds(pgid):
    """CPU seconds used so far by every live process of group pgid (a server we started in its own session)."""
    stats = (read_stat(name) for name in os.listdir("/proc") if name.isdigit())
    return group_seconds([s for s in stats if s is not None], pgid)
