"""OServer (httpd.py's arguments) with each worker's loop run under cProfile: `make bench-profile` starts this.

Worker.run is wrapped from outside, so the server code carries no profiling hook; each worker dumps its
stats to $BENCH_PROFILE_DIR/worker-PID.prof when its loop returns (a graceful or fast stop).
"""

import cProfile
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def profiled(run):
    def run_profiled(self):
        profiler = cProfile.Profile()
        try:
            return profiler.runcall(run, self)
        finally:
            profiler.dump_stats(os.path.join(os.environ["BENCH_PROFILE_DIR"], f"worker-{os.getpid()}.prof"))
    return run_profiled


def main():
    sys.path.insert(0, os.environ.get("BENCH_OSERVER_DIR", REPO))
    from oserver import cli
    from oserver.process import worker
    worker.Worker.run = profiled(worker.Worker.run)
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
