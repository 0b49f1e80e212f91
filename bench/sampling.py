"""A sampling view of one OServer worker (py-spy, from the bench venv): no instrumentation overhead, so the
share of time spent inside system calls is seen as it is, unlike under cProfile.

record() samples a running process into py-spy's collapsed-stack ("raw") format; summarize() turns those
lines into the hottest source lines by self time and the functions by cumulative time (pure, unit-tested).
"""

import collections
import os
import re
import shutil
import signal
import subprocess
import sys

SAMPLE_RATE = 250  # samples per second
SPY_GRACE = 30.0  # seconds py-spy may take past its duration to write its output
LINE_NUMBER = re.compile(r":\d+\)$")
LOOP_FUNCTION = "Worker.run ("  # cumulative shares start here: the frames above it are in every sample


class SamplerMissing(Exception):
    """py-spy is not installed, or may not attach to the worker (ptrace not allowed)."""


def py_spy():
    found = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if found is None:
        raise SamplerMissing("py-spy is not installed (make bench-profile installs it in bench/.venv)")
    return found


def start_recording(pid, output):
    """Sample pid until finish_recording (py-spy saves what it has on SIGINT)."""
    if os.path.exists(output):
        os.unlink(output)
    argv = [py_spy(), "record", "--rate", str(SAMPLE_RATE), "--nonblocking", "--format", "raw",
            "--output", output, "--pid", str(pid)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish_recording(spy, output):
    """Stop py-spy (killed if it overstays) and return its collapsed-stack lines."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
    try:
        _, errors = spy.communicate(timeout=SPY_GRACE)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.communicate()
        raise SamplerMissing("py-spy did not finish in time") from None
    if spy.returncode != 0 or not os.path.exists(output):
        raise SamplerMissing(f"py-spy failed (exit status {spy.returncode}): {errors.strip()}")
    with open(output) as f:
        return f.read().splitlines()


def summarize(lines, top):
    """Collapsed stacks -> (total samples, [(share, line)] by self time, [(share, function)] cumulative)."""
    self_lines = collections.Counter()
    functions = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = loop_frames(stack.split(";"))
        total += int(count)
        self_lines[frames[-1]] += int(count)
        for function in {LINE_NUMBER.sub(")", frame) for frame in frames}:
            functions[function] += int(count)
    if not total:
        return 0, [], []
    return (total, [(n / total, where) for where, n in self_lines.most_common(top)],
            [(n / total, where) for where, n in functions.most_common(top)])


def loop_frames(frames):
    """The frames from the worker loop down (all of them when the loop is not on the stack)."""
    for i, frame in enumerate(frames):
        if frame.startswith(LOOP_FUNCTION):
            return frames[i:]
    return frames


def report(lines, top):
    total, hot_lines, functions = summarize(lines, top)
    text = [f"{total} samples at {SAMPLE_RATE}/s", "", f"## top {top} source lines by self time (py-spy)"]
    text += [f"{share:7.1%}  {where}" for share, where in hot_lines]
    text += ["", f"## top {top} functions by cumulative time, from the worker loop down (py-spy)"]
    text += [f"{share:7.1%}  {where}" for share, where in functions]
    return "\n".join(text) + "\n"
