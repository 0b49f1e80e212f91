"""`make bench-profile`: where one OServer worker spends its time, under keep-alive and under no-keep-alive load.

For each workload: starts OServer with one worker through profile_worker.py (cProfile around the worker
loop), drives the load with the bench's own command, stops the server (the worker dumps its stats), then
runs the same load on a plain worker sampled by py-spy; prints and saves (bench/work/profile-KEY.txt) the
top functions by cumulative and by self time from both views.
"""

import glob
import io
import os
import pstats
import shutil
import sys

from bench import loadgen, sampling, servers
from bench.workloads import SMALL_CLOSE, SMALL_KEEPALIVE, SMALL_PAGE, Settings

PROFILED_WORKLOADS = (SMALL_KEEPALIVE, SMALL_CLOSE)
PROFILE_WORKER = os.path.join(servers.BENCH_DIR, "profile_worker.py")
TOP_FUNCTIONS = 25
SORT_ORDERS = (("cumulative", "cumulative time"), ("tottime", "self time"))


def profile_workload(workload, settings):
    """Run one workload against a one-worker OServer under cProfile; returns the report text."""
    profile_dir = os.path.join(servers.WORK_DIR, f"profile-{workload.key}")
    shutil.rmtree(profile_dir, ignore_errors=True)
    os.makedirs(profile_dir)
    env = dict(os.environ, BENCH_PROFILE_DIR=profile_dir)
    server = servers.oserver(servers.DOCROOT, servers.WORK_DIR, workers=1, httpd=PROFILE_WORKER, env=env)
    with servers.Fleet() as fleet:
        fleet.start(server, SMALL_PAGE)
        result = workload.measure(server.url(workload.path), settings)
    dumps = glob.glob(os.path.join(profile_dir, "worker-*.prof"))
    if not dumps:
        raise RuntimeError(f"the worker left no profile in {profile_dir}; see {server.log_path}")
    return profile_report(workload, result, dumps)


def sample_workload(workload, settings):
    """Run one workload against a plain one-worker OServer while py-spy samples its worker."""
    output = os.path.join(servers.WORK_DIR, f"py-spy-{workload.key}.raw")
    server = servers.oserver(servers.DOCROOT, servers.WORK_DIR, workers=1)
    with servers.Fleet() as fleet:
        fleet.start(server, SMALL_PAGE)
        spy = sampling.start_recording(only_child(server.proc.pid), output)
        try:
            result = workload.measure(server.url(workload.path), settings)
        finally:
            lines = sampling.finish_recording(spy, output)
    return (f"\n# the same load, sampled by py-spy (no profiler in the worker): {result.requests_per_s:.0f} "
            f"requests/s (1 worker), {result.failed} errors\n" + sampling.report(lines, TOP_FUNCTIONS))


def only_child(pid):
    """The one worker of a one-worker master."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = f.read().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one worker under master {pid}, found {len(children)}")
    return int(children[0])


def profile_report(workload, result, dumps):
    out = io.StringIO()
    out.write(f"# {workload.title}: {result.command}\n# {result.requests_per_s:.0f} requests/s under cProfile "
              f"(1 worker), {result.failed} errors\n")
    for order, label in SORT_ORDERS:
        out.write(f"\n## top {TOP_FUNCTIONS} by {label}\n")
        stats = pstats.Stats(*dumps, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(TOP_FUNCTIONS)
    return out.getvalue()


def main():
    servers.unwind_on_signals()
    settings = Settings.from_environment()
    servers.make_docroot(servers.DOCROOT)
    for workload in PROFILED_WORKLOADS:
        try:
            text = profile_workload(workload, settings)
        except (loadgen.ToolFailed, RuntimeError) as e:
            print(f"{workload.key}: {e}", file=sys.stderr)
            return 1
        try:
            text += sample_workload(workload, settings)
        except (loadgen.ToolFailed, RuntimeError, sampling.SamplerMissing) as e:
            text += f"\n# no py-spy view: {e}\n"
        path = os.path.join(servers.WORK_DIR, f"profile-{workload.key}.txt")
        with open(path, "w") as f:
            f.write(text)
        print(text, f"(saved in {path})\n", sep="\n", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, servers.Interrupted):
        sys.exit(130)
