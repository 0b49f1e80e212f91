"""The command line of a bench that runs rounds of wrk runs and writes one Markdown report (`make bench-apps`;
bench/mounts.py has the same shape): --rounds and --seconds, unwinding on signals so every server is stopped,
the exit status, and writing and printing the report. It never starts a process itself.
"""

import argparse
import os
import sys

from bench import loadgen, servers

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def main(name, doc, run_bench, rounds, seconds, argv=None):
    """Parse argv, then run_bench(rounds, seconds); the exit status: 0, 1 on a failure, 130 when interrupted."""
    parser = argparse.ArgumentParser(prog=name, description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=rounds, help=f"rounds of runs ({rounds})")
    parser.add_argument("--seconds", type=int, default=seconds, help=f"seconds per wrk run ({seconds})")
    args = parser.parse_args(argv)
    servers.unwind_on_signals()
    os.makedirs(servers.WORK_DIR, exist_ok=True)
    try:
        run_bench(args.rounds, args.seconds)
    except (KeyboardInterrupt, servers.Interrupted):
        print(f"{name} interrupted; every process it started has been stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (RuntimeError, OSError, loadgen.ToolFailed) as e:  # a server that would not start or answer
        print(f"{name}: {e}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def write_report(path, text, elapsed_s, budget_s):
    """Write the report to path and print it, warning when the run took longer than its budget."""
    with open(path, "w") as f:
        f.write(text)
    print(f"\n{text}\nwrote {path}")
    if elapsed_s > budget_s:
        print(f"warning: the run took {elapsed_s:.0f}s, over its {budget_s}s budget", file=sys.stderr)
